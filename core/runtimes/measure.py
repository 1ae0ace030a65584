"""Honest measurement: accuracy on held-out data, real file bytes, latency per runtime.

Size is the size of a file written to disk, never a formula. Latency is timed on
the runtime it is reported for (PyTorch eager, ONNX Runtime on the CPU or its CUDA
provider, ExecuTorch with XNNPACK) after a
warm-up, as the median, 10th and 90th percentiles of many single calls, with the
thread count and the number of outlying calls recorded. Results are frozen records of
numbers that serialize to JSON; the sentences a person reads about them are written
where they are shown (core.results.describe). Measuring leaves the caller's module as it was.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from core.inputs.data import DataError, DataSet, class_mismatch
from core.inputs.models import LoadedModel
from core.inputs.train import accuracy as torch_accuracy
from core.runtimes import onnx_io
from core.runtimes import runtime as runtime_
from core.runtimes.timing import MIN_REPEATS, OUTLIER_FACTOR, TIME_BUDGET_S, Latency  # noqa: F401 (names of this module)

# ---- defaults ------------------------------------------------------------------
BATCHES = (1, 32)        # latency is reported at batch 1 (a camera frame) and batch 32 (throughput)
RUNTIMES = ("onnxruntime", "pytorch")   # timed by default; "executorch" and "onnxruntime-cuda" when asked
ALL_RUNTIMES = runtime_.MEASURED


@dataclass(frozen=True)
class DeployedFile:
    """The file one runtime runs for a point, and its accuracy on the test split in that runtime."""
    runtime: str
    bytes: int
    accuracy: float
    version: str
    val_accuracy: float | None = None  # on the validation split: what floors and picks judge (None before 0.3)
    ram_bytes: int | None = None       # the RAM a device needs to run it (LiteRT: TFLM's tensor arena); its flash
    ram_source: str | None = None      # is `bytes`. How the RAM was found: 'tflite-micro' or 'planner'


@dataclass(frozen=True)
class Metrics:
    accuracy: float             # top-1 on the test split of the deployed file, run in ONNX Runtime
    torch_accuracy: float | None  # top-1 of the PyTorch module (None when the deployed format is ONNX-only)
    test_samples: int
    onnx_bytes: int             # bytes of the deployable .onnx file (fp32, fp16 or int8)
    state_dict_bytes: int       # bytes of torch.save(state_dict)
    archive_bytes: int | None   # bytes of the compact archive (packed codes, sparse masks, LZMA)
    params: int
    nonzero_params: int
    macs: int                   # multiply-accumulates for one input, from torch.utils.flop_counter
    latency: tuple[Latency, ...] = ()
    int8_nodes: int | None = None           # compute nodes on integer kernels after ONNX Runtime's fusion
    float_compute_nodes: int | None = None  # Conv / Gemm / MatMul nodes left in float (int8 files only)
    files: tuple[DeployedFile, ...] = ()    # each runtime's file (ONNX Runtime's first); () before edgetrim 0.2
    val_accuracy: float | None = None       # the deployed ONNX file's top-1 on the validation split (picks judge it)
    trained_on: str | None = None           # the device its training and PyTorch evaluation ran on ('cpu', 'cuda:0 (…)')
    eval_subset: int | None = None          # scored on this many seeded images of each of val and test (None: whole)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzero_params / self.params if self.params else 0.0

    def latency_ms(self, runtime: str = "onnxruntime", batch: int = 1) -> float | None:
        return next((l.median_ms for l in self.latency if l.runtime == runtime and l.batch == batch), None)

    def file(self, runtime: str) -> DeployedFile | None:
        """The file `runtime` runs (ONNX Runtime's CUDA provider runs the ONNX file)."""
        runtime = "onnxruntime" if runtime == "onnxruntime-cuda" else runtime
        return next((f for f in self.files if f.runtime == runtime), None)

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes that ran this point (a file scored, or a latency timed)."""
        return tuple(dict.fromkeys([f.runtime for f in self.files] + [l.runtime for l in self.latency]))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Metrics":
        d = dict(d)
        d["latency"] = tuple(Latency(**l) for l in d.get("latency", ()))
        d["files"] = tuple(DeployedFile(**f) for f in d.get("files", ()))
        d.pop("notes", None)  # sentences stored by edgetrim 0.1; they are written where shown now
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> "Metrics":
        return cls.from_dict(json.loads(s))


# ---- counting ---------------------------------------------------------------------

def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters)."""
    params = [p.detach() for p in model.parameters()]
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on one input (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


def layer_table(model: nn.Module) -> list[dict]:
    """One row per module that owns parameters: its weight shape, parameters and non-zeros."""
    rows = []
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if not own:
            continue
        weight = getattr(mod, "weight", None)
        rows.append({
            "layer": name or "(root)",
            "type": getattr(mod, "original_name", None) or type(mod).__name__,  # TorchScript keeps the real name
            "shape": "x".join(map(str, weight.shape)) if isinstance(weight, torch.Tensor) else "",
            "params": sum(p.numel() for p in own),
            "non-zeros": sum(int(torch.count_nonzero(p)) for p in own),
        })
    return rows


# ---- files ----------------------------------------------------------------------

def state_dict_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


# ---- runtimes ------------------------------------------------------------------------------

def why_unavailable(runtime: str) -> str | None:
    """None when `runtime` runs on this machine, else one sentence on why not (said loudly by the caller)."""
    if runtime not in ALL_RUNTIMES:
        return f"{runtime!r} is not a runtime edgetrim knows; runtimes are {', '.join(ALL_RUNTIMES)}."
    return runtime_.get(runtime).why_unavailable()


def why_not_on(runtime: str, model: LoadedModel, deploy) -> str | None:
    """None when this model in this format runs on `runtime`, else why not (a phrase: 'int8 files run in ...')."""
    return runtime_.get(runtime).why_not(model, deploy)


def check_runtimes(runtimes) -> tuple[str, ...]:
    """`runtimes` as a tuple of known names, in order, without repeats (ValueError names a bad one)."""
    runtimes = (runtimes,) if isinstance(runtimes, str) else tuple(runtimes or ())
    runtimes = tuple(r.lower() if isinstance(r, str) else r for r in runtimes)  # 'ExecuTorch' as the pages spell it
    for r in runtimes:
        if r not in ALL_RUNTIMES:
            raise ValueError(f"{r!r} is not a runtime edgetrim knows; runtimes are {', '.join(ALL_RUNTIMES)}.")
    if not runtimes:
        raise ValueError(f"Name at least one runtime: {', '.join(ALL_RUNTIMES)}.")
    return tuple(dict.fromkeys(runtimes))


def skipped_runtimes(runtimes) -> list[str]:
    """One sentence for each runtime asked for that cannot run here: the CLI and the pages say these loudly."""
    return [f"{r} skipped: {why_unavailable(r)}" for r in check_runtimes(runtimes) if why_unavailable(r)]


@dataclass
class _Runner:
    """One runtime's handle on one model: its file (None when it runs the model in memory), and how to score and
    time it."""
    runtime: str
    path: Path | None
    score: object      # split -> accuracy
    time: object       # (batch, budget_s) -> Latency
    version: str = ""
    memory: object = None  # path -> (RAM bytes, how found), for a runtime that says it (LiteRT: a microcontroller)


def _runner(rt: runtime_.Runtime, loaded, path: Path | None, shape: tuple[int, ...], threads: int) -> _Runner:
    return _Runner(rt.name, path, functools.partial(rt.score, loaded),
                   lambda b, budget: rt.time(loaded, shape, b, threads, budget), rt.version(), rt.memory)


def open_runners(model: LoadedModel, deploy, runtimes, threads: int, folder: Path, calibration,
                 onnx_path: Path | None = None) -> dict[str, _Runner]:
    """A runner for each runtime in `runtimes` that runs this model in this format here (the others are left out:
    see `why_unavailable` and `why_not_on`). Each file is written to `folder` once per suffix (ONNX Runtime's CPU
    and CUDA providers share one; `onnx_path` is reused when given)."""
    out: dict[str, _Runner] = {}
    written = {".onnx": onnx_path} if onnx_path else {}
    for r in runtimes:
        rt = runtime_.get(r)
        if rt.runs(model, deploy):
            continue
        path = None
        if rt.measures_file:
            if rt.suffix not in written:
                written[rt.suffix] = rt.write(model, deploy, folder / f"{model.name}{rt.suffix}", calibration)
            path = written[rt.suffix]
        out[r] = _runner(rt, rt.load(path if rt.measures_file else model, threads), path, model.input_shape, threads)
    return out


def retime(kept: dict[str, Path], model: LoadedModel | None, deploy, runtimes, threads: int,
           batches: tuple[int, ...] = BATCHES, budget_s: float = TIME_BUDGET_S, progress=None) -> tuple[Latency, ...]:
    """Time a stored point again from its kept files (core.results.artefacts): each runtime runs its kept file
    (ONNX Runtime the .onnx, ExecuTorch the .pte), PyTorch the kept archive's module (`model`, fp32 points only);
    nothing is rebuilt. A runtime whose file is not kept is left out. Timed as `measure` times (busy marked)."""
    timers = {}
    for r in check_runtimes(runtimes):
        rt = runtime_.get(r)
        if rt.why_unavailable():
            continue
        if rt.measures_file and rt.kept_as in kept:
            loaded = rt.load(kept[rt.kept_as], threads)
        elif not rt.measures_file and model is not None and not rt.why_not(model, deploy):
            loaded = rt.load(model, threads)
        else:
            continue
        timers[r] = _runner(rt, loaded, None, model_shape(kept, model), threads).time
    series = [(r, b) for r in timers for b in batches]
    crowded = bool(series) and oversubscribed(threads)
    out = []
    for i, (r, b) in enumerate(series):
        if progress:
            progress(i, len(series), f"timing {r} at batch {b}")
        out.append(time_honestly(timers[r], b, budget_s, crowded))
    return tuple(out)


def rescore(metrics: Metrics, kept: dict[str, Path], model: LoadedModel | None, data: DataSet,
            threads: int | None = None, progress=None) -> Metrics | None:
    """A point scored on a subset (`eval_subset`) scored again on the whole validation and test splits from its kept
    files, each in its runtime (PyTorch's accuracy from the kept archive's module); nothing is rebuilt or re-timed.
    None when a file it was scored from is no longer kept."""
    threads = threads or torch.get_num_threads()
    data = data.adapted(model_shape(kept, model))
    files = []
    for i, f in enumerate(metrics.files):
        rt = runtime_.get(f.runtime)
        if not rt.measures_file or rt.kept_as not in kept or rt.why_unavailable():
            return None
        if progress:
            progress(i, len(metrics.files) + 1, f"scoring {len(data.val) + len(data.test):,} images in {f.runtime}")
        loaded = rt.load(kept[rt.kept_as], threads)
        files.append(dataclasses.replace(f, accuracy=rt.score(loaded, data.test), val_accuracy=rt.score(loaded, data.val)))
    torch_acc = metrics.torch_accuracy
    if torch_acc is not None:
        if model is None:
            return None
        torch_acc = torch_accuracy(model.module, data.test)
    return dataclasses.replace(metrics, files=tuple(files), accuracy=files[0].accuracy,
                               val_accuracy=files[0].val_accuracy, torch_accuracy=torch_acc,
                               test_samples=len(data.test), eval_subset=None)


def model_shape(kept: dict[str, Path], model: LoadedModel | None) -> tuple[int, ...]:
    """The input shape of a kept point: its model's, else read from its ONNX file."""
    if model is not None:
        return tuple(model.input_shape)
    import onnx

    dims = onnx.load(str(kept["onnx"]), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return tuple(int(d.dim_value) for d in dims[1:])


# ---- side by side ----------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """Latency of `a` and `b` timed in alternating rounds (the machine's noise hits both alike)."""
    runtime: str
    batch: int
    threads: int
    a_ms: tuple[float, ...]       # median of each round
    b_ms: tuple[float, ...]

    @property
    def ratios(self) -> list[float]:
        """a / b per round: above 1, b is faster."""
        return sorted(x / y for x, y in zip(self.a_ms, self.b_ms))


def time_together(entries: list[tuple[LoadedModel, object]], data: DataSet, runtimes: tuple[str, ...] = RUNTIMES,
                  batches: tuple[int, ...] = BATCHES, rounds: int = 5, threads: int | None = None,
                  budget_s: float = 0.1, progress=None) -> dict[tuple[str, int], list[list[float] | None]]:
    """Time several (model, deploy format) entries side by side: each round times every entry in turn, on every
    runtime and batch, so the machine's noise hits all alike. Returns {(runtime, batch): per entry, the median of
    each round (None where the entry does not run there: PyTorch runs fp32 models only, ExecuTorch no fp16)}."""
    threads = threads or torch.get_num_threads()
    runtimes = tuple(r for r in check_runtimes(runtimes) if not why_unavailable(r))
    with tempfile.TemporaryDirectory() as tmp:
        calibration = data.adapted(entries[0][0].input_shape).train
        runners = []
        for i, (model, deploy) in enumerate(entries):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            runners.append(open_runners(model, deploy, runtimes, threads, folder, calibration))
        return time_rounds(runners, runtimes, batches, rounds, budget_s, progress)


def time_rounds(runners: list[dict[str, _Runner]], runtimes, batches, rounds: int, budget_s: float,
                progress=None) -> dict[tuple[str, int], list[list[float] | None]]:
    """The alternating rounds of `time_together`, over runners already open (`open_runners`)."""
    series = [(r, bt) for r in runtimes for bt in batches]
    times = {key: [[] if key[0] in run else None for run in runners] for key in series}
    for i in range(rounds):
        if progress:
            progress(i, rounds, f"round {i + 1} of {rounds}: timing {len(runners)} models on every runtime")
        for runtime, bt in series:
            for run, out in zip(runners, times[(runtime, bt)]):
                if out is not None:
                    out.append(run[runtime].time(bt, budget_s).median_ms)
    return times


def compare_latency(a: LoadedModel, b: LoadedModel, data: DataSet, deploy_a=None, deploy_b=None,
                    runtimes: tuple[str, ...] = RUNTIMES, batches: tuple[int, ...] = BATCHES, rounds: int = 5,
                    threads: int | None = None, budget_s: float = 0.1, progress=None) -> list[Comparison]:
    """Time two models side by side (see `time_together`) on every runtime and batch that both run. Deltas
    between numbers measured apart are noise; these are not."""
    threads = threads or torch.get_num_threads()
    times = time_together([(a, deploy_a), (b, deploy_b)], data, runtimes, batches, rounds, threads, budget_s,
                          progress)
    return [Comparison(r, bt, threads, tuple(ta), tuple(tb)) for (r, bt), (ta, tb) in times.items()
            if ta is not None and tb is not None]


# ---- a busy machine ---------------------------------------------------------------------

BUSY_SPREAD = 4.0     # p90 over p10 above this: a bimodal sample (some calls preempted, some not)
BUSY_OUTLIERS = 0.2   # more than this share of calls past OUTLIER_FACTOR x the median


def runnable_others(samples: int = 8, every_s: float = 0.015) -> int:
    """Threads of other work ready to run right now (the kernel's procs_running, less this one), the least of a
    few samples so that this process's own spinning worker threads, which stop within a moment, do not count."""
    seen = []
    for _ in range(samples):
        try:
            with open("/proc/stat") as f:
                seen.append(next(int(l.split()[1]) for l in f if l.startswith("procs_running")) - 1)
        except (OSError, StopIteration, ValueError):
            return 0  # not Linux: no reading, nothing marked from it
        time.sleep(every_s)
    return max(0, min(seen))


def oversubscribed(threads: int) -> bool:
    """Whether other work leaves fewer cores than the `threads` a timing wants (the load against the cores)."""
    return runnable_others() + threads > (os.cpu_count() or 1)


def looks_busy(l: Latency) -> bool:
    """A sample that disagrees with itself: calls in two clusters, or many far past the median."""
    return (l.p10_ms is not None and l.p90_ms > BUSY_SPREAD * max(l.p10_ms, 1e-6)) or \
        l.outliers > BUSY_OUTLIERS * l.repeats


def time_honestly(timer, batch: int, budget_s: float, crowded: bool) -> Latency:
    """`timer(batch, budget_s)`, timed again once if the machine was crowded or the sample looks busy; still so,
    the latency is kept but marked `busy` (left out of latency fronts until re-timed)."""
    first = timer(batch, budget_s)
    if not crowded and not looks_busy(first):
        return first
    time.sleep(0.2)
    again = timer(batch, budget_s)
    still = looks_busy(again) or oversubscribed(again.threads)
    return dataclasses.replace(min(first, again, key=lambda l: l.median_ms), busy=still)


# ---- the whole record --------------------------------------------------------------

def measure(model: LoadedModel, data: DataSet, deploy=None, latency: bool = True,
            batches: tuple[int, ...] = BATCHES, runtimes: tuple[str, ...] = RUNTIMES, threads: int | None = None,
            budget_s: float = TIME_BUDGET_S, keep_dir: str | Path | None = None, progress=None,
            partial=None, subset: int | None = None) -> Metrics:
    """Every metric of one model shipped as `deploy` (None: fp32 ONNX; else a core.methods.deploy format) on
    `data`'s test split (data adapted to the model's input shape).

    ONNX Runtime's file is always written and scored (the point's `accuracy` and `onnx_bytes`); each other
    runtime in `runtimes` that runs the format here writes and scores its own file (`files`: an ExecuTorch .pte),
    and every runtime in `runtimes` is timed at each batch on `threads` threads. PyTorch runs the fp32 module
    only. Runtimes not installed here are left out (`skipped_runtimes` says which, for the caller to say loudly).
    The module's train/eval mode is restored afterwards. `progress(done, total,
    message)` hears each stage (file, archive, accuracy, each latency series); `partial(fields)` hears the
    numbers as they come (accuracy first, then sizes, then each latency). A latency timed while other work
    crowds the cores, or whose calls disagree, is timed again, and marked `busy` if it still is. With `subset`,
    every file is scored on the same seeded `subset` images of the validation and of the test split
    (`eval_subset`; core.results.subset says what that is worth and when the whole splits must settle it).
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a whole number of at least 1, not {threads!r}.")
    threads = threads or torch.get_num_threads()
    mismatch = class_mismatch(data, model.name, model.num_classes)
    if mismatch:
        raise DataError(mismatch)
    data = data.adapted(model.input_shape)
    scored = subsampled(data, subset)
    module = model.module
    was_training = module.training
    module.eval()
    try:
        metrics = _measure(model, module, scored, data.train, deploy, latency, batches, runtimes, threads, budget_s,
                           keep_dir, progress or (lambda done, total, message: None), partial or (lambda fields: None))
    finally:
        module.train(was_training)
    return dataclasses.replace(metrics, eval_subset=len(scored.val)) if scored is not data else metrics


SUBSET_SEED = 0


def subsampled(data: DataSet, n: int | None) -> DataSet:
    """`data` with its validation and test splits cut to the same seeded `n` images each (in their stored order)
    every time; `data` itself when `n` is None or covers both."""
    if n is None or (n >= len(data.val) and n >= len(data.test)):
        return data
    if int(n) < 1:
        raise ValueError(f"A subset is a positive number of images, not {n!r}.")

    def cut(split):
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(SUBSET_SEED))
        return split.take(order[:int(n)].sort().values)
    return dataclasses.replace(data, val=cut(data.val), test=cut(data.test))


def _measure(model, module, data, calibration, deploy, latency, batches, runtimes, threads, budget_s, keep_dir,
             progress, partial) -> Metrics:
    """See `measure`. The numbers come in the order a person wants them: the deployed file's accuracy, then the
    sizes, then each latency, each told to `partial(fields)` (every field known so far) as soon as it is known."""
    from core.runtimes import archive

    params, nonzero = count_params(module)
    runtimes = check_runtimes(runtimes)
    known: dict = {"params": params, "nonzero_params": nonzero, "test_samples": len(data.test)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep_dir or tmp)
        progress(0, 1, "writing the deployable file")
        # ONNX Runtime's file is always written and scored: it is the point's reference accuracy and size
        onnx_path = onnx_io.write_deployable(model, deploy, folder / f"{model.name}.onnx", calibration=calibration)
        runners = open_runners(model, deploy, ("onnxruntime",), threads, folder, calibration, onnx_path)
        progress(1, 3, f"scoring {len(data.test):,} test images in onnxruntime")
        ort = runners["onnxruntime"]
        known.update(accuracy=ort.score(data.test), onnx_bytes=os.path.getsize(ort.path))
        partial(dict(known))  # the number a person waits for first
        progress(1, 3, f"scoring {len(data.val):,} validation images in onnxruntime")
        files = [DeployedFile(ort.runtime, known["onnx_bytes"], known["accuracy"], ort.version, ort.score(data.val))]
        known["val_accuracy"] = files[0].val_accuracy
        runners.update(open_runners(model, deploy, runtimes, threads, folder, calibration, onnx_path))
        timed = [r for r in runtimes if r in runners]
        series = [(r, b) for r in timed for b in batches] if latency else []
        others = [r for r in runners if runners[r].path not in (None, onnx_path)]  # CUDA runs the same ONNX file
        total = 3 + len(others) + len(series)
        progress(2, total, "writing the compact archive")
        if model.arch is not None:
            known["archive_bytes"] = os.path.getsize(archive.write_archive(model, folder / f"{model.name}.etz"))
        known.update(state_dict_bytes=state_dict_bytes(module), macs=count_macs(module, model.input_shape),
                     torch_accuracy=torch_accuracy(module, data.test) if deploy is None else None)
        for i, r in enumerate(others):
            progress(3 + i, total, f"scoring {len(data.test):,} test images in {r}")
            files.append(_scored(runners[r], data))
        census = onnx_io.op_census(onnx_path) if type(deploy).__name__ == "Int8" else {}  # only int8 has int8 ops
        known.update(int8_nodes=census.get("int8_nodes"), float_compute_nodes=census.get("float_compute_nodes"),
                     files=[asdict(f) for f in files])
        partial(dict(known))
        timings: list[Latency] = []
        crowded = bool(series) and oversubscribed(threads)
        for i, (runtime, b) in enumerate(series):
            progress(3 + len(others) + i, total, f"timing {runtime} at batch {b}")
            timings.append(time_honestly(runners[runtime].time, b, budget_s, crowded))
            partial({**known, "latency": [asdict(l) for l in timings]})
        progress(total, total, "measured")
        return Metrics(**{**known, "files": tuple(files), "latency": tuple(timings),
                          "archive_bytes": known.get("archive_bytes")})


def _scored(runner: _Runner, data: DataSet) -> DeployedFile:
    """One runtime's file, scored on the test split (reported) and the validation split (what picks judge), with
    the RAM a device needs for it where its runtime says."""
    ram, source = runner.memory(runner.path) if runner.memory else (None, None)
    return DeployedFile(runner.runtime, os.path.getsize(runner.path), runner.score(data.test), runner.version,
                        runner.score(data.val), ram, source)
