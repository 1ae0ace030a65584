"""Runtimes side by side: every sample in PyTorch eager, ONNX Runtime, ExecuTorch and LiteRT, fp32, int8 and 4-bit
files.

    python benchmarks/runtimes.py                         # every sample (about 20 min on 2 cores; README), and
                                                          # about 10 min more with LiteRT (a .tflite scores one
                                                          # image per call: the ResNet-18 on MNIST takes minutes)
    python benchmarks/runtimes.py --models lenet5 mlp     # some of them
    python benchmarks/runtimes.py --threads 1             # a one-thread device profile

For each sample, in one run: the fp32 model in PyTorch eager; its ONNX file as fp32, static int8 (QDQ) and int4
(MatMulNBits: 4-bit Linear weights in blocks of 32) in ONNX Runtime; its ExecuTorch .pte (XNNPACK) as fp32, int8
(PT2E, XNNPACKQuantizer per-channel) and int4 (8-bit dynamic activations x 4-bit grouped Linear weights); its
LiteRT .tflite (batch 1, run one image per call) as fp32, int8 (PT2E, litert-torch's quantizer, int8 in and out) and
int4 (ai-edge-quantizer: 8-bit dynamic activations x 4-bit Linear weights), when the litert extra is installed (else
left out, said on stderr). Each file's accuracy is scored in its own runtime on the sample's whole official test
split; every file's batch-1 latency is timed in ROUNDS alternating rounds (every file once per round, so the
machine's noise hits all alike): the median of the round medians and their range. Writes
benchmarks/results/runtimes.csv.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.inputs.data import load_data  # noqa: E402
from core.methods.deploy import Int4, Int8  # noqa: E402
from core.runtimes import measure as ME  # noqa: E402
from core.runtimes import micro  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import write_csv  # noqa: E402

# ---- defaults -------------------------------------------------------------------------
FORMATS = {"fp32": None, "int8": Int8(), "int4": Int4()}
RUNTIMES = ("pytorch", "onnxruntime", "executorch", "litert")  # litert is left out, loudly, when not installed
ROUNDS, BUDGET_S = 5, 0.2


def device_memory(runner) -> dict:
    """A microcontroller's RAM for the runner's file and the boards it fits on, where its runtime says (LiteRT)."""
    if runner.memory is None:
        return {}
    flash = runner.path.stat().st_size
    ram, source = runner.memory(runner.path)
    return {"ram bytes": ram, "ram from": source,
            "fits on": " ".join(micro.boards_fitting(flash, ram, source)) or "-"}


def bench(name: str, threads: int, rounds: int, budget_s: float, runtimes=RUNTIMES) -> list[dict]:
    model = M.load_sample(name)
    data = load_data(model.card.get("data", "digits")).adapted(model.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        runners, rows = [], []
        for fmt, deploy in FORMATS.items():
            folder = Path(tmp) / fmt
            folder.mkdir()
            t0 = time.perf_counter()
            run = ME.open_runners(model, deploy, runtimes, threads, folder, data.train)
            for runtime, r in run.items():
                rows.append({"model": name, "runtime": runtime, "format": fmt,
                             "file bytes": (r.path.stat().st_size if r.path else ME.state_dict_bytes(model.module)),
                             "acc %": round(100 * r.score(data.test), 2), "version": r.version,
                             **device_memory(r)})
            print(f"  {name} {fmt}: files written and scored in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            runners.append(run)
        times = ME.time_rounds(runners, runtimes, (1,), rounds, budget_s)
    by_key = {(fmt, runtime): t for runtime in runtimes for fmt, t in zip(FORMATS, times[(runtime, 1)]) if t}
    for row in rows:
        t = by_key[(row["format"], row["runtime"])]
        row.update({"b1 median ms": round(statistics.median(t), 4), "b1 range ms": f"{min(t):.4g}-{max(t):.4g}"})
    fastest = min(r["b1 median ms"] for r in rows)
    for row in rows:
        row["x fastest"] = round(row["b1 median ms"] / fastest, 2)
        row["threads"] = threads
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=M.sample_names())
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--tag", default="runtimes", help="the CSV's name under benchmarks/results/")
    args = ap.parse_args()
    missing = ME.why_unavailable("executorch")
    if missing:
        raise SystemExit(f"runtimes.py needs ExecuTorch: {missing}")
    runtimes = tuple(r for r in RUNTIMES if not ME.why_unavailable(r))
    for line in ME.skipped_runtimes(RUNTIMES):
        print(f"!! {line}", file=sys.stderr)
    t0 = time.perf_counter()
    rows = []
    for name in args.models:
        rows += bench(name, args.threads, args.rounds, BUDGET_S, runtimes)
        print(format_table([r for r in rows if r["model"] == name]), flush=True)
    write_csv(rows, args.tag)
    print(f"\n{len(rows)} files, {args.rounds} alternating rounds each, {args.threads} threads; "
          f"wrote benchmarks/results/{args.tag}.csv; {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
