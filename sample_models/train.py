"""Train the bundled sample models, deterministically: three on scikit-learn's digits (fast tests,
offline), and on MNIST's official splits the two models the compression papers report on plus the
classic LeNet-5.

    python sample_models/train.py                    # all samples
    python sample_models/train.py --only mlp         # one of them
    python sample_models/train.py --only lenet5_caffe_mnist

Writes <name>.pt (a state_dict, loaded with weights_only=True) and <name>.json
(the card: architecture, input shape, test accuracy, parameters, this command).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.inputs import data as D  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.train import accuracy, train_  # noqa: E402

# ---- defaults: one entry per sample ------------------------------------------------
SEED = 0
SAMPLES = {
    # name: architecture, its kwargs, input shape, training recipe
    "mlp": dict(arch="mlp", arch_kwargs={}, input_shape=(1, 28, 28), data="digits",
                recipe=dict(epochs=40, lr=1e-3, augment_shift=1)),
    "lenet5": dict(arch="lenet5", arch_kwargs={}, input_shape=(1, 28, 28), data="digits",
                   recipe=dict(epochs=30, lr=2e-3, augment_shift=2)),
    "mobilenet_v3_small": dict(arch="tv:mobilenet_v3_small", arch_kwargs={"width_mult": 0.75},
                               input_shape=(3, 64, 64), data="digits",
                               recipe=dict(epochs=40, lr=3e-3, augment_shift=4)),
    # LeNet-300-100 and Caffe's LeNet-5 on MNIST (50k train / 10k val / 10k official test), as in the papers
    "lenet300_mnist": dict(arch="mlp", arch_kwargs={}, input_shape=(1, 28, 28), data="mnist",
                           recipe=dict(epochs=20, lr=1e-3, augment_shift=1, batch_size=128)),
    "lenet5_caffe_mnist": dict(arch="lenet5_caffe", arch_kwargs={}, input_shape=(1, 28, 28), data="mnist",
                               recipe=dict(epochs=15, lr=1e-3, augment_shift=1, batch_size=128)),
    # the classic 61k-weight LeNet-5 (the `lenet5` sample's architecture) on MNIST
    "lenet5_mnist": dict(arch="lenet5", arch_kwargs={}, input_shape=(1, 28, 28), data="mnist",
                         recipe=dict(epochs=15, lr=2e-3, augment_shift=1, batch_size=128)),
    # the big teacher: torchvision's ResNet-18 with a small-image stem, 0.46 G MACs; stored in fp16 (22 MB)
    "resnet18_mnist": dict(arch="resnet18_small", arch_kwargs={}, input_shape=(1, 28, 28), data="mnist",
                           recipe=dict(epochs=2, lr=1e-3, augment_shift=1, batch_size=128), fp16=True),
}
HERE = Path(__file__).resolve().parent


def train_sample(name: str) -> dict:
    cfg = SAMPLES[name]
    source = D.load_data(cfg["data"])
    data = source.adapted(cfg["input_shape"])
    torch.manual_seed(SEED)
    model = M.build(cfg["arch"], source.num_classes, cfg["input_shape"], **cfg["arch_kwargs"])
    t0 = time.perf_counter()
    train_(model, data.train, data.val, seed=SEED, **cfg["recipe"],
           progress=lambda i, n, msg: print(f"  {name} {msg}", flush=True))
    weights = HERE / f"{name}.pt"
    state = model.state_dict()
    if cfg.get("fp16"):  # half the bytes in git; the card's accuracy is the reloaded fp16 weights'
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        model.load_state_dict(state)
    torch.save(state, weights)
    card = {
        "name": name,
        "arch": cfg["arch"],
        "arch_kwargs": cfg["arch_kwargs"],
        "input_shape": list(cfg["input_shape"]),
        "num_classes": source.num_classes,
        "test_accuracy": round(accuracy(model, data.test), 4),
        "val_accuracy": round(accuracy(model, data.val), 4),
        "params": sum(p.numel() for p in model.parameters()),
        "weights": weights.name,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "weights_dtype": "float16" if cfg.get("fp16") else "float32",
        "data": source.name,
        "data_fingerprint": source.fingerprint,
        "recipe": {"batch_size": 64, **cfg["recipe"], "seed": SEED, "optimizer": "adam+cosine"},
        "train_seconds": round(time.perf_counter() - t0, 1),
        "trained_with": f"python sample_models/train.py --only {name}",
        "torch": torch.__version__,
    }
    (HERE / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(SAMPLES), action="append", help="train only these samples")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    for name in args.only or SAMPLES:
        card = train_sample(name)
        print(f"{name}: test accuracy {card['test_accuracy']:.4f}, {card['params']:,} parameters, "
              f"{card['train_seconds']} s")


if __name__ == "__main__":
    main()
