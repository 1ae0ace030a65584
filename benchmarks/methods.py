"""What each compression method does to the bundled samples, measured in one run.

    python benchmarks/methods.py                       # all samples (about 15 minutes on 2 cores)
    python benchmarks/methods.py --models lenet5 mlp   # a subset
    python benchmarks/methods.py --seeds 1             # one seed per student (faster)

Prints five tables and writes each as CSV under benchmarks/results/:
pruning 0-95 % (one-shot and fine-tuned), weight bits 8..2 (PTQ vs QAT), int8 / fp16
files in ONNX Runtime, students (distilled vs trained alone, mean and spread over
seeds), and latency ratios (fp32 vs int8 in ONNX Runtime, dense vs 50 % structured,
each timed against the fp32 model in three alternating rounds: median ratio and range).
Accuracy is on the held-out test split; sizes are real files.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import data as D  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods.deploy import Float16, Int8  # noqa: E402
from core.methods.distill import Distill  # noqa: E402
from core.methods.prune import StructuredPrune, UnstructuredPrune  # noqa: E402
from core.methods.quantize import WeightQuant  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95)
FINETUNE_EPOCHS = 5
BITS = (8, 6, 4, 3, 2)
QAT_EPOCHS = 5
WIDTHS = (0.75, 0.5, 0.25)
STUDENT_RECIPE = {  # epochs / lr per teacher: the sample's own recipe
    "mlp": dict(epochs=40, lr=1e-3, augment_shift=1),
    "lenet5": dict(epochs=30, lr=2e-3, augment_shift=2),
    "mobilenet_v3_small": dict(epochs=40, lr=3e-3, augment_shift=4),
}
LATENCY_BUDGET_S = 1.0
OUT = Path(__file__).resolve().parent / "results"


def point(model, spec: S.Spec, data, latency=False) -> ME.Metrics:
    return ME.measure(S.apply(model, spec, data), data, spec.deploy, latency=latency, budget_s=LATENCY_BUDGET_S)


def pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def kb(x: int | None) -> float | None:
    return None if x is None else round(x / 1024, 1)


def pruning_rows(name, model, data):
    rows = []
    for kind, make in (("unstructured", UnstructuredPrune), ("structured", StructuredPrune)):
        for r in RATIOS:
            one = point(model, S.Spec(prune=make(r)), data)
            ft = point(model, S.Spec(prune=make(r, finetune_epochs=FINETUNE_EPOCHS)), data)
            rows.append({"model": name, "kind": kind, "ratio": r, "acc %": pct(one.accuracy),
                         f"acc +FT{FINETUNE_EPOCHS} %": pct(ft.accuracy), "params": ft.params,
                         "non-zeros": ft.nonzero_params, "onnx KB": kb(ft.onnx_bytes),
                         "archive KB": kb(ft.archive_bytes)})
            print(f"  {name} {kind} {r}: {rows[-1]['acc %']} / {rows[-1][f'acc +FT{FINETUNE_EPOCHS} %']}", flush=True)
    return rows


def quant_rows(name, model, data, base: ME.Metrics):
    rows = []
    for bits in BITS:
        ptq = point(model, S.Spec(quantize=WeightQuant(bits)), data)
        qat = point(model, S.Spec(quantize=WeightQuant(bits, qat_epochs=QAT_EPOCHS)), data)
        rows.append({"model": name, "method": f"{bits}-bit weights, per channel", "PTQ acc %": pct(ptq.accuracy),
                     f"QAT{QAT_EPOCHS} acc %": pct(qat.accuracy), "archive KB": kb(qat.archive_bytes),
                     "x smaller": round(base.onnx_bytes / qat.archive_bytes, 1), "onnx KB": kb(qat.onnx_bytes)})
        print(f"  {name} {bits} bits: PTQ {rows[-1]['PTQ acc %']} QAT {rows[-1][f'QAT{QAT_EPOCHS} acc %']}", flush=True)
    for label, cfg in (("int8 static QDQ (ORT)", Int8()), ("int8 dynamic (ORT)", Int8(mode="dynamic")),
                       ("fp16 (ORT)", Float16())):
        m = point(model, S.Spec(deploy=cfg), data)
        rows.append({"model": name, "method": label, "PTQ acc %": pct(m.accuracy), f"QAT{QAT_EPOCHS} acc %": None,
                     "archive KB": None, "x smaller": round(base.onnx_bytes / m.onnx_bytes, 1),
                     "onnx KB": kb(m.onnx_bytes)})
    return rows


def student_rows(name, model, data, seeds: int):
    rows = []
    recipe = STUDENT_RECIPE.get(name, {})
    for w in WIDTHS:
        for alone in (False, True):
            accs, m = [], None
            for seed in range(seeds):
                m = point(model, S.Spec(distill=Distill(width=w, alone=alone, seed=seed, **recipe)), data)
                accs.append(100 * m.accuracy)
            rows.append({"model": name, "width": w, "training": "alone" if alone else "distilled",
                         "seeds": seeds, "mean acc %": round(statistics.mean(accs), 2),
                         "std": round(statistics.stdev(accs), 2) if seeds > 1 else None,
                         "errors (mean)": round((100 - statistics.mean(accs)) / 100 * m.test_samples, 1),
                         "params": m.params, "onnx KB": kb(m.onnx_bytes)})
            print(f"  {name} width {w} {'alone' if alone else 'distilled'}: {rows[-1]['mean acc %']}", flush=True)
    return rows


def latency_rows(name, model, data):
    """Each change timed against the fp32 model in alternating rounds, so both see the same machine."""
    rows = []
    for label, spec in (("int8 static QDQ", S.Spec(deploy=Int8())),
                        ("50% structured", S.Spec(prune=StructuredPrune(0.5))),
                        ("90% unstructured", S.Spec(prune=UnstructuredPrune(0.9)))):
        new_model = S.apply(model, spec, data)
        rounds = [(ME.measure(model, data, budget_s=LATENCY_BUDGET_S / 3),
                   ME.measure(new_model, data, spec.deploy, budget_s=LATENCY_BUDGET_S / 3)) for _ in range(3)]
        for runtime in ME.RUNTIMES:
            for b in ME.BATCHES:
                pairs = [(o.latency_ms(runtime, b), n.latency_ms(runtime, b)) for o, n in rounds]
                if pairs[0][1] is None:
                    continue
                old = statistics.median(p[0] for p in pairs)
                new = statistics.median(p[1] for p in pairs)
                ratios = sorted(o / n for o, n in pairs)
                rows.append({"model": name, "change": label, "runtime": runtime, "batch": b,
                             "fp32 ms": round(old, 4), "new ms": round(new, 4), "speed-up": round(old / new, 2),
                             "min-max": f"{ratios[0]:.2f}-{ratios[-1]:.2f}",
                             "threads": rounds[0][1].latency[0].threads})
    return rows


def write_csv(rows: list[dict], name: str) -> None:
    OUT.mkdir(exist_ok=True)
    with open(OUT / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))  # every row's columns
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[n for n in M.sample_names()
                                                    if M.sample_card(n).get("data") == "digits"])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per student (mean and spread)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["pruning", "quantization", "students", "latency"])
    ap.add_argument("--tag", default="", help="suffix for the CSV names, so partial runs do not overwrite others")
    args = ap.parse_args()
    os.environ.setdefault("EDGETRIM_CACHE", tempfile.mkdtemp(prefix="edgetrim-bench-"))  # train students afresh
    data = D.load_digits()
    tables: dict[str, list[dict]] = {"pruning": [], "quantization": [], "students": [], "latency": []}
    t0 = time.perf_counter()
    for name in args.models:
        model = M.load_sample(name)
        base = ME.measure(model, data, budget_s=LATENCY_BUDGET_S)
        print(f"{name}: baseline {pct(base.accuracy)} %, {kb(base.onnx_bytes)} KB", flush=True)
        if "pruning" not in args.skip:
            tables["pruning"] += pruning_rows(name, model, data)
        if "quantization" not in args.skip:
            tables["quantization"] += quant_rows(name, model, data, base)
        if "students" not in args.skip:
            tables["students"] += student_rows(name, model, data, args.seeds)
        if "latency" not in args.skip:
            tables["latency"] += latency_rows(name, model, data)
    for title, rows in tables.items():
        if rows:
            print(f"\n## {title}\n")
            print(format_table(rows))
            write_csv(rows, f"{title}{'_' + args.tag if args.tag else ''}")
    print(f"\n{time.perf_counter() - t0:.0f} s in all; CSV in {OUT}")


if __name__ == "__main__":
    main()
