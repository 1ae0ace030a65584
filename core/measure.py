"""Honest measurement: accuracy on held-out data, real file bytes, latency per runtime.

Size is the size of a file written to disk, never a formula. Latency is timed on
the runtime it is reported for (PyTorch eager or ONNX Runtime on the CPU) after a
warm-up, as the median and 90th percentile of many single calls, with the thread
count recorded. Results are frozen records that serialize to JSON.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from core.data import DataSet, Split
from core.models import LoadedModel
from core.train import accuracy as torch_accuracy

# ---- defaults ------------------------------------------------------------------
BATCHES = (1, 32)        # latency is reported at batch 1 (a camera frame) and batch 32 (throughput)
WARMUP = 5               # untimed calls first: allocators, caches, lazy init
MIN_REPEATS = 15
MAX_REPEATS = 300
TIME_BUDGET_S = 0.25     # per (runtime, batch): repeat until this much time has passed
OPSET = 17
RUNTIMES = ("onnxruntime", "pytorch")


@dataclass(frozen=True)
class Latency:
    runtime: str
    batch: int
    median_ms: float
    p90_ms: float
    repeats: int
    threads: int


@dataclass(frozen=True)
class Metrics:
    accuracy: float             # top-1 on the test split, PyTorch
    onnx_accuracy: float | None  # top-1 on the test split, running the ONNX file in ONNX Runtime
    test_samples: int
    onnx_bytes: int             # bytes of the exported .onnx file
    state_dict_bytes: int       # bytes of torch.save(state_dict)
    params: int
    nonzero_params: int
    macs: int                   # multiply-accumulates for one input, from torch.utils.flop_counter
    latency: tuple[Latency, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzero_params / self.params if self.params else 0.0

    def latency_ms(self, runtime: str = "onnxruntime", batch: int = 1) -> float | None:
        return next((l.median_ms for l in self.latency if l.runtime == runtime and l.batch == batch), None)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Metrics":
        d = dict(d)
        d["latency"] = tuple(Latency(**l) for l in d.get("latency", ()))
        d["notes"] = tuple(d.get("notes", ()))
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
            "type": type(mod).__name__,
            "shape": "x".join(map(str, weight.shape)) if isinstance(weight, torch.Tensor) else "",
            "params": sum(p.numel() for p in own),
            "non-zeros": sum(int(torch.count_nonzero(p)) for p in own),
        })
    return rows


# ---- files ----------------------------------------------------------------------

def write_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """Export to ONNX with a dynamic batch axis (input 'input', output 'logits')."""
    path = Path(path)
    example = torch.zeros(1, *input_shape)
    model = model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:  # the TorchScript-based exporter: ~10x faster to export, which sweeps feel
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        except Exception:  # graphs it cannot trace (torch.export modules): the dynamo exporter
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=max(OPSET, 18),
                                        input_names=["input"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), verbose=False)
            program.save(str(path), external_data=False)
    return path


def state_dict_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session with a fixed thread count (the count latency is reported with)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_accuracy(session_or_path, split: Split, batch: int = 256) -> float:
    sess = session_or_path if not isinstance(session_or_path, (str, Path)) else onnx_session(session_or_path)
    name = sess.get_inputs()[0].name
    x = split.x.numpy()
    preds = np.concatenate([sess.run(None, {name: x[i:i + batch]})[0].argmax(1) for i in range(0, len(x), batch)])
    return float((preds == split.y.numpy()).mean())


# ---- timing ------------------------------------------------------------------------

def time_calls(fn, warmup: int = WARMUP, budget_s: float = TIME_BUDGET_S) -> tuple[float, float, int]:
    """(median ms, p90 ms, repeats) of `fn()` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MAX_REPEATS and (len(times) < MIN_REPEATS or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90)), len(times)


def time_pytorch(model: nn.Module, input_shape: tuple[int, ...], batch: int, threads: int,
                 budget_s: float = TIME_BUDGET_S) -> Latency:
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            med, p90, n = time_calls(lambda: model(x), budget_s=budget_s)
    finally:
        torch.set_num_threads(before)
    return Latency("pytorch", batch, med, p90, n, threads)


def time_onnx(session, input_shape: tuple[int, ...], batch: int, threads: int,
              budget_s: float = TIME_BUDGET_S) -> Latency:
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    name = session.get_inputs()[0].name
    med, p90, n = time_calls(lambda: session.run(None, {name: x}), budget_s=budget_s)
    return Latency("onnxruntime", batch, med, p90, n, threads)


# ---- the whole record --------------------------------------------------------------

def measure(model: LoadedModel, data: DataSet, latency: bool = True, batches: tuple[int, ...] = BATCHES,
            runtimes: tuple[str, ...] = RUNTIMES, threads: int | None = None,
            budget_s: float = TIME_BUDGET_S, keep_dir: str | Path | None = None) -> Metrics:
    """Every metric of one model on `data`'s test split (data adapted to the model's input shape)."""
    threads = threads or torch.get_num_threads()
    data = data.adapted(model.input_shape)
    module = model.module.eval()
    params, nonzero = count_params(module)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = write_onnx(module, model.input_shape, Path(keep_dir or tmp) / f"{model.name}.onnx")
        session = onnx_session(onnx_path, threads)
        timings: list[Latency] = []
        if latency:
            for runtime in runtimes:
                for b in batches:
                    timings.append(time_onnx(session, model.input_shape, b, threads, budget_s) if runtime == "onnxruntime"
                                   else time_pytorch(module, model.input_shape, b, threads, budget_s))
        return Metrics(
            accuracy=torch_accuracy(module, data.test),
            onnx_accuracy=onnx_accuracy(session, data.test),
            test_samples=len(data.test),
            onnx_bytes=os.path.getsize(onnx_path),
            state_dict_bytes=state_dict_bytes(module),
            params=params,
            nonzero_params=nonzero,
            macs=count_macs(module, model.input_shape),
            latency=tuple(timings),
        )
