"""Trained quantization (Deep Compression, Sec. 3.3): fine-tune a layer's shared values, its codes fixed.

Each weight matrix / kernel becomes a parametrization that looks its values up in the
layer's centroids by fixed codes (pruned zeros keep a code that always reads 0), so autograd
gives each centroid the sum of its weights' gradients. Used by k-means weight sharing
(core.methods.quantize.WeightShare) and after soft weight-sharing's snap (core.methods.soft_share).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

from core.inputs.data import DataSet
from core.inputs.train import train_


class SharedWeight(nn.Module):
    """Parametrization: the weight is its layer's centroids looked up by fixed codes (zeros stay zero)."""

    def __init__(self, centroids: torch.Tensor, codes: torch.Tensor):
        super().__init__()
        self.centroids = nn.Parameter(centroids.clone())
        self.register_buffer("codes", codes)

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.centroids, self.centroids.new_zeros(1)])[self.codes]


def codes_of(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct non-zero values, codes) of a weight already shared; zeros get code len(values)."""
    flat = w.detach().reshape(-1)
    nz = flat != 0
    codes = torch.empty(flat.shape, dtype=torch.long)
    values, codes[nz] = torch.unique(flat[nz], return_inverse=True)
    codes[~nz] = len(values)
    return values, codes.view_as(w)


def tune_shared_(module: nn.Module, shared: dict[str, tuple[torch.Tensor, torch.Tensor]], data: DataSet,
                 epochs: int, **train_options) -> None:
    """Fine-tune the centroids of the layers in `shared` ({layer name: (centroids, codes)}) in place; the
    other parameters (biases, BatchNorm) train with them. Needs an nn.Module whose layers own their weights."""
    for name, (centroids, codes) in shared.items():
        layer = module.get_submodule(name)
        parametrize.register_parametrization(layer, "weight", SharedWeight(centroids, codes))
        layer.parametrizations.weight.original.requires_grad_(False)
    train_(module, data.train, data.val, epochs=epochs, **train_options)
    for name in shared:
        parametrize.remove_parametrizations(module.get_submodule(name), "weight", leave_parametrized=True)
