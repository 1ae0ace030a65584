"""Deploy formats: the file a point ships as, its own step of a Spec (after distill, prune, quantize).

`None` is the plain fp32 ONNX file. `Int8` is ONNX Runtime's static QDQ file calibrated
on training images (or dynamic int8), `Float16` halves the weights. A format never
changes the PyTorch weights: `realize_onnx` turns the fp32 export into the format, and
the point's accuracy and latency come from running that file in ONNX Runtime. So
"prune -> 4-bit weights -> int8 file" is one Spec.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.registry import SpecError, register_config


class Int8Mode(str, enum.Enum):
    STATIC = "static"
    DYNAMIC = "dynamic"


@register_config
@dataclass(frozen=True)
class Int8:
    mode: Int8Mode = Int8Mode.STATIC
    per_channel: bool = True
    calibration_samples: int = 256  # drawn from the training split, never from test

    def __post_init__(self):
        object.__setattr__(self, "mode", Int8Mode(self.mode))
        if self.calibration_samples < 1:
            raise SpecError(f"Static int8 needs at least 1 calibration sample, got {self.calibration_samples}.")

    @property
    def label(self) -> str:
        return f"int8 ONNX file ({self.mode.value}{', per-tensor' if not self.per_channel else ''})"


@register_config
@dataclass(frozen=True)
class Float16:
    keep_io_float32: bool = True    # the file still takes and returns float32

    @property
    def label(self) -> str:
        return "fp16 ONNX file"


# the one spelling of each format token (sweep files, the CLI, the dashboard)
TOKENS = {"fp32": None, "fp16": Float16(), "int8": Int8(), "int8-dynamic": Int8(mode=Int8Mode.DYNAMIC)}
TOKEN_HELP = {"fp32": "plain float32 ONNX file", "fp16": "float16 weights, half the file",
              "int8": "int8 weights and activations (static, calibrated on training images)",
              "int8-dynamic": "int8 weights, activations quantized on the fly"}


def from_token(token: str):
    if token not in TOKENS:
        raise SpecError(f"The deploy format is one of {', '.join(TOKENS)}, not {token!r}.")
    return TOKENS[token]


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over the first `n` training images, batches of 32
    (made float32 one batch at a time: a uint8 split stays uint8)."""

    def __init__(self, split, n: int, input_name: str):
        self._batches = ({input_name: x.numpy().astype(np.float32)} for x in split.batches(32, stop=n))

    def get_next(self):
        return next(self._batches, None)


def realize_onnx(cfg, fp32_path: Path, out_path: Path, calibration=None) -> Path:
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
