"""Sony's Model Compression Toolkit (MCT 2.6), by its own PyTorch tutorials, with its default target platform
(IMX500 TPC v1.0: weights in 8, 4 or 2 bits, activations in 8):

- PTQ: "Post-Training Quantization in PyTorch using MCT"
  (tutorials/notebooks/mct_features_notebooks/pytorch/example_pytorch_post_training_quantization.ipynb);
- mixed precision: "Mixed-Precision Post-Training Quantization in PyTorch using MCT"
  (.../pytorch/example_pytorch_mixed_precision_ptq.ipynb): `MixedPrecisionQuantizationConfig(num_of_images=32,
  use_hessian_based_scores=False)` and a `ResourceUtilization(weights_memory=...)` target in bytes (kernels
  only, biases excluded), here edgetrim's file size instead of the tutorial's 0.75 x the 8-bit size; a target
  below the all-2-bit size makes MCT raise ValueError;
- export: "Export Quantized Pytorch Model" (.../pytorch/example_pytorch_export.ipynb), ONNX in the
  FAKELY_QUANT format, the one a plain ONNX Runtime session runs (the default MCTQ format needs
  onnxruntime-extensions and `mct_quantizers.get_ort_session_options()`).

Both files keep fp32 weights (fake-quant; activations as QuantizeLinear/DequantizeLinear pairs), so their size
is the fp32 model's: MCT's own weights-memory figure is in the mixed-precision label.
"""
import functools
from unittest import mock

import model_compression_toolkit as mct
import torch

from toolkits import Job, Output

PER_FLOOR = True  # mixed precision targets edgetrim's file size at each floor; plain PTQ is made once


def compress(job: Job) -> list[Output]:
    def representative_data_gen():
        for batch in job.calibration:
            yield [batch]

    def export(model, name, label):
        path = job.folder / name
        # MCT 2.6 supports torch 2.3-2.6; from torch 2.9 torch.onnx.export defaults to the dynamo exporter,
        # which rejects MCT's export call: keep the TorchScript exporter MCT was written for
        with mock.patch("torch.onnx.export", functools.partial(torch.onnx.export, dynamo=False)):
            mct.exporter.pytorch_export_model(model, save_model_path=str(path),
                                              repr_dataset=representative_data_gen,
                                              quantization_format=mct.exporter.QuantizationFormat.FAKELY_QUANT)
        return Output(label, path, "onnxruntime")

    if not job.target_bytes:
        ptq_model, _ = mct.ptq.pytorch_post_training_quantization(job.fresh_model(), representative_data_gen)
        return [export(ptq_model, "mct_ptq.onnx", "PTQ W8A8")]

    core_config = mct.core.CoreConfig(mixed_precision_config=mct.core.MixedPrecisionQuantizationConfig(
        num_of_images=32, use_hessian_based_scores=False))
    mp_model, info = mct.ptq.pytorch_post_training_quantization(
        job.fresh_model(), representative_data_gen,
        target_resource_utilization=mct.core.ResourceUtilization(weights_memory=job.target_bytes),
        core_config=core_config)
    weights = info.final_resource_utilization.weights_memory
    return [export(mp_model, "mct_mp.onnx", f"mixed-precision PTQ (MCT weights {weights:,.0f} B)")]
