"""Deep Compression and soft weight-sharing, on their own models and data, beside the papers' tables.

    python benchmarks/deep_compression.py                               # the three MNIST samples (see README)
    python benchmarks/deep_compression.py --models lenet300_mnist --quick

For each model, in one run, on MNIST's official test set, through edgetrim's registered methods:
1. the baseline: its fp32 ONNX file (the denominator of every ratio) and that file's accuracy;
2. Deep Compression's pipeline: iterative magnitude pruning (a cubic schedule in STEPS steps, L2
   retraining on shifted images) at each ratio, then trained quantization (k-means codebooks per
   layer, centroids fine-tuned, conv and fc widths as in the paper); the compact archive stores
   relative indices and codes, both Huffman-coded;
3. soft weight-sharing: retraining under a 16 + 1 component mixture prior, weights snapped to means;
every candidate measured like any point (accuracy of its ONNX file in ONNX Runtime, archive bytes).
Prints and writes (benchmarks/results/deep_compression*.csv; rows of models not run now are kept):
- Table 1 in Deep Compression's layout: the papers' rows beside ours, top-1 error before and after,
  weights kept, compression rate; ours at <= 0.1 and <= 1 point below our own baseline;
- Tables 2-3 per layer for our best point at the tightest floor met: weights, kept %, bits per code,
  index bits, share of the archive, beside the paper's.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import load_data  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods.prune import UnstructuredPrune, prunable_weights  # noqa: E402
from core.methods.quantize import WeightShare  # noqa: E402
from core.methods.soft_share import SoftShare  # noqa: E402
from core.runtimes import archive  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
FLOORS = (0.1, 1.0)   # points below our baseline
PRUNE = dict(steps=5, lr=1e-3, weight_decay=1e-5, augment_shift=1)
TUNE = dict(finetune_epochs=3, lr=1e-4, augment_shift=1)
PLANS = {  # per model: pruning ratios, fine-tuning epochs, (fc bits, conv bits), soft weight-sharing, images per epoch
    "lenet300_mnist": dict(ratios=(0.92, 0.95, 0.97), epochs=20, bits=((5, None), (4, None)), images=None,
                           soft=dict(components=16, epochs=10, tau=5e-2, tune_epochs=2, augment_shift=1)),
    "lenet5_caffe_mnist": dict(ratios=(0.9, 0.95, 0.98), epochs=20, bits=((5, 8), (4, 6)), images=None,
                               soft=dict(components=16, epochs=6, tau=5e-2, tune_epochs=2, augment_shift=1)),
    "lenet5_mnist": dict(ratios=(0.95, 0.96, 0.97), epochs=20, bits=((4, 6), (4, 4)), images=None,
                         soft=dict(components=16, epochs=10, tau=5e-2, tune_epochs=2, augment_shift=1)),
}
QUICK = dict(ratios=(0.92,), epochs=4, bits=((5, 8),), images=10_000, soft=None)
PAPERS = {  # (method, error before %, error after %, weights kept %, compression rate)
    "lenet300_mnist": [("Deep Compression (Han et al. 2016)", 1.64, 1.58, 8.0, 40),
                       ("Soft weight-sharing (Ullrich et al. 2017)", 1.89, 1.94, 4.3, 64)],
    "lenet5_caffe_mnist": [("Deep Compression (Han et al. 2016)", 0.80, 0.74, 8.0, 39),
                           ("Soft weight-sharing (Ullrich et al. 2017)", 0.88, 0.97, 0.5, 162)],
    "lenet5_mnist": [],
}
PAPER_LAYERS = {  # Deep Compression's Tables 2-3: (layer, weights kept %, bits), in the models' layer order
    "lenet300_mnist": [("ip1", 8, 6), ("ip2", 9, 6), ("ip3", 26, 6)],
    "lenet5_caffe_mnist": [("conv1", 66, 8), ("conv2", 12, 8), ("ip1", 8, 5), ("ip2", 19, 5)],
}
TITLES = {"lenet300_mnist": "LeNet-300-100", "lenet5_caffe_mnist": "LeNet-5-Caffe", "lenet5_mnist": "LeNet-5 (classic)"}


def candidates(model, data, plan: dict):
    """(spec, compressed model) for every pruning ratio x bit setting, and soft weight-sharing."""
    for ratio in plan["ratios"]:
        prune = UnstructuredPrune(ratio=ratio, finetune_epochs=plan["epochs"], samples_per_epoch=plan["images"],
                                  **PRUNE)
        t0 = time.perf_counter()
        pruned = S.compress(model, prune, data)
        print(f"    pruned {ratio:.0%} in {time.perf_counter() - t0:.0f} s", flush=True)
        for fc, conv in plan["bits"]:
            share = WeightShare(bits=fc, conv_bits=conv, samples_per_epoch=plan["images"], **TUNE)
            yield S.Spec(prune=prune, quantize=share), S.compress(pruned, share, data)
    if plan["soft"]:
        soft = SoftShare(samples_per_epoch=plan["images"], **plan["soft"])
        t0 = time.perf_counter()
        out = S.compress(model, soft, data)
        print(f"    soft weight-sharing in {time.perf_counter() - t0:.0f} s", flush=True)
        yield S.Spec(quantize=soft), out


def kept(model) -> float:
    ws = [w for _, w in prunable_weights(model.module)]
    return sum(int((w != 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def layer_rows(name: str, model) -> list[dict]:
    """Deep Compression's Tables 2-3 for one compressed model, read off the archive's own encodings."""
    state = model.module.state_dict()
    encoded = {k: archive.encode(t) for k, t in state.items()}
    total = sum(sum(map(len, blobs)) for _, blobs in encoded.values())
    rows, paper = [], PAPER_LAYERS.get(name, [])
    for i, (layer, w) in enumerate(prunable_weights(model.module)):
        meta, blobs = encoded[f"{layer}.weight"]
        nz = w.detach()[w != 0]
        own = sum(len(b) for k, (_, bl) in encoded.items() if k.rsplit(".", 1)[0] == layer for b in bl)
        ref = paper[i] if i < len(paper) else ("", "", "")
        rows.append({"model": TITLES.get(name, name), "layer": layer, "paper layer": ref[0], "weights": w.numel(),
                     "kept %": round(100 * len(nz) / w.numel(), 1), "paper kept %": ref[1],
                     "code bits": math.ceil(math.log2(max(2, len(nz.unique())))) if len(nz) else 0,
                     "paper bits": ref[2], "index bits": meta.get("gap_bits", "-"), "encoding": meta["enc"],
                     "share of archive %": round(100 * own / total, 1)})
    return rows


def run_model(name: str, quick: bool) -> tuple[list[dict], list[dict]]:
    model, data = M.load_sample(name), load_data(M.sample_card(name)["data"])
    plan = QUICK if quick else PLANS[name]
    base = ME.measure(model, data, latency=False)
    print(f"  {name}: baseline {100 * base.accuracy:.2f} %, fp32 ONNX {base.onnx_bytes:,} B", flush=True)
    points = []
    for spec, out in candidates(model, data, plan):
        m = ME.measure(out, data, latency=False)
        points.append((spec, out, m))
        print(f"    {100 * m.accuracy:.2f} %  {base.onnx_bytes / m.archive_bytes:5.1f}x  {spec.label}", flush=True)
    title, rows, layers = TITLES.get(name, name), [], []
    for method, before, after, weights_kept, rate in PAPERS.get(name, []):
        rows.append({"model": title, "method": method, "top-1 error before %": before, "top-1 error after %": after,
                     "weights kept %": weights_kept, "compression rate": f"{rate}x", "archive bytes": ""})
    for drop in FLOORS:
        ok = [p for p in points if p[2].accuracy >= base.accuracy - drop / 100 - 1e-9]
        if not ok:
            rows.append({"model": title, "method": f"edgetrim, <= {drop} pt: no point", "top-1 error before %":
                         round(100 * (1 - base.accuracy), 2), "top-1 error after %": "", "weights kept %": "",
                         "compression rate": "", "archive bytes": ""})
            continue
        spec, out, m = min(ok, key=lambda p: p[2].archive_bytes)
        rows.append({"model": title, "method": f"edgetrim, <= {drop} pt: {spec.label}",
                     "top-1 error before %": round(100 * (1 - base.accuracy), 2),
                     "top-1 error after %": round(100 * (1 - m.accuracy), 2), "weights kept %": round(100 * kept(out), 1),
                     "compression rate": f"{base.onnx_bytes / m.archive_bytes:.1f}x", "archive bytes": m.archive_bytes})
        if not layers:   # per layer: the best point at the tightest floor that has one
            layers = layer_rows(name, out)
    soft = [p for p in points if isinstance(p[0].quantize, SoftShare)]
    for spec, out, m in soft:   # ours, at its budget, whatever the floor
        rows.append({"model": title, "method": f"edgetrim: {spec.label}", "top-1 error before %":
                     round(100 * (1 - base.accuracy), 2), "top-1 error after %": round(100 * (1 - m.accuracy), 2),
                     "weights kept %": round(100 * kept(out), 1),
                     "compression rate": f"{base.onnx_bytes / m.archive_bytes:.1f}x", "archive bytes": m.archive_bytes})
    return rows, layers


def kept_rows(name: str, titles: set[str]) -> list[dict]:
    """The rows an earlier run wrote for models not run now (so `--models` refreshes only those)."""
    path = Path(__file__).resolve().parent / "results" / f"{name}.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["model"] not in titles]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(PLANS), choices=list(PLANS))
    ap.add_argument("--quick", action="store_true", help="one ratio, one bit setting, short fine-tuning, no soft sharing")
    args = ap.parse_args()
    os.environ.setdefault("EDGETRIM_CACHE", tempfile.mkdtemp(prefix="edgetrim-dc-"))
    t0, table, layers = time.perf_counter(), [], []
    for name in args.models:
        rows, per_layer = run_model(name, args.quick)
        table += rows
        layers += per_layer
    print("\n## Table 1: compression rate (fp32 ONNX file / compact archive) and top-1 error, MNIST test set\n")
    print(format_table(table))
    print("\n## Tables 2-3: per layer, our best point at the tightest floor met\n")
    print(format_table(layers))
    suffix = "_quick" if args.quick else ""
    titles = {TITLES[n] for n in args.models}
    write_csv(kept_rows(f"deep_compression{suffix}", titles) + table, f"deep_compression{suffix}")
    if layers:
        write_csv(kept_rows(f"deep_compression_layers{suffix}", titles) + layers, f"deep_compression_layers{suffix}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
