"""ONNX files: export, ONNX Runtime sessions, accuracy in the runtime, and what the graph runs in int8.

`write_deployable` writes the file a Point is measured and shipped as: the fp32
export, or that file turned into the Spec's deploy format (int8, fp16) by core.methods.deploy.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from core.inputs.data import Split
from core.runtimes import timing
from core.runtimes.runtime import Runtime

OPSET = 17
INT8_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
            "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool", "QGemm",
            "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
COMPUTE_OPS = {"Conv", "Gemm", "MatMul", "ConvTranspose"}
# torch's exporters keep global tracing state: two exports at once in one process corrupt each other
# ("ProxyTorchDispatchMode slot already occupied"), so every export in edgetrim holds this lock.
EXPORT_LOCK = threading.RLock()


def write_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """Export to ONNX with a dynamic batch axis (input 'input', output 'logits')."""
    path = Path(path)
    example = torch.zeros(1, *input_shape)
    model = model.eval()
    with EXPORT_LOCK, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
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


def write_deployable(model, deploy, path: str | Path, calibration: Split | None = None) -> Path:
    """The ONNX file `model` (a LoadedModel) ships as: fp32 when `deploy` is None, else that format."""
    path = Path(path)
    if deploy is None:
        return write_onnx(model.module, model.input_shape, path)
    from core.methods import deploy as formats

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = write_onnx(model.module, model.input_shape, Path(tmp) / "fp32.onnx")
        return formats.realize_onnx(deploy, fp32, path, calibration)


def why_no_cuda() -> str | None:
    """None when ONNX Runtime can run on a CUDA GPU here, else one sentence on why not."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("this onnxruntime has no CUDA provider (it has " + ", ".join(ort.get_available_providers()) +
                "); a GPU and `pip install onnxruntime-gpu` add it")
    return None


def onnx_session(path: str | Path, threads: int | None = None, cuda: bool = False):
    """An ONNX Runtime session with a fixed thread count (the count latency is reported with), on the CPU or,
    with `cuda`, on the GPU (CPU for the ops CUDA lacks)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    providers = (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), so, providers=providers)


def onnx_predict(session, x: np.ndarray | Split, batch: int = 256) -> np.ndarray:
    """Logits for `x` (an array, or a Split read as float32 batch by batch so uint8 data stays uint8)."""
    inp = session.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    chunks = (b.numpy() for b in x.batches(batch)) if isinstance(x, Split) else \
        (x[i:i + batch] for i in range(0, len(x), batch))
    return np.concatenate([session.run(None, {inp.name: c.astype(dtype)})[0] for c in chunks]).astype(np.float32)


def onnx_accuracy(session_or_path, split: Split) -> float:
    sess = onnx_session(session_or_path) if isinstance(session_or_path, (str, Path)) else session_or_path
    preds = onnx_predict(sess, split).argmax(1)
    return float((preds == split.y.numpy()).mean())


def op_census(path: str | Path) -> dict[str, int]:
    """How many compute nodes run on integer kernels, and how many stay in float, after ONNX Runtime's
    own graph optimisation (which fuses QuantizeLinear/DequantizeLinear pairs into integer ops)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        graph = onnx.load(so.optimized_model_filepath).graph
    ops = Counter(n.op_type for n in graph.node)
    int8 = sum(c for op, c in ops.items() if op in INT8_OPS)
    float_compute = sum(c for op, c in ops.items() if op in COMPUTE_OPS)
    qdq = ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0)
    return {"int8_nodes": int8, "float_compute_nodes": float_compute, "qdq_nodes": qdq, "nodes": sum(ops.values())}


def time_session(session, input_shape: tuple[int, ...], batch: int, threads: int,
                 budget_s: float = timing.TIME_BUDGET_S, runtime: str = "onnxruntime") -> timing.Latency:
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    name = session.get_inputs()[0].name
    return timing.latency(runtime, lambda: session.run(None, {name: x}), batch, threads, budget_s)


def version() -> str:
    import onnxruntime

    return onnxruntime.__version__


RUNTIME = Runtime(name="onnxruntime", package="onnxruntime", suffix=".onnx", kept_as="onnx", measures_file=True,
                  version=version, why_unavailable=lambda: None, why_not=lambda model, deploy: None,
                  write=write_deployable, load=onnx_session, score=onnx_accuracy, time=time_session)
# the same file on ONNX Runtime's CUDA provider (CPU kernels for the ops CUDA lacks)
CUDA_RUNTIME = dataclasses.replace(
    RUNTIME, name="onnxruntime-cuda", why_unavailable=why_no_cuda,
    load=lambda path, threads=None: onnx_session(path, threads, cuda=True),
    time=lambda s, shape, batch, threads, budget_s=timing.TIME_BUDGET_S:
        time_session(s, shape, batch, threads, budget_s, "onnxruntime-cuda"))
