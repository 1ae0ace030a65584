"""edgetrim beside the compression toolkits people use today, in one run: OpenVINO NNCF, Intel Neural Compressor,
Sony MCT, torchao and Qualcomm AIMET, each by its own documented recipe (benchmarks/toolkits/with_<tool>.py).

    make peers                                            # once: the peers, an optional extra of the benchmarks
    python benchmarks/peers_toolkits.py                   # three models x three floors
    python benchmarks/peers_toolkits.py --models mobilenet_v3_small --tools torchao nncf   # a part of it

For each model and each floor (0.1, 0.5 and 1 point below the fp32 baseline, judged on validation, reported on
the test split), each tool's smallest deployable file and fastest batch-1 file at the floor. edgetrim's files are
its picks from one sweep (`edgetrim sweep`, then `edgetrim export --max-drop D --objective size|latency`, run as
a user runs them). Every file is re-scored here, in the runtime it targets (ONNX Runtime, or PyTorch for a
torch.export program), and every file of a model is timed in the same alternating rounds. A tool's time is its
own wall time (edgetrim's: the sweep plus its exports); its user code is the code lines of its module (edgetrim's:
the sweep file's lines plus its commands). Writes benchmarks/results/peers_toolkits.json and
docs/results/peers-toolkits.md.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torchao  # noqa: F401  (registers the quantized ops a torch.export program of torchao or INC holds)

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from core.inputs import data as D  # noqa: E402
from core.inputs import models as M  # noqa: E402
from core.runtimes import onnx_io, pytorch_io  # noqa: E402
from toolkits import CALIB_IMAGES, Job, Output, user_lines, val_accuracy  # noqa: E402

DROPS = (0.1, 0.5, 1.0)
TOOLS = ("torchao", "nncf", "inc", "mct", "aimet")
# runs left out unless --all-runs, each with why: the table says so in its cell
TOO_SLOW = {("mct", "resnet18_mnist"): "MCT's plain PTQ alone ran over 10 minutes on ResNet-18 here, and its files "
                                       "are fake-quant, as large as fp32"}
ROUNDS, BUDGET_S = 5, 0.2
RESULTS = ROOT / "benchmarks" / "results" / "peers_toolkits.json"

# edgetrim's one sweep per model: structured pruning with short fine-tuning, weight bits and the file's format
SWEEPS = {
    "lenet5_caffe_mnist": """\
model: lenet5_caffe_mnist
data: mnist
axes:
  prune: [structured]
  prune_ratio: [0.0, 0.2, 0.3, 0.5, 0.7]
  finetune_epochs: [4]
  quantize: [fp32, w4]
  deploy: [fp32, int8, int4, w4a8]
measure: {latency: true, budget_s: 0.05}
""",
    "mobilenet_v3_small": """\
model: mobilenet_v3_small
data: digits
axes:
  prune: [structured]
  prune_ratio: [0.0, 0.1, 0.2, 0.3, 0.4]
  finetune_epochs: [10]
  deploy: [fp32, int8, int8-dynamic, int4, w4a8]
measure: {latency: true, budget_s: 0.05}
""",
    "resnet18_mnist": """\
model: resnet18_mnist
data: mnist
axes:
  prune: [structured]
  prune_ratio: [0.0, 0.3, 0.5, 0.7]
  finetune_epochs: [1]
  deploy: [fp32, int8, w4a8]
settings: {budget: {samples_per_epoch: 4000}}
measure: {latency: true, budget_s: 0.05, subset: 1000}
""",
}
EVAL_IMAGES = {"resnet18_mnist": 2000}  # a 0.46 G-MAC model: every file scored on seeded 2,000 val and test images


@dataclass
class Scored:
    tool: str
    output: Output
    val: float
    test: float
    bytes: int
    drop: float | None  # the floor it was made for; None: made once for every floor
    ms: float | None = None


# ---- edgetrim, as a user runs it --------------------------------------------------------------------------------

def edgetrim_cli(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"edgetrim {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def run_edgetrim(sample: str, folder: Path) -> tuple[list[tuple[float, Output]], float, int]:
    """edgetrim's picks [(drop, Output)] from one sweep, its wall time and its user lines (YAML + commands)."""
    env = {**os.environ, "EDGETRIM_CACHE": str(folder / "cache")}
    run = f"peers-{sample}"
    (folder / "sweep.yaml").write_text(f"run: {run}\n" + SWEEPS[sample])
    store = ["--store", str(folder / "store.sqlite")]
    t0 = time.perf_counter()
    print(f"[{sample}] edgetrim sweep ...", file=sys.stderr, flush=True)
    edgetrim_cli("sweep", str(folder / "sweep.yaml"), *store, env=env)
    picks = []
    for drop in DROPS:
        for objective in ("size", "latency"):
            out = folder / f"edgetrim-{objective}-{drop}"
            out.mkdir()
            said = edgetrim_cli("export", run, "--max-drop", str(drop), "--objective", objective, "-o", str(out),
                                *store, env=env)
            wrote = re.search(r"wrote (\S+) \(", said)
            if wrote:
                label = said.splitlines()[0].split(":")[0]
                picks.append((drop, Output(f"pick by {objective}: {label}", Path(wrote.group(1)), "onnxruntime")))
    lines = sum(1 for line in SWEEPS[sample].splitlines() if line.strip()) + 1 + 2 * len(DROPS)
    return picks, time.perf_counter() - t0, lines


# ---- scoring and timing every file, each in its runtime ---------------------------------------------------------

def evaluation(sample: str) -> tuple[M.LoadedModel, D.DataSet]:
    lm = M.load_sample(sample)
    data = D.load_data(lm.card["data"]).adapted(lm.input_shape)
    n = EVAL_IMAGES.get(sample)
    if n:
        g = torch.Generator().manual_seed(0)
        data = replace(data, val=data.val.take(torch.randperm(len(data.val), generator=g)[:n]),
                         test=data.test.take(torch.randperm(len(data.test), generator=g)[:n]))
    return lm, data


def open_runner(output: Output):
    """A callable scoring a float32 batch, in the runtime the file names."""
    if output.runtime == "onnxruntime":
        session = onnx_io.onnx_session(output.path)
        name = session.get_inputs()[0].name
        return session, lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    module = torch.export.load(str(output.path)).module()
    return module, module


def score(output: Output, data: D.DataSet) -> tuple[float, float]:
    _, run = open_runner(output)
    return tuple(val_accuracy(run, split.x, split.y) for split in (data.val, data.test))  # type: ignore


def time_all(files: list[Scored], shape: tuple[int, ...]) -> None:
    """Batch-1 median latency of every file in ROUNDS alternating rounds (the median of the rounds' medians)."""
    threads = torch.get_num_threads()
    runners = []
    for f in files:
        handle, _ = open_runner(f.output)
        if f.output.runtime == "onnxruntime":
            runners.append(lambda s=handle: onnx_io.time_session(s, shape, 1, threads, BUDGET_S).median_ms)
        else:
            runners.append(lambda m=handle: pytorch_io.time_module(m, shape, 1, threads, BUDGET_S).median_ms)
    times = [[] for _ in files]
    for _ in range(ROUNDS):
        for i, timer in enumerate(runners):
            times[i].append(timer())
    for f, t in zip(files, times):
        f.ms = statistics.median(t)


# ---- one model --------------------------------------------------------------------------------------------------

def make_job(lm: M.LoadedModel, data: D.DataSet, drop: float | None, target_bytes: int | None, folder: Path) -> Job:
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.train), generator=g)[:CALIB_IMAGES]
    calib = [data.train.batch(idx[i:i + 64]) for i in range(0, len(idx), 64)]
    folder.mkdir(parents=True, exist_ok=True)
    return Job(lm.name, lm.copy_module().eval(), tuple(lm.input_shape), calib, data.val.x, data.val.y,
               None if drop is None else drop / 100, target_bytes, folder)


def run_model(sample: str, tools: list[str], folder: Path, all_runs: bool = False) -> dict:
    lm, data = evaluation(sample)
    (folder / "edgetrim").mkdir(parents=True)
    base = Output("fp32 (the baseline)", onnx_io.write_onnx(lm.module, lm.input_shape, folder / "baseline.onnx"),
                  "onnxruntime")
    base_val, base_test = score(base, data)
    files = [Scored("baseline", base, base_val, base_test, base.path.stat().st_size, None)]
    took, lines, errors = {}, {}, {}

    picks, took["edgetrim"], lines["edgetrim"] = run_edgetrim(sample, folder / "edgetrim")
    files += [Scored("edgetrim", o, *score(o, data), o.path.stat().st_size, drop) for drop, o in picks]
    smallest_edgetrim = {drop: min((f.bytes for f in files if f.tool == "edgetrim" and f.drop == drop), default=None)
                         for drop in DROPS}
    for tool in tools:
        module = importlib.import_module(f"toolkits.with_{tool}")
        lines[tool] = user_lines(module.__file__)
        took[tool] = 0.0
        if (tool, sample) in TOO_SLOW and not all_runs:
            errors[tool] = f"not run: {TOO_SLOW[tool, sample]}"
            continue
        for drop in (None, *DROPS) if getattr(module, "PER_FLOOR", False) else (None,):
            print(f"[{sample}] {tool}, {f'{drop} point floor' if drop is not None else 'no floor'} ...",
                  file=sys.stderr, flush=True)
            job = make_job(lm, data, drop, smallest_edgetrim.get(drop), folder / tool / str(drop))
            t0 = time.perf_counter()
            try:
                outputs = module.compress(job)
            except Exception as e:  # a peer that fails is reported as failing, in one line, and the run goes on
                errors[f"{tool}@{drop}"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                continue
            finally:
                took[tool] += time.perf_counter() - t0
            files += [Scored(tool, o, *score(o, data), o.path.stat().st_size, drop) for o in outputs]
    print(f"[{sample}] timing {len(files)} files in {ROUNDS} alternating rounds ...", file=sys.stderr, flush=True)
    time_all(files, lm.input_shape)
    return {"baseline": {"val": base_val, "test": base_test, "bytes": files[0].bytes, "ms": files[0].ms},
            "eval_images": EVAL_IMAGES.get(sample), "took_s": took, "user_lines": lines, "errors": errors,
            "files": [{"tool": f.tool, "label": f.output.label, "runtime": f.output.runtime, "file": f.output.path.name,
                       "val": f.val, "test": f.test, "bytes": f.bytes, "ms": f.ms, "drop": f.drop} for f in files],
            "cells": cells(files, base_val, ["edgetrim", *tools])}


def cells(files: list[Scored], base_val: float, tools: list[str]) -> dict:
    """Per floor and tool: the smallest and the fastest file at the floor (validation >= baseline - drop)."""
    out = {}
    for drop in DROPS:
        for tool in tools:
            ok = [f for f in files if f.tool == tool and f.drop in (drop, None) and f.val >= base_val - drop / 100 - 1e-9]
            small = min(ok, key=lambda f: (f.bytes, f.ms), default=None)
            fast = min(ok, key=lambda f: (f.ms, f.bytes), default=None)
            out[f"{tool}@{drop}"] = {k: None if f is None else {"label": f.output.label, "runtime": f.output.runtime,
                                                                 "bytes": f.bytes, "ms": f.ms, "val": f.val,
                                                                 "test": f.test}
                                     for k, f in (("smallest", small), ("fastest", fast))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    ap.add_argument("--all-runs", action="store_true", help="run the peers' runs TOO_SLOW leaves out as well")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="edgetrim-peers-"))
    runs = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for sample in args.models:
        t0, load = time.perf_counter(), os.getloadavg()[0]
        result = run_model(sample, args.tools, folder / sample, args.all_runs)
        result.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), wall_s=round(time.perf_counter() - t0),
                      load=[round(load, 1), round(os.getloadavg()[0], 1)], command=" ".join(sys.argv[1:]))
        runs[sample] = result
        RESULTS.write_text(json.dumps(runs, indent=1) + "\n")
        print(f"[{sample}] done in {result['wall_s']} s; errors: {result['errors'] or 'none'}", file=sys.stderr)
    import peers_report
    peers_report.write(runs)


if __name__ == "__main__":
    main()
