"""A big teacher made small and fast: the ResNet-18 sample on MNIST against its pruned copies and its students.

    python benchmarks/teacher.py             # about an hour alone on 2 cores (see README)
    python benchmarks/teacher.py --quick     # a smoke run: few images, one seed; not a result

In one run, through edgetrim's registered methods, on MNIST's official test set:
1. the teacher (`resnet18_mnist`, 0.46 G MACs), as an fp32 and an int8 (static QDQ) ONNX file;
2. structured pruning (channels removed by L2 norm, Torch-Pruning, residual groups kept consistent) at RATIOS,
   fine-tuned for FT_EPOCHS epochs of FT_IMAGES images, fp32 and int8;
3. students distilled from the teacher (T=4, alpha 0.9, on unshifted images: the teacher's logits are computed
   once and stored), and the same students trained alone on hard labels, fp32 and int8; the classic LeNet-5
   with SEEDS seeds (mean and spread), the others with one;
4. every candidate's latency timed side by side with the teacher's in ROUNDS alternating rounds (ONNX Runtime
   and PyTorch, batch 1, all threads): the median of the round medians and their range;
5. the fastest point within FLOOR_POINTS of the teacher's accuracy per family, and its speed-up and size ratio.
Accuracy is the deployed ONNX file's, in ONNX Runtime. Writes benchmarks/results/teacher.csv, and every point
(with its own latencies) to the results store as run `resnet18-teacher`: `edgetrim dashboard`, Trade-offs.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import load_data  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods.deploy import Int8  # noqa: E402
from core.methods.distill import Distill  # noqa: E402
from core.methods.prune import StructuredPrune  # noqa: E402
from core.results.store import Point, Store, point_key  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
TEACHER = "resnet18_mnist"
FLOOR_POINTS = 0.5                    # within this many points of the teacher's test accuracy
RATIOS = (0.5, 0.7)                   # structured: share of channels removed
FT_EPOCHS, FT_IMAGES = 2, 10_000      # fine-tuning after pruning: epochs of this many images
STUDENTS = {  # name: (Distill fields, seeds)
    "lenet5": (dict(student="lenet5", width=1.0, epochs=8, lr=2e-3), 3),
    "lenet5_caffe": (dict(student="lenet5_caffe", width=1.0, epochs=6, lr=1e-3), 1),
}
DISTILL = dict(temperature=4.0, alpha=0.9, augment_shift=0)
ROUNDS, BUDGET_S = 5, 0.3
QUICK = dict(ratios=(0.5,), ft_images=2_000, students={"lenet5": (dict(student="lenet5", width=1.0, epochs=1), 1)},
             rounds=2)


def candidates(teacher, data, ratios, ft_images, students):
    """(family, name, seed, Spec, LoadedModel) for every compressed model; the teacher first."""
    yield "teacher", f"{teacher.name} (teacher)", 0, S.Spec(), teacher
    for r in ratios:
        t0 = time.perf_counter()
        cfg = StructuredPrune(ratio=r, finetune_epochs=FT_EPOCHS, samples_per_epoch=ft_images, lr=5e-4)
        pruned = S.compress(teacher, cfg, data)
        print(f"  structured {r:.0%}: {time.perf_counter() - t0:.0f} s", flush=True)
        yield "pruning", f"{teacher.name}, {r:.0%} of channels pruned", 0, S.Spec(prune=cfg), pruned
    for name, (fields, seeds) in students.items():
        for seed in range(seeds):
            for alone in (False, True):
                t0 = time.perf_counter()
                cfg = Distill(**fields, **DISTILL, alone=alone, seed=seed)
                student = S.compress(teacher, cfg, data)
                kind = "student alone" if alone else "distillation"
                print(f"  {name} {kind} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
                yield kind, name, seed, S.Spec(distill=cfg), student


def why_not_faster(m: ME.Metrics) -> str:
    """A sentence for an int8 file that is not faster than its fp32 file."""
    if m.float_compute_nodes:
        return f"{m.float_compute_nodes} compute ops stay in float (no int8 kernel), each wrapped in (de)quantize"
    return "every op runs on int8 kernels, but at this size the (de)quantize steps cost as much as they save"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few images, one seed, one ratio: a smoke run")
    ap.add_argument("--store", default=None, help="results store the points go to (default: edgetrim's own), so "
                                                  "Trade-offs shows them")
    ap.add_argument("--run", default="resnet18-teacher", help="the run's name in the store")
    ap.add_argument("--model", default=TEACHER, help="the teacher: a sample trained on MNIST")
    args = ap.parse_args()
    t_start = time.perf_counter()
    ratios = QUICK["ratios"] if args.quick else RATIOS
    ft_images = QUICK["ft_images"] if args.quick else FT_IMAGES
    students = QUICK["students"] if args.quick else STUDENTS
    rounds = QUICK["rounds"] if args.quick else ROUNDS
    data = load_data("mnist")
    teacher = M.load_sample(args.model)
    store = Store(args.store)
    store.add_run(args.run, {"run": args.run, "model": args.model, "data": "mnist", "axes": {}}, args.model, "mnist")
    rows, entries = [], []
    for family, name, seed, spec, model in candidates(teacher, data, ratios, ft_images, students):
        for deploy in (None, Int8()):
            t0 = time.perf_counter()
            m = ME.measure(model, data, deploy, budget_s=0.05)
            point = dataclasses.replace(spec, deploy=deploy)
            store.put(Point(point_key(teacher.fingerprint, data.fingerprint, point), args.model, teacher.fingerprint,
                            data.name, data.fingerprint, point, "ok", m, None, time.perf_counter() - t0),
                      args.run, len(rows))
            rows.append({"family": family, "model": name, "seed": seed, "file": "int8" if deploy else "fp32",
                         "accuracy %": round(100 * m.accuracy, 2), "file bytes": m.onnx_bytes, "MACs": m.macs,
                         "params": m.params, "int8 nodes": m.int8_nodes, "float nodes": m.float_compute_nodes})
            entries.append((model, deploy, m))
            print(f"    {name} seed {seed} {rows[-1]['file']}: {rows[-1]['accuracy %']} %, "
                  f"{m.onnx_bytes / 1024:.0f} KB", flush=True)
    t_time = time.perf_counter()
    threads = torch.get_num_threads()
    times = ME.time_together([(model, deploy) for model, deploy, _ in entries], data, batches=(1,), rounds=rounds,
                             budget_s=BUDGET_S)
    for i, row in enumerate(rows):
        for runtime, col in (("onnxruntime", "ORT"), ("pytorch", "PyTorch")):
            rs = times[(runtime, 1)][i]
            row[f"{col} ms"] = None if rs is None else round(statistics.median(rs), 4)
            row[f"{col} range"] = None if rs is None else f"{min(rs):.3f}-{max(rs):.3f}"
            base = times[(runtime, 1)][0]
            row[f"{col} speed-up"] = None if rs is None else round(statistics.median(b / x for b, x in zip(base, rs)),
                                                                   2)
        row["threads"] = threads
        row["note"] = ""
    for i, row in enumerate(rows):  # an int8 file slower than its own fp32 file says why
        if row["file"] == "int8" and row["ORT ms"] >= rows[i - 1]["ORT ms"]:
            row["note"] = why_not_faster(entries[i][2])
    print(f"timing: {time.perf_counter() - t_time:.0f} s, {rounds} alternating rounds, {threads} threads")
    if not args.quick:
        write_csv(rows, "teacher")
    print(format_table([{k: v for k, v in r.items() if k not in ("int8 nodes", "float nodes", "threads")}
                        for r in rows]))
    base = rows[0]
    floor = base["accuracy %"] - FLOOR_POINTS
    print(f"\nteacher: {base['accuracy %']} %, {base['file bytes']:,} B, ORT {base['ORT ms']} ms; "
          f"fastest within {FLOOR_POINTS} point ({floor:.2f} %) per family:")
    for family in ("pruning", "distillation", "student alone", "teacher"):
        ok = [r for r in rows if r["family"] == family and r["accuracy %"] >= floor]
        if not ok:
            print(f"  {family}: none within the floor")
            continue
        best = max(ok, key=lambda r: r["ORT speed-up"])
        print(f"  {family}: {best['model']} ({best['file']}, seed {best['seed']}): {best['accuracy %']} %, "
              f"{best['ORT speed-up']}x faster on ORT (rounds {best['ORT range']} ms), "
              f"{base['file bytes'] / best['file bytes']:.1f}x smaller file")
    for name, (_, seeds) in students.items():
        if seeds > 1:
            for kind in ("distillation", "student alone"):
                accs = [r["accuracy %"] for r in rows if r["model"] == name and r["family"] == kind
                        and r["file"] == "fp32"]
                print(f"  {name} {kind}: {statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f} % "
                      f"over {seeds} seeds ({min(accs)}-{max(accs)})")
    print(f"{time.perf_counter() - t_start:.0f} s in all")


if __name__ == "__main__":
    main()
