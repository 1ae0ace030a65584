"""Trained quantization (Deep Compression, Sec. 3.3): fine-tune a layer's shared values, its codes fixed.

`share_values` clusters a layer's non-zero weights into 2^bits values (1-D k-means). Then each weight matrix /
kernel becomes a parametrization that looks its values up in the
layer's centroids by fixed codes (pruned zeros keep a code that always reads 0), so autograd
gives each centroid the sum of its weights' gradients. Used by k-means weight sharing
(core.methods.quantize.WeightShare), after soft weight-sharing's snap (core.methods.soft_share) and after variational
dropout's pruning (core.methods.variational).
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


def share_values(w: torch.Tensor, bits: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids, codes) of one weight tensor's non-zeros; pruned zeros get code len(centroids)."""
    flat = w.detach().reshape(-1)
    nz = flat != 0
    codes = torch.full(flat.shape, -1, dtype=torch.long)
    if int(nz.sum()) <= 2 ** bits:
        centroids, codes[nz] = torch.unique(flat[nz], return_inverse=True)
    else:
        centroids, codes[nz] = kmeans_1d(flat[nz], 2 ** bits, iterations)
    codes[~nz] = len(centroids)
    return centroids, codes.view_as(w)


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
