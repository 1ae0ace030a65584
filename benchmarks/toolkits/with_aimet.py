"""Qualcomm AIMET (aimet-torch 2.x), post-training W8A8 and W4A8, by its feature guide "Adaptive rounding"
(https://quic.github.io/aimet-pages/releases/latest/featureguide/adaround.html, snippet
Docs/snippets/torch/apply_adaround.py), with batch-norm folding first as that page and the "Batch norm folding"
guide (snippet apply_bnf.py) recommend: prepare_model, fold_all_batch_norms, Adaround.apply_adaround on the
calibration batches, QuantizationSimModel (default config) with the AdaRound weight encodings loaded frozen,
compute_encodings for the activations.

Export: `aimet_torch.onnx.export` (aimet-torch's QDQ export, API reference of aimet_torch.onnx), which writes
QuantizeLinear/DequantizeLinear into the graph; `prequantize_constants=True` stores the weights as int8 / int4
initializers, so ONNX Runtime runs the quantized model itself. (The classic `sim.export` writes an fp32 ONNX plus
a .encodings JSON, which only Qualcomm's QNN/QAIRT tools apply.) `export_int32_bias=False` keeps biases float:
with AIMET's default int32-bias DequantizeLinear, ONNX Runtime's QDQ fusion (ORT_ENABLE_EXTENDED and up) turns a
99.7 % LeNet-5 into 0 % (it is right with optimizations off); with float biases ORT fuses and stays right.

AdaRound iterations: 100 per layer, not the documented default 10,000 (15,000 below 8 bits), to fit the
benchmark's shared-CPU budget (2,000 took ~4 min for one LeNet-5 layer; AIMET's own AdaRound example cuts to 32
"to speed up execution"); batch size, regularisation, beta range and warm start stay at their defaults. The 512
calibration images are inside the guide's "500-1000 images". No accuracy target: AIMET's PTQ recipe has no
tolerated-loss loop, so job.max_drop is unused.
"""
from __future__ import annotations

import aimet_torch.onnx
from aimet_torch.adaround.adaround_weight import Adaround, AdaroundParameters
from aimet_torch.batch_norm_fold import fold_all_batch_norms
from aimet_torch.model_preparer import prepare_model
from aimet_torch.quantsim import QuantizationSimModel

from toolkits import Job, Output

ADAROUND_ITERATIONS = 100


def quantize(job: Job, weight_bits: int) -> Output:
    model = prepare_model(job.fresh_model())
    dummy_input = job.example()
    fold_all_batch_norms(model, dummy_input.shape, dummy_input=dummy_input)

    prefix = f"adaround_w{weight_bits}"
    params = AdaroundParameters(data_loader=job.calibration, num_batches=len(job.calibration),
                                default_num_iterations=ADAROUND_ITERATIONS)
    model = Adaround.apply_adaround(model, dummy_input, params, path=str(job.folder), filename_prefix=prefix,
                                    default_param_bw=weight_bits)

    sim = QuantizationSimModel(model, dummy_input, default_param_bw=weight_bits, default_output_bw=8)
    sim.load_encodings(job.folder / f"{prefix}.encodings", allow_overwrite=False)
    sim.compute_encodings(lambda m: [m(x) for x in job.calibration])

    path = job.folder / f"{job.name}_w{weight_bits}a8.onnx"
    aimet_torch.onnx.export(sim, dummy_input, str(path), input_names=["input"], output_names=["output"],
                            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                            opset_version=21, dynamo=False, prequantize_constants=True,
                            export_int32_bias=False)  # ORT's fused int8 kernels mis-run AIMET's int32-bias DQ
    return Output(f"AdaRound W{weight_bits}A8 (QDQ)", path, "onnxruntime")


def compress(job: Job) -> list[Output]:
    return [quantize(job, 8), quantize(job, 4)]
