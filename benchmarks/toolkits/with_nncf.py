"""OpenVINO NNCF: post-training int8 quantization of the ONNX export, by NNCF's documented recipes.

- "Quantizing with Accuracy Control" (docs.openvino.ai/2025/openvino-workflow/model-optimization-guide/
  quantizing-models-post-training/quantizing-with-accuracy-control.html): `nncf.quantize_with_accuracy_control`
  with a calibration and a validation `nncf.Dataset` and a validation function returning the metric; it runs on
  OpenVINO and `onnx.ModelProto` models. For ONNX the validation function gets the ModelProto and scores it in an
  onnxruntime session, as NNCF's example examples/post_training_quantization/onnx/yolov8_quantize_with_accuracy_control
  does. It may also return the metric of each item (the API's `(metric, values_for_each_item)` form), which spares
  NNCF a second pass per item when it ranks quantizers.
- "Basic Quantization Flow" (.../quantizing-models-post-training/basic-quantization-flow.html): plain `nncf.quantize`.
- NNCF's docs/usage/post_training_compression/post_training_quantization/ONNX.md: opset 13 or higher.

The calibration loader yields batches of 64, so NNCF's `subset_size` (300 items by default) takes all 512 images.
`nncf.compress_weights` (weight-only int8/int4, documented for LLMs) is left out: on these conv nets its ONNX
output fails in onnxruntime 1.32 (a Conv's per-axis DequantizeLinear scale is not 1-D; int4 needs opset 21).
"""
from __future__ import annotations

import nncf
import numpy as np
import onnx
import onnxruntime as ort
import torch

from toolkits import Job, Output

PER_FLOOR = True  # the accuracy-control loop tunes to each floor; plain PTQ is made once


def compress(job: Job) -> list[Output]:
    fp32 = job.folder / "fp32.onnx"
    torch.onnx.export(job.fresh_model(), (job.example(),), str(fp32), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    loader = torch.utils.data.DataLoader(torch.cat(job.calibration), batch_size=64)
    calibration = nncf.Dataset(loader, lambda images: {"input": images.numpy()})
    validation = nncf.Dataset(list(zip(job.val_x, job.val_y)), lambda item: {"input": item[0][None].numpy()})

    def validate(model: onnx.ModelProto, items) -> tuple[float, list[float]]:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        images, labels = zip(*items)
        x = torch.stack(images).numpy()
        logits = np.concatenate([session.run(None, {"input": x[i:i + 500]})[0] for i in range(0, len(x), 500)])
        right = logits.argmax(1) == torch.stack(labels).numpy()
        return float(right.mean()), right.astype(float).tolist()

    if job.max_drop is None:
        onnx.save(nncf.quantize(onnx.load(fp32), calibration), job.folder / "int8.onnx")
        return [Output("PTQ int8", job.folder / "int8.onnx", "onnxruntime")]
    controlled = nncf.quantize_with_accuracy_control(onnx.load(fp32), calibration, validation, validate,
                                                     max_drop=job.max_drop, drop_type=nncf.DropType.ABSOLUTE)
    onnx.save(controlled, job.folder / "int8_ac.onnx")
    return [Output("PTQ int8 + accuracy control", job.folder / "int8_ac.onnx", "onnxruntime")]
