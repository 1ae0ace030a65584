"""ExecuTorch files (.pte): write one for a deploy format, run it, time it, score it.

ExecuTorch is PyTorch's on-device runtime; its XNNPACK backend is what phones and
boards run on the CPU. A model is traced with torch.export (batch dimension dynamic
up to MAX_BATCH, so one file serves a camera frame and a batch of test images),
lowered with `XnnpackPartitioner`, and run here in `executorch.runtime`, the same
runtime a device embeds. Formats:

- fp32: the model as it is;
- int8: PT2E static quantization with `XNNPACKQuantizer` (per-channel symmetric weights,
  activations calibrated on training images);
- 4-bit (`deploy.Int4`): 8-bit dynamic activations and 4-bit grouped weights for Linear
  layers (torchao's `Int8DynamicActivationIntxWeightConfig`, XNNPACK's kernel); convolutions stay fp32.

It is an optional extra (`pip install 'edgetrim[executorch]'`): `why_unavailable()` says
why it cannot run here, and nothing else in core imports it unless asked.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
from pathlib import Path

import torch

from core.inputs.data import Split
from core.inputs.models import GraphModel, unwrap
from core.runtimes import native_output, timing
from core.runtimes.runtime import CannotRun, Runtime, missing_extra

MAX_BATCH = 64          # the largest batch a .pte accepts (memory is planned for it)
RUNTIME_NAME = "executorch"
RUN_LINE = ("from executorch.runtime import Runtime; "
            "m = Runtime.get().load_program(PATH).load_method('forward'); logits = m.execute([x])[0]")


class ExecuTorchError(CannotRun):
    """A model or format ExecuTorch cannot take; one sentence on why."""


@functools.cache
def why_unavailable() -> str | None:
    """None when ExecuTorch runs here, else one sentence on what to install."""
    def probe():
        with quiet_native_logs():
            import executorch.runtime  # noqa: F401
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
    return missing_extra("ExecuTorch", "executorch", probe)


def version() -> str:
    from importlib.metadata import version as v

    return v("executorch")


def why_not_model(model, deploy=None) -> str | None:
    """None when edgetrim can lower this model (in `deploy`'s format) to ExecuTorch, else why not (a phrase). A
    TorchScript file cannot be traced by torch.export; a loaded .pt2 graph is exported again (fp32, int8), but has no
    nn.Linear layers for the 4-bit format to replace."""
    if isinstance(model.module, torch.jit.ScriptModule):
        return ("ExecuTorch needs a model torch.export can trace and a TorchScript file cannot be; give the weights "
                "with their architecture (--arch)")
    if isinstance(model.module, GraphModel) and type(deploy).__name__ == "Int4":
        return ("the 4-bit ExecuTorch file replaces nn.Linear layers, which a loaded torch.export (.pt2) graph does "
                "not have; give the weights with their architecture (--arch)")
    return None


def supports(deploy) -> str | None:
    """None when `deploy` has an ExecuTorch form, else why not (one sentence)."""
    name = type(deploy).__name__
    if deploy is None or name == "Int4" or (name == "Int8" and deploy.mode.value == "static"):
        return None
    return f"the {deploy.label} has no ExecuTorch form here (fp32, int8 static and int4 do)"


@contextlib.contextmanager
def quiet_native_logs():
    """ExecuTorch's C++ code logs to file descriptor 2 (cpuinfo probes, thread pool resets), and importing torchao
    warns through torch's pytree logger about its own enums: hide both, which say nothing to a user."""
    pytree = logging.getLogger("torch.utils._pytree")
    level = pytree.level
    pytree.setLevel(logging.ERROR)
    try:
        with native_output.hidden(2):
            yield
    finally:
        pytree.setLevel(level)


def _exported(module: torch.nn.Module, input_shape: tuple[int, ...]):
    example = torch.zeros(MAX_BATCH, *input_shape)  # memory is planned for the example's batch: the largest
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))


def _int8(module: torch.nn.Module, input_shape, calibration: Split, samples: int) -> torch.nn.Module:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(_exported(module, input_shape).module(), quantizer)
    with torch.no_grad():
        for x in calibration.batches(32, stop=samples):
            prepared(x)
    return convert_pt2e(prepared)


class _PaddedLinear(torch.nn.Module):
    """A Linear layer whose input is padded with zeros to `features` (its extra weight columns are zero): the same
    function, with an input size XNNPACK's 4-bit kernel accepts (a multiple of its group size)."""

    def __init__(self, linear: torch.nn.Linear, features: int):
        super().__init__()
        self.pad = features - linear.in_features
        self.linear = torch.nn.Linear(features, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[:, :linear.in_features] = linear.weight
            if linear.bias is not None:
                self.linear.bias.copy_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.nn.functional.pad(x, (0, self.pad)))


def _int4(module: torch.nn.Module, block_size: int) -> torch.nn.Module:
    """Every Linear layer with 4-bit weights in groups of `block_size` inputs (at least 32, XNNPACK's rule); a layer
    whose input size is not a multiple of the group is padded to one with zeros first."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    group = max(32, block_size)
    model = copy.deepcopy(module)
    for name, layer in list(model.named_modules()):
        if isinstance(layer, torch.nn.Linear) and layer.in_features % group:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, _PaddedLinear(layer, -(-layer.in_features // group) * group))
    quantize_(model, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(group)))
    return model


def write_pte(model, deploy, path: str | Path, calibration: Split | None = None) -> Path:
    """The .pte file `model` (a LoadedModel) ships as in `deploy`'s format, lowered to XNNPACK."""
    from core.runtimes.onnx_io import EXPORT_LOCK

    reason = why_unavailable() or supports(deploy)
    if reason:
        raise ExecuTorchError(reason[0].upper() + reason[1:] + ".")
    reason = why_not_model(model, deploy)
    if reason:
        raise ExecuTorchError(reason[0].upper() + reason[1:] + ".")
    path = Path(path)
    name = type(deploy).__name__
    with EXPORT_LOCK, quiet_native_logs():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        module = unwrap(model.module.eval())  # a .pt2's graph, exported again (its wrapper is not traceable)
        if name == "Int8":
            if calibration is None:
                raise ExecuTorchError("Static int8 needs calibration data (the training split).")
            module = _int8(module, model.input_shape, calibration, deploy.calibration_samples)
        elif name == "Int4":
            module = _int4(module, deploy.block_size)
        program = to_edge_transform_and_lower(_exported(module, model.input_shape),
                                              partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(program.buffer)
    return path


def set_threads(threads: int) -> None:
    """XNNPACK's thread pool is one per process: every .pte run after this uses `threads` threads."""
    with quiet_native_logs():
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)


def load(path: str | Path, threads: int | None = None):
    """The 'forward' method of a .pte file, ready to `execute([x])`."""
    set_threads(threads or torch.get_num_threads())
    with quiet_native_logs():
        from executorch.runtime import Runtime

        return Runtime.get().load_program(str(path)).load_method("forward")


def predict(method, split: Split) -> torch.Tensor:
    """Logits for every image of `split`, MAX_BATCH at a time."""
    return torch.cat([method.execute([x.contiguous()])[0] for x in split.batches(MAX_BATCH)])


def accuracy(method_or_path, split: Split) -> float:
    method = load(method_or_path) if isinstance(method_or_path, (str, Path)) else method_or_path
    return float((predict(method, split).argmax(1) == split.y).float().mean())


def time_method(method, input_shape: tuple[int, ...], batch: int, threads: int,
                budget_s: float = timing.TIME_BUDGET_S) -> timing.Latency:
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    set_threads(threads)
    return timing.latency(RUNTIME_NAME, lambda: method.execute([x]), batch, threads, budget_s)


RUNTIME = Runtime(name="executorch", package="executorch", suffix=".pte", kept_as="pte", measures_file=True,
                  version=version, why_unavailable=why_unavailable,
                  why_not=lambda model, deploy: why_not_model(model, deploy) or supports(deploy),
                  write=write_pte, load=load, score=accuracy, time=time_method)
