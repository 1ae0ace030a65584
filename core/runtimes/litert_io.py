"""LiteRT files (.tflite): write one for a deploy format, run it, time it, score it.

LiteRT (formerly TensorFlow Lite) is Google's on-device runtime; Android, microcontroller-class boards and
Coral ship it. A model is traced with torch.export and converted by `litert_torch.convert` (litert-torch), and
run here in `ai_edge_litert.interpreter.Interpreter` (its XNNPACK delegate on the CPU), the interpreter a device
embeds. Formats:

- fp32: the model as it is;
- int8 (`deploy.Int8`, static): PT2E static quantization with litert-torch's `PT2EQuantizer` (per-channel
  symmetric int8 weights, int8 activations calibrated on training images);
- int8 dynamic (`deploy.Int8(mode=dynamic)`): the same quantizer's dynamic config (int8 weights, activations
  quantized on the fly);
- 4-bit (`deploy.Int4`): the fp32 file's fully connected layers with 4-bit weights and 8-bit dynamic
  activations (ai-edge-quantizer's dynamic recipe, LiteRT's kernel), in blocks of 32 (64, 128, 256) inputs where a
  layer's input count divides, else one scale per output channel; convolutions stay fp32. (litert-torch's own
  path, torchao's 4-bit configs, needs its V2 converter, which needs a TensorFlow nightly build.)

A .tflite file has a fixed batch of 1: litert-torch 0.10 cannot convert a dynamic batch dimension (its JAX
lowering of view, mul and matmul needs concrete shapes), and a file resized after conversion fails in XNNPACK
(the flatten's shape is baked in). A device runs it one frame at a time, and so does edgetrim: scoring invokes it
once per image, and batch 32 is timed as 32 calls.

It is an optional extra (`pip install 'edgetrim[litert]'`): `why_unavailable()` says why it cannot run here, and
nothing else in core imports it unless asked.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from pathlib import Path

import numpy as np
import torch

from core.inputs.data import Split
from core.inputs.models import unwrap
from core.runtimes import native_output, timing
from core.runtimes.runtime import CannotRun, Runtime, missing_extra

RUNTIME_NAME = "litert"
FILE_BATCH = 1          # the batch a .tflite is converted for (see the docstring)
INT4_BLOCKS = (32, 64, 128, 256)  # the block sizes ai-edge-quantizer offers
RUN_LINE = ("from ai_edge_litert.interpreter import Interpreter; it = Interpreter(model_path=PATH); "
            "it.allocate_tensors(); it.set_tensor(it.get_input_details()[0]['index'], x)  # x: 1 image, float32; "
            "it.invoke(); logits = it.get_tensor(it.get_output_details()[0]['index'])")


class LiteRTError(CannotRun):
    """A model or format LiteRT cannot take; one sentence on why."""


@functools.cache
def why_unavailable() -> str | None:
    """None when LiteRT converts and runs here, else one sentence on what to install."""
    def probe():
        with quiet():
            import litert_torch  # noqa: F401
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    return missing_extra("LiteRT", "litert", probe)


def version() -> str:
    from importlib.metadata import version as v

    return v("ai-edge-litert")


def why_not_model(model, deploy=None) -> str | None:
    """None when edgetrim can convert this model (in `deploy`'s format) to LiteRT, else why not (a phrase). A
    TorchScript file cannot be traced by torch.export; a loaded .pt2 graph is converted as it is (every format: the
    4-bit file is made from the converted file's layers, not from nn.Linear modules)."""
    if isinstance(model.module, torch.jit.ScriptModule):
        return ("LiteRT needs a model torch.export can trace and a TorchScript file cannot be; give the weights "
                "with their architecture (--arch)")
    return None


def supports(deploy) -> str | None:
    """None when `deploy` has a LiteRT form, else why not (one sentence)."""
    name = type(deploy).__name__
    if name == "Int4" and deploy.block_size not in INT4_BLOCKS:
        return f"LiteRT's 4-bit blocks are {', '.join(map(str, INT4_BLOCKS))} inputs, not {deploy.block_size}"
    if deploy is None or name in ("Int8", "Int4"):
        return None
    return f"the {deploy.label} has no LiteRT form here (fp32, int8 static, int8 dynamic and int4 do)"


@contextlib.contextmanager
def quiet():
    """litert-torch prints a progress tree on stdout and its C++ converter logs on file descriptor 2 (absl, MLIR,
    XNNPACK's 'Created delegate'): hide both, which say nothing to a user. Python exceptions still propagate."""
    old = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        with native_output.hidden(1, 2):
            yield
    finally:
        if old is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = old


def _quantized(module: torch.nn.Module, input_shape, deploy, calibration: Split | None):
    """(`module` with PT2E quantize / dequantize pairs from litert-torch's quantizer, calibrated on training images
    for static int8; the quantizer, which the converter needs to see)."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e import allow_exported_model_train_eval, quantize_pt2e

    dynamic = deploy.mode.value == "dynamic"
    quantizer = pq.PT2EQuantizer().set_global(
        pq.get_symmetric_quantization_config(is_per_channel=deploy.per_channel, is_dynamic=dynamic))
    graph, step = _calibration_graph(module, input_shape)
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        if dynamic:
            prepared(torch.zeros(1, *input_shape))
        else:
            for x in calibration.batches(32, stop=deploy.calibration_samples):
                for i in range(0, len(x), step):
                    prepared(x[i:i + step])
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    allow_exported_model_train_eval(converted).eval()  # an exported graph's own eval: dropout and batch norm ops
    return converted, quantizer


def _calibration_graph(module: torch.nn.Module, input_shape) -> tuple[torch.nn.Module, int]:
    """(`module` exported for calibration, the batch it takes): any batch, run 32 at a time; or, for a graph whose
    batch is baked in (a .pt2 loaded as it was exported), one image at a time. Converted at FILE_BATCH either way."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        graph = torch.export.export(module, (torch.zeros(2, *input_shape),), dynamic_shapes=({0: batch},)).module()
        with torch.no_grad():
            graph(torch.zeros(3, *input_shape))  # a baked-in batch fails here, at its guard
        return graph, 32
    except Exception:
        return torch.export.export(module, (torch.zeros(1, *input_shape),)).module(), 1


def _int4(fp32: bytes, block_size: int) -> bytes:
    """The fp32 .tflite `fp32` with every fully connected layer's weights in 4 bits (ai-edge-quantizer's dynamic
    recipe: 8-bit activations quantized on the fly x 4-bit weights, LiteRT's kernel), in blocks of `block_size`
    inputs where a layer's input count is a multiple of it, else one scale per output channel. Convolutions stay
    fp32."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, qtyping

    fc = qtyping.TFLOperationName.FULLY_CONNECTED
    q = quantizer.Quantizer(fp32)
    q.add_dynamic_config(".*", fc, 4, qtyping.QuantGranularity.CHANNELWISE)
    it = Interpreter(model_content=fp32)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    for op in it._get_ops_details():
        if op["op_name"] == "FULLY_CONNECTED" and tensors[op["inputs"][1]]["shape"][-1] % block_size == 0:
            q.add_dynamic_config("^" + re.escape(tensors[op["outputs"][0]]["name"]) + "$", fc, 4,
                                 qtyping.QuantGranularity(f"BLOCKWISE_{block_size}"))
    return bytes(q.quantize(enable_progress_report=False).quantized_model)


def write_tflite(model, deploy, path: str | Path, calibration: Split | None = None) -> Path:
    """The .tflite file `model` (a LoadedModel) ships as in `deploy`'s format, batch 1."""
    from core.runtimes.onnx_io import EXPORT_LOCK

    reason = why_unavailable() or supports(deploy) or why_not_model(model, deploy)
    if reason:
        raise LiteRTError(reason[0].upper() + reason[1:] + ".")
    path = Path(path)
    name = type(deploy).__name__
    if name == "Int8" and deploy.mode.value == "static" and calibration is None:
        raise LiteRTError("Static int8 needs calibration data (the training split).")
    example = (torch.zeros(FILE_BATCH, *model.input_shape),)
    with EXPORT_LOCK, quiet():
        import litert_torch
        from litert_torch.quantize.quant_config import QuantConfig

        module = unwrap(model.module.eval())
        options = {}
        if name == "Int8":
            module, quantizer = _quantized(module, model.input_shape, deploy, calibration)
            options["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
        content = litert_torch.convert(module, example, **options).model_content()
        if name == "Int4":
            content = _int4(content, deploy.block_size)
    path.write_bytes(content)
    return path


class Loaded:
    """One .tflite file in an interpreter on `threads` threads: `run(x)` runs a batch of images, one call per
    image (the file's batch is 1)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        with quiet():
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or torch.get_num_threads())
            self.interpreter.allocate_tensors()
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.input, self.output, self.batch = inp["index"], out["index"], int(inp["shape"][0])
        self.dtype = inp["dtype"]
        # a static int8 file takes and returns int8 (its scale and zero point say how): the caller's float images are
        # quantized on the way in and the logits dequantized on the way out, as a device's code does
        self.in_q = inp["quantization"] if inp["quantization"][0] else None
        self.out_q = out["quantization"] if out["quantization"][0] else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits (float32) for the images `x` (float32, N x C x H x W), `batch` at a time."""
        if self.in_q:
            info = np.iinfo(self.dtype)
            x = np.clip(np.round(x / self.in_q[0]) + self.in_q[1], info.min, info.max)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        it, b, out = self.interpreter, self.batch, []
        for i in range(0, len(x), b):
            it.set_tensor(self.input, x[i:i + b])
            it.invoke()
            out.append(it.get_tensor(self.output).copy())
        logits = np.concatenate(out).astype(np.float32)
        return (logits - self.out_q[1]) * self.out_q[0] if self.out_q else logits


def load(path: str | Path, threads: int | None = None) -> Loaded:
    return Loaded(path, threads)


def predict(loaded: Loaded, split: Split) -> np.ndarray:
    """Logits for every image of `split` (read 256 at a time, run one by one)."""
    return np.concatenate([loaded.run(x.numpy()) for x in split.batches(256)])


def accuracy(loaded_or_path, split: Split) -> float:
    loaded = load(loaded_or_path) if isinstance(loaded_or_path, (str, Path)) else loaded_or_path
    return float((predict(loaded, split).argmax(1) == split.y.numpy()).mean())


def time_file(loaded: Loaded, input_shape: tuple[int, ...], batch: int, threads: int,
              budget_s: float = timing.TIME_BUDGET_S) -> timing.Latency:
    """One call of `batch` images: `batch` invocations of the batch-1 file (its interpreter was made with `threads`
    threads when loaded: measurement loads and times with the same count)."""
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    return timing.latency(RUNTIME_NAME, lambda: loaded.run(x), batch, threads, budget_s)


def device_ram(path: str | Path) -> tuple[int, str]:
    """The tensor arena a microcontroller needs for this file (core.runtimes.micro), and how it was found."""
    from core.runtimes import micro

    return micro.memory(path)[1:]


RUNTIME = Runtime(name="litert", package="ai-edge-litert", suffix=".tflite", kept_as="tflite", measures_file=True,
                  version=version, why_unavailable=why_unavailable,
                  why_not=lambda model, deploy: why_not_model(model, deploy) or supports(deploy),
                  write=write_tflite, load=load, score=accuracy, time=time_file, memory=device_ram)
