"""Deploy formats: the file a point ships as, its own step of a Spec (after distill, prune, quantize).

`None` is the plain fp32 file. `Int8` is static int8 calibrated on training images (or
dynamic int8), `Float16` halves the weights, `Int4` stores Linear layers' weights in
4 bits, block-wise, for kernels that run them as such, and `W4A8` stores every layer's
weights in 4 bits beside int8 activations (the W4A8 file AIMET and NNCF users know). A format never changes the
PyTorch weights: `realize_onnx` turns the fp32 ONNX export into the format (and
core.runtimes.executorch_io writes the same format as an ExecuTorch .pte), and the point's
accuracy and latency come from running those files in their runtimes. So
"prune -> 4-bit weights -> int4 file" is one Spec.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.methods.registry import SpecError, register_config


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
        return f"int8 file ({self.mode.value}{', per-tensor' if not self.per_channel else ''})"


@register_config
@dataclass(frozen=True)
class Float16:
    keep_io_float32: bool = True    # the file still takes and returns float32

    @property
    def label(self) -> str:
        return "fp16 ONNX file"


@register_config
@dataclass(frozen=True)
class Int4:
    """4-bit weights in blocks of `block_size` input features, each block with its own scale, for Linear (Gemm /
    MatMul) layers: ONNX Runtime's MatMulNBits, ExecuTorch's 8-bit dynamic activation x 4-bit weight kernel.
    Convolutions stay float32 (neither runtime has a 4-bit convolution)."""
    block_size: int = 32

    def __post_init__(self):
        if self.block_size not in (16, 32, 64, 128, 256):
            raise SpecError(f"The 4-bit block size is 16, 32, 64, 128 or 256 input features, not {self.block_size}.")

    @property
    def label(self) -> str:
        return f"int4 file (4-bit Linear weights, blocks of {self.block_size})"


@register_config
@dataclass(frozen=True)
class W4A8:
    """4-bit weights in every Conv and Linear layer (one scale per output channel) and int8 activations, as
    QuantizeLinear / DequantizeLinear nodes (ONNX Runtime's com.microsoft domain below opset 21), calibrated on
    training images. ONNX Runtime has no 4-bit convolution: it widens the weights at every call, so the file is
    about half an int8 one and slower than fp32 (LeNet-5-Caffe: 229 KB against 450 KB, 0.70 ms against 0.12 ms
    at batch 1). A size format, for ONNX Runtime only: ExecuTorch's and LiteRT's 4-bit files are `Int4`."""
    calibration_samples: int = 256  # drawn from the training split, never from test

    def __post_init__(self):
        if self.calibration_samples < 1:
            raise SpecError(f"A W4A8 file needs at least 1 calibration sample, got {self.calibration_samples}.")

    @property
    def label(self) -> str:
        return "w4a8 file (4-bit weights in every layer, int8 activations)"


# the one spelling of each format token (sweep files, the CLI, the dashboard)
TOKENS = {"fp32": None, "fp16": Float16(), "int8": Int8(), "int8-dynamic": Int8(mode=Int8Mode.DYNAMIC),
          "int4": Int4(), "w4a8": W4A8()}
TOKEN_HELP = {"fp32": "plain float32 ONNX file", "fp16": "float16 weights, half the file",
              "int8": "int8 weights and activations (static, calibrated on training images)",
              "int8-dynamic": "int8 weights, activations quantized on the fly",
              "int4": "4-bit Linear weights in blocks of 32 (convolutions stay float32)",
              "w4a8": "4-bit weights in every layer, int8 activations (ONNX Runtime only; smaller, not faster)"}


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
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    out_path = Path(out_path)
    if isinstance(cfg, Int4):
        return _int4_onnx(cfg, fp32_path, out_path)
    if isinstance(cfg, Float16):
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=cfg.keep_io_float32), str(out_path))
        return out_path
    if not isinstance(cfg, (Int8, W4A8)):
        raise SpecError(f"{type(cfg).__name__} is not an ONNX deployment format.")
    pre = fp32_path.with_name("pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    if isinstance(cfg, W4A8):
        if calibration is None:
            raise SpecError("A W4A8 file needs calibration data (the training split).")
        quantize_static(str(pre), str(out_path), _Calibration(calibration, cfg.calibration_samples, "input"),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt4, calibrate_method=CalibrationMethod.MinMax,
                        # float biases: no 4-bit kernel would add them in int32, and an int32 bias with its
                        # per-channel scale and zero point is three tensors instead of one
                        extra_options={"QuantizeBias": False})
        return out_path
    if cfg.mode is Int8Mode.DYNAMIC:
        quantize_dynamic(str(pre), str(out_path), weight_type=QuantType.QInt8, per_channel=cfg.per_channel,
                         reduce_range=True)
        return out_path
    if calibration is None:
        raise SpecError("Static int8 needs calibration data (the training split).")
    quantize_static(str(pre), str(out_path), _Calibration(calibration, cfg.calibration_samples, "input"),
                    quant_format=QuantFormat.QDQ, per_channel=cfg.per_channel, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    # 7-bit weights: on x86 CPUs without VNNI (AVX2 only), ORT's u8 x s8 kernels add pairs of products
                    # in 16 bits and saturate (lenet5: 96.39 % instead of 98.06 %); 7 bits never overflow, so the file
                    # scores the same on every CPU (the int8 kernels, and the file's size, are unchanged)
                    reduce_range=True)
    return out_path


def gemm_as_matmul(model) -> int:
    """Rewrite each Gemm with a constant weight as MatMul (+ Add for the bias), in place: ONNX Runtime's 4-bit
    quantizer takes MatMul only, and torch's exporter writes Linear layers as Gemm. Returns how many it rewrote."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    rewritten = 0
    for i, node in enumerate(list(graph.node)):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in weights or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            continue
        w = numpy_helper.to_array(weights[node.input[1]])
        w = w.T if attrs.get("transB", 0) else w
        name = node.input[1] + "_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = node.output[0] + "_matmul" if has_bias else node.output[0]
        new = [helper.make_node("MatMul", [node.input[0], name], [product], name=node.name + "_matmul")]
        if has_bias:
            new.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=node.name + "_bias"))
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for k, n in enumerate(new):
            graph.node.insert(position + k, n)
        rewritten += 1
    used = {name for n in graph.node for name in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    return rewritten


def _int4_onnx(cfg: Int4, fp32_path: Path, out_path: Path) -> Path:
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    gemm_as_matmul(model)
    quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level, quiet.level = quiet.level, logging.WARNING  # it logs every node it skips at INFO
    try:
        quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=cfg.block_size, is_symmetric=True,
                                         op_types_to_quantize=("MatMul",))
        quantizer.process()
    finally:
        quiet.setLevel(level)
    quantizer.model.save_model_to_file(str(out_path))
    return out_path
