"""Intel Neural Compressor 3.x (neural_compressor.torch): static int8 PTQ with accuracy-aware tuning.

Recipe: INC's AutoTune page (docs/source/3x/autotune.md, "Working with PyTorch Model": `autotune(model,
TuningConfig(config_set, tolerable_loss), eval_fn, run_fn)`) over INC's own int8 tuning set
`StaticQuantConfig.get_config_set_for_tuning()` (activations sym/asym x minmax/kl), on the PT2E backend of
"PyTorch Static Quantization" (docs/source/3x/PT_StaticQuant.md, "Static Quantization with PT2E Backend",
https://intel.github.io/neural-compressor/3.0/docs/source/3x/PT_StaticQuant.html): the model is exported with
`neural_compressor.torch.export.export`; without intel_extension_for_pytorch (not installed) static_quant runs
torchao's X86InductorQuantizer (int8 per-channel weights, uint8 per-tensor activations). The result is a Q/DQ
graph; INC's `q_model.save(example_inputs, output_dir)` writes it as a torch.export archive `quantized_weight.pt`
(+ `qconfig.json`), which `neural_compressor.torch.quantization.load(output_dir)` reloads (or `import torchao` and
`torch.export.load`).

`tolerable_loss` is relative in INC 3.x (a trial passes if its score >= baseline * (1 - tolerable_loss)), so the
absolute `job.max_drop` is divided by the fp32 validation accuracy.
"""
from __future__ import annotations

import torch
from neural_compressor.torch.export import export
from neural_compressor.torch.quantization import StaticQuantConfig, TuningConfig, autotune

from toolkits import Job, Output, val_accuracy

PER_FLOOR = True  # INC's tuning needs a tolerated loss: it runs at each floor, and makes nothing without one


def compress(job: Job) -> list[Output]:
    if job.max_drop is None:
        return []
    example = (job.example(2),)  # batch 2: a batch of 1 would specialize the dynamic dim
    dynamic = ({0: torch.export.Dim("batch")},)
    model = export(job.model, example_inputs=example, dynamic_shapes=dynamic)

    def eval_fn(m) -> float:
        return val_accuracy(m, job.val_x, job.val_y)

    def run_fn(m) -> None:
        for x in job.calibration:
            m(x)

    # a list: 3.10's autotune iterates config_set, so the docs' bare single config raises a TypeError
    tune_config = TuningConfig(config_set=[StaticQuantConfig.get_config_set_for_tuning()],
                               tolerable_loss=job.max_drop / eval_fn(model))
    q_model = autotune(model, tune_config=tune_config, eval_fn=eval_fn, run_fn=run_fn, example_inputs=example)
    q_model.save(example_inputs=example, output_dir=str(job.folder))
    onnx_path = job.folder / "model_int8.onnx"  # not INC's API (3.x has no ONNX export): plain torch.onnx, Q/DQ
    torch.onnx.export(q_model, example, str(onnx_path), dynamo=True, dynamic_shapes=dynamic, external_data=False)
    return [Output("PT2E static int8 + autotune", job.folder / "quantized_weight.pt", "pytorch"),
            Output("PT2E static int8 + autotune, as ONNX Q/DQ", onnx_path, "onnxruntime")]
