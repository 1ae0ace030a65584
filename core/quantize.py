"""Quantization: k-bit weights, weight sharing, real int8 in ONNX Runtime, fp16.

Two kinds of method live here:
- Weight methods change the numbers in the PyTorch model: `WeightQuant` rounds each
  Conv/Linear weight to 2-8 bit levels (per channel or per tensor, symmetric or
  affine; optionally after quantization-aware training with a straight-through
  estimator) and `WeightShare` clusters each layer's weights into 2^k shared values
  (k-means, linear init, as in Deep Compression). Accuracy is that of the rounded
  weights; the compact archive (core.archive) stores them as packed k-bit codes.
- Deployment formats produce an ONNX Runtime file that runs on other kernels:
  `Int8` (static QDQ with calibration on the training split, or dynamic) and
  `Float16`. The model carries the format; `realize_onnx` writes the file, and its
  accuracy and latency are measured by running it in ONNX Runtime, not simulated.

torch-side int8 (torch.ao) is deliberately absent: ONNX Runtime is the deployable path.
"""
from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

from core.data import DataSet, Split
from core.models import LoadedModel
from core.prune import prunable_weights
from core.spec import SpecError, register
from core.train import Progress, recalibrate_bn_, train_


class Granularity(str, enum.Enum):
    PER_CHANNEL = "per_channel"
    PER_TENSOR = "per_tensor"


class Scheme(str, enum.Enum):
    SYMMETRIC = "symmetric"
    AFFINE = "affine"


class Int8Mode(str, enum.Enum):
    STATIC = "static"
    DYNAMIC = "dynamic"


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise SpecError(f"A bit width must be a whole number from 2 to 8, got {bits!r}.")


@dataclass(frozen=True)
class WeightQuant:
    bits: int = 8
    granularity: Granularity = Granularity.PER_CHANNEL
    scheme: Scheme = Scheme.SYMMETRIC
    qat_epochs: int = 0             # > 0: quantization-aware training (straight-through estimator) first
    lr: float = 5e-4
    seed: int = 0

    def __post_init__(self):
        _check_bits(self.bits)
        if self.qat_epochs < 0:
            raise SpecError(f"qat_epochs must be 0 or more, got {self.qat_epochs}.")
        object.__setattr__(self, "granularity", Granularity(self.granularity))
        object.__setattr__(self, "scheme", Scheme(self.scheme))


@dataclass(frozen=True)
class WeightShare:
    bits: int = 4                   # 2^bits shared values per layer
    iterations: int = 30

    def __post_init__(self):
        _check_bits(self.bits)
        if self.iterations < 1:
            raise SpecError(f"k-means needs at least 1 iteration, got {self.iterations}.")


@dataclass(frozen=True)
class Int8:
    mode: Int8Mode = Int8Mode.STATIC
    per_channel: bool = True
    calibration_samples: int = 256  # drawn from the training split, never from test

    def __post_init__(self):
        object.__setattr__(self, "mode", Int8Mode(self.mode))
        if self.calibration_samples < 1:
            raise SpecError(f"Static int8 needs at least 1 calibration sample, got {self.calibration_samples}.")


@dataclass(frozen=True)
class Float16:
    keep_io_float32: bool = True    # the file still takes and returns float32


# ---- k-bit fake quantization -------------------------------------------------------

def fake_quantize(w: torch.Tensor, bits: int, granularity: Granularity = Granularity.PER_CHANNEL,
                  scheme: Scheme = Scheme.SYMMETRIC) -> torch.Tensor:
    """`w` rounded to 2^bits levels (symmetric: 2^bits - 1 levels around an exact zero) and back to float."""
    dims = tuple(range(1, w.ndim)) if Granularity(granularity) is Granularity.PER_CHANNEL and w.ndim > 1 else None
    amax = (lambda t: t.amax(dim=dims, keepdim=True)) if dims else (lambda t: t.max())
    amin = (lambda t: t.amin(dim=dims, keepdim=True)) if dims else (lambda t: t.min())
    if Scheme(scheme) is Scheme.SYMMETRIC:
        qmax = 2 ** (bits - 1) - 1
        scale = (amax(w.abs()) / qmax).clamp_min(1e-12)
        return (w / scale).round().clamp(-qmax, qmax) * scale
    lo, hi = amin(w).clamp(max=0), amax(w).clamp(min=0)  # the range holds 0, so zeros stay exactly zero
    scale = ((hi - lo) / (2 ** bits - 1)).clamp_min(1e-12)
    zero = (-lo / scale).round()
    return ((w / scale).round() + zero).clamp(0, 2 ** bits - 1).sub(zero) * scale


class _STEFakeQuant(nn.Module):
    """Parametrization: forward sees quantized weights, gradients pass straight through."""

    def __init__(self, cfg: WeightQuant):
        super().__init__()
        self.cfg = cfg

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (fake_quantize(w, self.cfg.bits, self.cfg.granularity, self.cfg.scheme) - w).detach()


@register(WeightQuant)
def weight_quant(model: LoadedModel, cfg: WeightQuant, data: DataSet,
                 progress: Progress | None = None) -> LoadedModel:
    module = copy.deepcopy(model.module)
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    if cfg.qat_epochs > 0:
        masks = [(m, m.weight.detach() != 0) for m in layers if (m.weight == 0).any()]  # pruned zeros stay zero
        for m in layers:
            parametrize.register_parametrization(m, "weight", _STEFakeQuant(cfg))
        d = data.adapted(model.input_shape)

        @torch.no_grad()
        def hold_zeros(_):
            for m, mask in masks:
                m.parametrizations.weight.original.mul_(mask)

        train_(module, d.train, d.val, epochs=cfg.qat_epochs, lr=cfg.lr, seed=cfg.seed, progress=progress,
               after_step=hold_zeros)
        for m in layers:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    with torch.no_grad():
        for m in layers:
            m.weight.copy_(fake_quantize(m.weight, cfg.bits, cfg.granularity, cfg.scheme))
    recalibrate_bn_(module, data.adapted(model.input_shape).train)
    return model.derive(module)


# ---- weight sharing ------------------------------------------------------------------

def kmeans_1d(values: torch.Tensor, k: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids, assignment) of 1-D k-means with linear initialisation over [min, max]."""
    centroids = torch.linspace(float(values.min()), float(values.max()), k)
    for _ in range(iterations):
        assign = (values[:, None] - centroids[None]).abs().argmin(1)
        sums = torch.zeros(k).index_add_(0, assign, values)
        counts = torch.bincount(assign, minlength=k).float()
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if torch.allclose(moved, centroids):
            break
        centroids = moved
    return centroids, (values[:, None] - centroids[None]).abs().argmin(1)


@register(WeightShare)
def weight_share(model: LoadedModel, cfg: WeightShare, data: DataSet,
                 progress: Progress | None = None) -> LoadedModel:
    """Each layer's non-zero weights replaced by the nearest of 2^bits centroids (zeros stay zero)."""
    module = copy.deepcopy(model.module)
    with torch.no_grad():
        for _, w in prunable_weights(module):
            flat = w.view(-1)
            nz = flat != 0
            if int(nz.sum()) <= 2 ** cfg.bits:
                continue
            centroids, assign = kmeans_1d(flat[nz], 2 ** cfg.bits, cfg.iterations)
            flat[nz] = centroids[assign]
    recalibrate_bn_(module, data.adapted(model.input_shape).train)
    return model.derive(module)


# ---- ONNX-only formats ------------------------------------------------------------------

@register(Int8)
def int8(model: LoadedModel, cfg: Int8, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    """Marks the model for int8 export; the weights are unchanged until `realize_onnx` writes the file."""
    return model.derive(copy.deepcopy(model.module), deploy=cfg)


@register(Float16)
def float16(model: LoadedModel, cfg: Float16, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    return model.derive(copy.deepcopy(model.module), deploy=cfg)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over the first `n` training images, batches of 32."""

    def __init__(self, split: Split, n: int, input_name: str):
        x = split.x[:n].numpy().astype(np.float32)
        self._batches = iter([{input_name: x[i:i + 32]} for i in range(0, len(x), 32)])

    def get_next(self):
        return next(self._batches, None)


def realize_onnx(cfg, fp32_path: Path, out_path: Path, calibration: Split | None) -> Path:
    """Turn an fp32 ONNX file into the deployment format `cfg` describes."""
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quant_pre_process,
                                          quantize_dynamic, quantize_static)

    out_path = Path(out_path)
    if isinstance(cfg, Float16):
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=cfg.keep_io_float32), str(out_path))
        return out_path
    if not isinstance(cfg, Int8):
        raise SpecError(f"{type(cfg).__name__} is not an ONNX deployment format.")
    pre = fp32_path.with_name("pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    if cfg.mode is Int8Mode.DYNAMIC:
        quantize_dynamic(str(pre), str(out_path), weight_type=QuantType.QInt8, per_channel=cfg.per_channel)
        return out_path
    if calibration is None:
        raise SpecError("Static int8 needs calibration data (the training split).")
    quantize_static(str(pre), str(out_path), _Calibration(calibration, cfg.calibration_samples, "input"),
                    quant_format=QuantFormat.QDQ, per_channel=cfg.per_channel, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return out_path
