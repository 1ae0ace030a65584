"""Hinton, Vinyals and Dean (2015), "Distilling the knowledge in a neural network", section 3 (MNIST), through
edgetrim's Distill.

    python benchmarks/hinton.py                  # the teacher, then 3 seeds of students (see docs/results/hinton.md)
    python benchmarks/hinton.py --seeds 5
    python benchmarks/hinton.py --quick          # 1 seed, few epochs: checks that it runs
    python benchmarks/hinton.py --validate --optimiser sgd --lr 0.1 --epochs 60   # a teacher schedule, on validation

The paper: a 784-1200-1200-10 teacher (dropout on the inputs and hidden units, max-norm weight constraints, inputs
jittered by up to 2 pixels, all 60,000 training images) makes 67 test errors; a 784-800-800-10 student with no
regularisation makes 146 alone, and 74 when it also matches the teacher's soft targets at temperature 20.

Here the teacher has dropout 0.2 on the pixels and 0.5 on each hidden layer, every hidden unit's incoming weight
vector clamped to L2 norm <= MAX_NORM after each step, and images shifted by up to 2 pixels. Its schedule
(optimiser, learning rate, epochs) was chosen with `--validate`: trained on MNIST's 50,000 training images and
scored on the 10,000 validation images after every epoch (the official test set untouched). The result run then
trains the teacher on all 60,000 (train + validation) for the chosen epochs and keeps the last epoch's weights
(nothing is held out to choose another), and per seed the same 800-800 student, also on all 60,000, alone (hard
labels) and distilled (T=20), each for the same epochs with Distill's optimiser (Adam, cosine decay). Errors are
counted on the official 10,000 test images by each model's fp32 ONNX file in ONNX Runtime (the deployed file's
accuracy). Prints the table beside the paper's numbers and writes benchmarks/results/hinton.csv (one row per run);
`--validate` writes benchmarks/results/hinton_validation_<optimiser>.csv (one row per epoch).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import DataSet, Split, load_data  # noqa: E402
from core.inputs.train import accuracy, seed_everything, shift, train_  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods.distill import Distill  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
# The schedule (optimiser, lr, epochs) is what --validate chose: docs/results/hinton.md has the numbers.
TEACHER = dict(arch="mlp-1200-1200", dropout=0.5, input_dropout=0.2, max_norm=3.5, optimiser="adam", lr=1e-3,
               momentum=0.9, epochs=60, augment_shift=2, batch_size=128)
STUDENT = dict(student="mlp-800-800", width=1.0, epochs=12, lr=1e-3, augment_shift=0)
TEMPERATURE, ALPHA = 20.0, 0.9
PAPER = {"teacher": 67, "student alone": 146, "student distilled": 74}  # test errors of 10,000
QUICK = dict(teacher_epochs=3, student_epochs=2, seeds=1)


@torch.no_grad()
def max_norm_(module: nn.Module, c: float) -> None:
    """Clamp every hidden unit's incoming weight vector (a row of each Linear but the last) to L2 norm <= c, in
    place: the dropout paper's max-norm constraint, applied after each optimiser step."""
    for lin in [m for m in module.modules() if isinstance(m, nn.Linear)][:-1]:
        lin.weight.mul_((c / lin.weight.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0))


def all_training(data: DataSet) -> DataSet:
    """MNIST's 50,000 training and 10,000 validation images as one 60,000-image training split (the paper's);
    `val` stays the 10,000 validation images (now seen in training: nothing can be chosen on them), `test` the
    official test set. A fingerprint of its own, so cached students and teacher logits are not confused."""
    train = Split(torch.cat([data.train.raw, data.val.raw]), torch.cat([data.train.y, data.val.y]))
    fp = hashlib.sha256(f"{data.fingerprint}+train+val".encode()).hexdigest()[:16]
    return dataclasses.replace(data, name=f"{data.name} (train + val)", train=train, fingerprint=fp)


def at_bound(module: nn.Module, c: float) -> float:
    """The share of hidden units whose incoming weight vector is at the max-norm bound (the constraint acting)."""
    norms = torch.cat([m.weight.norm(dim=1) for m in module.modules() if isinstance(m, nn.Linear)][:-1])
    return (norms > c * 0.999).float().mean().item()


def val_errors(module: nn.Module, split: Split) -> int:
    return round((1 - accuracy(module, split)) * len(split))


def _sgd_(module: nn.Module, train: Split, epochs: int, lr: float, momentum: float, batch_size: int,
          augment_shift: int, after_step, after_epoch, seed: int = 0) -> None:
    """The dropout paper's optimiser: SGD with (Nesterov) momentum and a high learning rate, here cosine-decayed
    per step; train_ is Adam's loop, so this is its twin for SGD (same shifts, same batches, same hooks)."""
    gen = seed_everything(seed)
    opt = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum, nesterov=True)
    steps = epochs * math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(len(train), generator=gen)
        for i, x in zip(range(0, len(order), batch_size), train.batches_of(order, batch_size)):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(module(shift(x, augment_shift, gen)), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            after_step(module)
        after_epoch(epoch)
    module.eval()


def train_teacher(train: Split, val: Split, epochs: int, optimiser: str, lr: float, curve: list | None = None):
    """The teacher trained on `train` for `epochs` with the chosen optimiser, the last epoch's weights kept.
    With `curve` (a list), one row per epoch is appended: errors on `val` and the seconds so far."""
    t = TEACHER
    torch.manual_seed(0)
    module = M.build(t["arch"], 10, (1, 28, 28), dropout=t["dropout"], input_dropout=t["input_dropout"])
    t0 = time.perf_counter()

    def after_epoch(epoch: int) -> None:
        row = {"optimiser": optimiser, "lr": lr, "epochs": epochs, "epoch": epoch + 1,
               "seconds": round(time.perf_counter() - t0)}
        if curve is not None:
            row["val_errors"] = val_errors(module, val)
            curve.append(row)
        row["at_max_norm"] = round(at_bound(module, t["max_norm"]), 3)
        print(f"  teacher epoch {epoch + 1}/{epochs} ({row['seconds']} s)"
              + (f": {row['val_errors']} val errors" if "val_errors" in row else "")
              + f"; {row['at_max_norm']:.0%} of hidden units at the max-norm bound", flush=True)

    def after_step(m: nn.Module) -> None:
        max_norm_(m, t["max_norm"])

    if optimiser == "sgd":
        _sgd_(module, train, epochs, lr, t["momentum"], t["batch_size"], t["augment_shift"], after_step, after_epoch)
    else:
        done = [0]

        def progress(i, n, msg):
            after_epoch(done[0])
            done[0] += 1
        train_(module, train, val, epochs=epochs, lr=lr, seed=0, augment_shift=t["augment_shift"],
               batch_size=t["batch_size"], after_step=after_step, keep_best=False, progress=progress)
    return M.LoadedModel("hinton_teacher", module.eval(), (1, 28, 28), 10, "mlp",
                         {"hidden": (1200, 1200), "dropout": t["dropout"], "input_dropout": t["input_dropout"]})


def errors(model, data) -> int:
    """Test errors of the model's fp32 ONNX file, run in ONNX Runtime."""
    m = ME.measure(model, data, latency=False)
    return round((1 - m.accuracy) * len(data.test))


def spread(xs: list[int]) -> str:
    if len(xs) == 1:
        return str(xs[0])
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f} ({min(xs)}-{max(xs)})"


def validate(args) -> None:
    """One teacher schedule on validation: trained on the 50,000 training images, scored on the 10,000 validation
    images after every epoch; writes benchmarks/results/hinton_validation_<optimiser>.csv."""
    data = load_data("mnist")
    epochs = QUICK["teacher_epochs"] if args.quick else args.epochs
    curve: list[dict] = []
    train_teacher(data.train, data.val, epochs, args.optimiser, args.lr, curve)
    best = min(curve, key=lambda r: r["val_errors"])
    print(f"{args.optimiser} lr {args.lr:g}, {epochs} epochs: {curve[-1]['val_errors']} val errors at the end, "
          f"fewest {best['val_errors']} (epoch {best['epoch']}); {curve[-1]['seconds']} s")
    if not args.quick:
        write_csv(curve, f"hinton_validation_{args.optimiser}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 seed, a few epochs: a smoke run, not a result")
    ap.add_argument("--validate", action="store_true",
                    help="train one teacher schedule on 50,000 images and score it on validation every epoch")
    ap.add_argument("--optimiser", choices=("sgd", "adam"), default=TEACHER["optimiser"])
    ap.add_argument("--lr", type=float, default=TEACHER["lr"])
    ap.add_argument("--epochs", type=int, default=TEACHER["epochs"], help="the teacher's epochs")
    args = ap.parse_args()
    if args.validate:
        return validate(args)
    t_start = time.perf_counter()
    teacher_epochs = QUICK["teacher_epochs"] if args.quick else args.epochs
    student_epochs = QUICK["student_epochs"] if args.quick else STUDENT["epochs"]
    seeds = QUICK["seeds"] if args.quick else args.seeds
    data = load_data("mnist")
    full = all_training(data)
    t0 = time.perf_counter()
    teacher = train_teacher(full.train, data.val.take(torch.arange(1000)), teacher_epochs, args.optimiser, args.lr)
    rows = [{"model": "teacher 784-1200-1200-10 (dropout 0.2 / 0.5, max-norm, jitter 2 px)", "seed": 0,
             "epochs": teacher_epochs, "train_images": len(full.train), "test_errors": errors(teacher, data),
             "paper_errors": PAPER["teacher"], "seconds": round(time.perf_counter() - t0),
             "at_max_norm": round(at_bound(teacher.module, TEACHER["max_norm"]), 3)}]
    print(f"teacher: {rows[0]['test_errors']} test errors ({rows[0]['seconds']} s)", flush=True)
    for seed in range(seeds):
        for alone in (True, False):
            cfg = Distill(**{**STUDENT, "epochs": student_epochs}, temperature=TEMPERATURE, alpha=ALPHA,
                          alone=alone, seed=seed)
            t0 = time.perf_counter()
            student = S.compress(teacher, cfg, full)
            kind = "student alone" if alone else "student distilled"
            rows.append({"model": f"{kind} 784-800-800-10", "seed": seed, "epochs": student_epochs,
                         "train_images": len(full.train), "test_errors": errors(student, data),
                         "paper_errors": PAPER[kind], "seconds": round(time.perf_counter() - t0)})
            print(f"seed {seed} {kind}: {rows[-1]['test_errors']} test errors ({rows[-1]['seconds']} s)", flush=True)
    if not args.quick:
        write_csv(rows, "hinton")
    table = []
    for kind in ("teacher", "student alone", "student distilled"):
        errs = [r["test_errors"] for r in rows if r["model"].startswith(kind)]
        table.append({"model": kind, "runs": len(errs), "paper: test errors": PAPER[kind],
                      "ours: test errors (mean ± sd, range)": spread(errs)})
    print(format_table(table))
    alone = [r["test_errors"] for r in rows if r["model"].startswith("student alone")]
    taught = [r["test_errors"] for r in rows if r["model"].startswith("student distilled")]
    verdict = "fewer errors in every seed" if max(taught) < min(alone) else "no clear gain across seeds"
    print(f"distilled vs alone: {verdict}; MNIST official test set, {seeds} seed(s); "
          f"{time.perf_counter() - t_start:.0f} s in all")


if __name__ == "__main__":
    main()
