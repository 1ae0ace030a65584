"""Compression and speed at an accuracy floor, per sample, against the field's anchors.

    python benchmarks/anchors.py                      # all samples (about 12 minutes on 2 cores)
    python benchmarks/anchors.py --models mlp lenet5
    python benchmarks/anchors.py --models lenet300_mnist lenet5_caffe_mnist --tag mnist   # the papers' models, MNIST

For each sample one sweep (through edgetrim's own engine and store) over pruning kind x
ratio (fine-tuned) x number format, then:
1. the smallest file whose test accuracy is at most 0.5 / 1 / 2 points below the
   baseline: the compact archive (codebooks, masks and indices counted, as Deep
   Compression counts them) and the deployable ONNX file, as ratios to the fp32 ONNX file;
2. the lowest batch-1 latency at the same floors on ONNX Runtime and on PyTorch, the
   winner re-timed against the fp32 model in alternating rounds (median ratio, range).
Writes benchmarks/results/anchors_size.csv and anchors_speed.csv.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.engine import grid, runner, sweep  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.results import pareto
from core.results.store import Store  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
FLOORS = (0.1, 0.5, 1.0, 2.0)       # accuracy points below the baseline
AXES = {"prune": ["unstructured", "structured"], "prune_ratio": [0.0, 0.25, 0.5, 0.75, 0.9, 0.95],
        "finetune_epochs": [5], "quantize": ["fp32", "int8", "w8", "w6", "w4", "w3", "qat4", "qat3", "share4",
                                             "share3"]}
SETTINGS = {"prune": {"steps": 2}, "qat_epochs": 3}
ROUNDS, BUDGET_S = 3, 0.4
BUDGET = {"samples_per_epoch": 10_000, "patience": 2}  # on MNIST: 10,000 training images per epoch, early stopping
REFERENCE = {"mlp": "Deep Compression, LeNet-300-100 on MNIST: 40x, no accuracy loss (digits here: not comparable)",
             "lenet5": "Deep Compression, LeNet-5 on MNIST: 39x, no accuracy loss (digits here: not comparable)",
             "lenet300_mnist": "Deep Compression 40x (1.64 -> 1.58 % error); soft weight-sharing 64x",
             "lenet5_caffe_mnist": "Deep Compression 39x (0.80 -> 0.74 % error); soft weight-sharing 162x"}


def run_grid(name: str, store: Store) -> tuple:
    data = M.sample_card(name).get("data", "digits")  # each sample on the data it was trained on
    settings = {**SETTINGS, "budget": BUDGET} if data == "mnist" else SETTINGS
    cfg = grid.load_config({"run": name, "model": name, "data": data, "axes": AXES, "settings": settings,
                             "measure": {"latency": True, "budget_s": 0.05}})
    t0 = time.perf_counter()
    sweep.run_sweep(cfg, store, progress=lambda d, t, m: print(f"\r  {name}: {d}/{t}", end="", flush=True))
    print(f"\r  {name}: {len(grid.expand(cfg))} points in {time.perf_counter() - t0:.0f} s")
    df = store.table(name)
    return cfg, df[df["status"] == "ok"]


def size_rows(name: str, df) -> list[dict]:
    base = df[df["family"] == "baseline"].iloc[0]
    rows = []
    for drop in FLOORS:
        floor = pareto.resolve_floor(pareto.baseline_accuracy(df), max_drop=drop)  # judged on validation
        for objective, col in (("archive", "archive_bytes"), ("size", "onnx_bytes")):
            choice = pareto.pick(df, floor, objective)
            r = choice.row
            rows.append({"model": name, "max drop (pt)": drop, "file": "archive" if objective == "archive" else "onnx",
                         "acc %": round(100 * r["accuracy"], 2), "base acc %": round(100 * base["accuracy"], 2),
                         "bytes": int(r[col]), "fp32 onnx bytes": int(base["onnx_bytes"]),
                         "x smaller": round(base["onnx_bytes"] / r[col], 1), "met": "yes" if choice.met_floor else "no",
                         "spec": r["label"]})
    return rows


def speed_rows(name: str, df, cfg) -> list[dict]:
    model, data = runner.load_context(cfg.model, cfg.data)
    base = df[df["family"] == "baseline"].iloc[0]
    rows = []
    for drop in FLOORS:
        floor = pareto.resolve_floor(pareto.baseline_accuracy(df), max_drop=drop)  # judged on validation
        for runtime, objective in (("onnxruntime", "latency"), ("pytorch", "torch_latency")):
            choice = pareto.pick(df, floor, objective)
            spec = S.Spec.from_json(choice.row["spec_json"])
            fast = S.apply(model, spec, data)
            rounds = [(ME.measure(model, data, budget_s=BUDGET_S, batches=(1,), runtimes=(runtime,)),
                       ME.measure(fast, data, spec.deploy, budget_s=BUDGET_S, batches=(1,), runtimes=(runtime,)))
                      for _ in range(ROUNDS)]
            pairs = [(o.latency_ms(runtime, 1), n.latency_ms(runtime, 1)) for o, n in rounds]
            ratios = sorted(o / n for o, n in pairs)
            rows.append({"model": name, "max drop (pt)": drop, "runtime": runtime,
                         "acc %": round(100 * choice.row["accuracy"], 2),
                         "fp32 ms": round(statistics.median(p[0] for p in pairs), 4),
                         "best ms": round(statistics.median(p[1] for p in pairs), 4),
                         "speed-up": round(statistics.median(ratios), 2), "range": f"{ratios[0]:.2f}-{ratios[-1]:.2f}",
                         "threads": rounds[0][1].latency[0].threads, "spec": spec.label})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[n for n in M.sample_names()
                                                    if M.sample_card(n).get("data") == "digits"])
    ap.add_argument("--tag", default="", help="suffix of the CSV names, so runs on other models stay apart")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgetrim-anchors-"))
    os.environ.setdefault("EDGETRIM_CACHE", str(tmp / "cache"))
    store = Store(tmp / "anchors.sqlite")
    sizes, speeds = [], []
    for name in args.models:
        cfg, df = run_grid(name, store)
        sizes += size_rows(name, df)
        speeds += speed_rows(name, df, cfg)
    print("\n## smallest file at a floor\n")
    print(format_table(sizes))
    for name in args.models:
        if name in REFERENCE:
            print(f"reference for {name}: {REFERENCE[name]}")
    print("\n## lowest batch-1 latency at a floor (re-timed against fp32 in alternating rounds)\n")
    print(format_table(speeds))
    suffix = f"_{args.tag}" if args.tag else ""
    write_csv(sizes, f"anchors_size{suffix}")
    write_csv(speeds, f"anchors_speed{suffix}")


if __name__ == "__main__":
    main()
