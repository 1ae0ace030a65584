"""torchao by its README's inference recipe: `quantize_(model, config)` with its weight-only configs.

https://github.com/pytorch/ao (README "Quick Start" and docs "Quantization Overview"): int8 weight-only
(`Int8WeightOnlyConfig`), int8 dynamic activations with int8 weights (`Int8DynamicActivationInt8WeightConfig`)
and 4-bit weights for CPU and edge (`IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32))`,
the form ExecuTorch lowers). `quantize_` changes nn.Linear layers by default; convolutions stay fp32, as torchao
documents. The result runs in PyTorch; it ships as a torch.export program (.pt2).
"""
from __future__ import annotations

import torch
from torch import nn
from torchao.quantization import (Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, IntxWeightOnlyConfig,
                                  PerAxis, PerGroup, quantize_)

from . import Job, Output, save_program

GROUP = 32


def grouped(module: nn.Module, _: str) -> bool:
    return isinstance(module, nn.Linear) and module.in_features % GROUP == 0


def ungrouped(module: nn.Module, _: str) -> bool:  # 4-bit groups must divide a row: per-channel scales instead
    return isinstance(module, nn.Linear) and module.in_features % GROUP != 0


CONFIGS = {
    "int8 weight-only": [(Int8WeightOnlyConfig(), None)],
    "int8 dynamic activations, int8 weights": [(Int8DynamicActivationInt8WeightConfig(), None)],
    "int4 weight-only (group 32)": [(IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(GROUP)), grouped),
                                    (IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerAxis(0)), ungrouped)],
}


def compress(job: Job) -> list[Output]:
    outputs = []
    for i, (label, steps) in enumerate(CONFIGS.items()):
        model = job.fresh_model()
        for config, which in steps:
            quantize_(model, config, filter_fn=which)
        path = save_program(model, job.example(), job.folder / f"torchao-{i}.pt2")
        outputs.append(Output(label, path, "pytorch"))
    return outputs
