"""Hinton, Vinyals and Dean (2015), "Distilling the knowledge in a neural network", section 3 (MNIST), through
edgetrim's Distill.

    python benchmarks/hinton.py                  # 3 seeds (see README for the time)
    python benchmarks/hinton.py --seeds 5
    python benchmarks/hinton.py --quick          # 1 seed, few epochs: checks that it runs

The paper: a 784-1200-1200-10 teacher (dropout, inputs jittered by up to 2 pixels) makes 67 test errors;
a 784-800-800-10 student with no regularisation makes 146 alone, and 74 when it also matches the teacher's
soft targets at temperature 20. Here, on MNIST's official splits (50,000 training images, 10,000 for
validation, the 10,000 official test images), in one run: the teacher once, then per seed the same
800-800 student trained alone (hard labels) and distilled (T=20), each for the same epochs with the same
optimiser (Adam, cosine decay), keeping the epoch with the best validation score. Errors are counted on
the official test set by the student's fp32 ONNX file in ONNX Runtime (the deployed file's accuracy).
Prints the table beside the paper's numbers and writes benchmarks/results/hinton.csv (one row per run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import load_data  # noqa: E402
from core.inputs.train import train_  # noqa: E402
from core.methods import spec as S  # noqa: E402
from core.methods.distill import Distill  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
TEACHER = dict(arch="mlp-1200-1200", dropout=0.5, epochs=20, lr=1e-3, augment_shift=2, batch_size=128)
STUDENT = dict(student="mlp-800-800", width=1.0, epochs=12, lr=1e-3, augment_shift=0)
TEMPERATURE, ALPHA = 20.0, 0.9
PAPER = {"teacher": 67, "student alone": 146, "student distilled": 74}  # test errors of 10,000
QUICK = dict(teacher_epochs=3, student_epochs=2, seeds=1)


def errors(model, data) -> int:
    """Test errors of the model's fp32 ONNX file, run in ONNX Runtime."""
    m = ME.measure(model, data, latency=False)
    return round((1 - m.accuracy) * len(data.test))


def train_teacher(data, epochs: int):
    torch_module = M.build(TEACHER["arch"], 10, (1, 28, 28), dropout=TEACHER["dropout"])
    train_(torch_module, data.train, data.val, epochs=epochs, lr=TEACHER["lr"], seed=0,
           augment_shift=TEACHER["augment_shift"], batch_size=TEACHER["batch_size"],
           progress=lambda i, n, msg: print(f"  teacher {msg}", flush=True))
    return M.LoadedModel("hinton_teacher", torch_module.eval(), (1, 28, 28), 10, "mlp",
                         {"hidden": (1200, 1200), "dropout": TEACHER["dropout"]})


def spread(xs: list[int]) -> str:
    if len(xs) == 1:
        return str(xs[0])
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f} ({min(xs)}-{max(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 seed, a few epochs: a smoke run, not a result")
    args = ap.parse_args()
    t_start = time.perf_counter()
    teacher_epochs = QUICK["teacher_epochs"] if args.quick else TEACHER["epochs"]
    student_epochs = QUICK["student_epochs"] if args.quick else STUDENT["epochs"]
    seeds = QUICK["seeds"] if args.quick else args.seeds
    data = load_data("mnist")
    t0 = time.perf_counter()
    teacher = train_teacher(data, teacher_epochs)
    rows = [{"model": "teacher 784-1200-1200-10 (dropout, jitter 2 px)", "seed": 0, "epochs": teacher_epochs,
             "test_errors": errors(teacher, data), "paper_errors": PAPER["teacher"],
             "seconds": round(time.perf_counter() - t0)}]
    print(f"teacher: {rows[0]['test_errors']} test errors ({rows[0]['seconds']} s)", flush=True)
    for seed in range(seeds):
        for alone in (True, False):
            cfg = Distill(**{**STUDENT, "epochs": student_epochs}, temperature=TEMPERATURE, alpha=ALPHA,
                          alone=alone, seed=seed)
            t0 = time.perf_counter()
            student = S.compress(teacher, cfg, data)
            kind = "student alone" if alone else "student distilled"
            rows.append({"model": f"{kind} 784-800-800-10", "seed": seed, "epochs": student_epochs,
                         "test_errors": errors(student, data), "paper_errors": PAPER[kind],
                         "seconds": round(time.perf_counter() - t0)})
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
