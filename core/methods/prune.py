"""Pruning: unstructured (zeros in place) and structured (channels physically removed).

Unstructured pruning zeroes the least important weights of every Conv/Linear layer, either
ranked across the whole model ("global") or within each layer ("layer"); the count
removed is exact. Importance is the weight's magnitude |w|, or its first-order Taylor
score |w * dL/dw| summed over training batches (Molchanov et al. 2017): what removing the
weight would change the loss by, so rarely-used connections go first. Dense kernels
still multiply those zeros, so it shrinks compressed files, not latency. Structured pruning removes whole channels / neurons ranked by
their L1 or L2 norm (or Torch-Pruning's group Taylor / Hessian importance, from gradients on
training batches), using Torch-Pruning's dependency graph so residual adds,
concatenations, depthwise convs and squeeze-excite blocks stay consistent; the
model gets physically smaller and faster. Both may fine-tune, and both can prune
gradually: k steps of a cubic schedule with fine-tuning between.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn as nn

from core.inputs.data import DataSet
from core.inputs.models import GraphModel, LoadedModel, unwrap
from core.inputs.train import Progress, accuracy, recalibrate_bn_, train_
from core.methods.registry import SpecError, check_budget, needs_architecture, register

# str enums in one line each: the values are what sweep files and the JSON of a Spec spell
Scope = enum.Enum("Scope", [("GLOBAL", "global"), ("LAYER", "layer"), ("STD", "std")], type=str)
Importance = enum.Enum("Importance", [("L1", "l1"), ("L2", "l2"), ("TAYLOR", "taylor"), ("HESSIAN", "hessian")],
                       type=str)
WeightImportance = enum.Enum("WeightImportance", [("MAGNITUDE", "magnitude"), ("TAYLOR", "taylor")], type=str)
GRADIENT_BATCHES = 16     # training batches (of 64) whose gradients score the weights for Taylor / Hessian importance
HESSIAN_SAMPLES = 64      # per-sample gradients Torch-Pruning's Hessian importance accumulates (one backward each)


@dataclass(frozen=True)
class _Pruning:
    """What both kinds share: how much, and the fine-tuning that follows (split over `steps`)."""
    ratio: float = 0.5              # fraction of weights (unstructured) or channels (structured) removed
    finetune_epochs: int = 0        # total fine-tuning budget, split over the steps
    steps: int = 1                  # gradual pruning: cubic schedule in `steps` steps
    lr: float = 5e-4
    seed: int = 0
    samples_per_epoch: int | None = None  # fine-tuning budget on big data: images per epoch (None: all)
    patience: int | None = None           # stop fine-tuning after this many epochs without a better val score
    weight_decay: float = 0.0             # L2 during fine-tuning (Deep Compression retrains with it)
    augment_shift: int = 0                # fine-tune on images shifted by up to this many pixels (as samples train)

    def __post_init__(self):
        check_budget(self.samples_per_epoch, self.patience)
        if not 0 <= self.weight_decay < 1:
            raise SpecError(f"weight_decay must be in [0, 1), got {self.weight_decay}.")
        if self.augment_shift not in range(0, 9):
            raise SpecError(f"augment_shift must be a whole number of pixels from 0 to 8, got {self.augment_shift!r}.")
        if not 0.0 <= self.ratio < 1.0 or self.ratio > 0.99:
            raise SpecError(f"A pruning ratio must be in [0, 0.99], got {self.ratio}.")
        if self.finetune_epochs < 0:
            raise SpecError(f"finetune_epochs must be 0 or more, got {self.finetune_epochs}.")
        if self.steps < 1:
            raise SpecError(f"Pruning needs at least 1 step, got {self.steps}.")
        if self.lr <= 0:
            raise SpecError(f"The fine-tuning learning rate must be positive, got {self.lr}.")

    def _tuning(self) -> str:
        """', 2 ep fine-tuning in 2 steps' or ''."""
        text = f", {self.finetune_epochs} ep fine-tuning" if self.finetune_epochs else ""
        text += f" (L2 {self.weight_decay:g})" if self.finetune_epochs and self.weight_decay else ""
        text += f" on images shifted ±{self.augment_shift} px" if self.finetune_epochs and self.augment_shift else ""
        return text + (f" in {self.steps} steps" if self.steps > 1 else "")


@dataclass(frozen=True)
class UnstructuredPrune(_Pruning):
    # global: rank |w| across the model; layer: the same ratio in every layer; std: one threshold per layer,
    # a quality factor times the layer's weight std (Han et al. 2015), the factor set so `ratio` is removed
    scope: Scope = Scope.GLOBAL
    importance: WeightImportance = WeightImportance.MAGNITUDE  # or taylor: |w * dL/dw| over training batches
    layer_ratios: tuple = ()  # ((layer, ratio), ...): each named layer pruned at its own ratio, the rest at `ratio`

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "scope", Scope(self.scope))
        object.__setattr__(self, "importance", WeightImportance(self.importance))
        object.__setattr__(self, "layer_ratios", per_layer(self.layer_ratios, "layer_ratios", _check_ratio))
        if self.scope is Scope.STD and self.importance is not WeightImportance.MAGNITUDE:
            raise SpecError("The std scope sets thresholds on weight magnitudes; use it with magnitude importance.")

    def ratio_of(self, layer: str) -> float:
        return dict(self.layer_ratios).get(layer, self.ratio)

    @property
    def label(self) -> str:
        scope = "per-layer thresholds ∝ std" if self.scope is Scope.STD else self.scope.value
        how = ", Taylor" if self.importance is WeightImportance.TAYLOR else ""
        if self.layer_ratios:
            rest = f", others {100 * self.ratio:.4g} %" if self.ratio else ""
            return (f"prune per layer ({per_layer_label(self.layer_ratios, lambda r: f'{100 * r:.4g} %')}{rest}; "
                    f"unstructured{how}{self._tuning()})")
        return f"prune {100 * self.ratio:.4g} % of weights (unstructured, {scope}{how}{self._tuning()})"


def _check_ratio(r) -> None:
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 0.99:
        raise SpecError(f"A layer's pruning ratio must be in [0, 0.99], got {r!r}.")


def per_layer(value, name: str, check) -> tuple:
    """((layer, value), ...) from a mapping or pairs (JSON gives lists), each value checked: per-layer settings."""
    pairs = value.items() if isinstance(value, dict) else value
    try:
        pairs = tuple((str(n), v) for n, v in pairs)
    except (TypeError, ValueError):
        raise SpecError(f"{name} must map layer names to values, e.g. {{'fc1': ...}}, got {value!r}.") from None
    for _, v in pairs:
        check(v)
    return pairs


def per_layer_label(pairs: tuple, fmt, shown: int = 4) -> str:
    """'fc1 90 %, fc2 75 %, ... (21 layers)': what a person reads of per-layer settings."""
    text = ", ".join(f"{n} {fmt(v)}" for n, v in pairs[:shown])
    return text + (f", ... ({len(pairs)} layers)" if len(pairs) > shown else "")


def check_layers(module: nn.Module, pairs: tuple, what: str) -> tuple:
    """One sentence for a per-layer setting that names no layer of the model; else the pairs in the model's names
    (a .pt2 layer spelt as edgetrim once named it, 'graph.fc1', is 'fc1', as its TorchScript names it)."""
    names = prunable_names(module)
    if isinstance(module, GraphModel):
        pairs = tuple((n if n in names else n.removeprefix("graph."), v) for n, v in pairs)
    bad = [n for n, _ in pairs if n not in names]
    if bad:
        raise SpecError(f"{what} names {bad[0]!r}, which is not a weight layer of this model; its layers are "
                        f"{', '.join(names)}.")
    return pairs


def layers_named(field: str, *first) -> Callable:
    """A method's check (core.methods.registry): the `first` checks, then that the layers its per-layer `field`
    names are the model's, so a misspelt layer is said before any work."""
    def check(model, config) -> str | None:
        reason = next((r for r in (c(model, config) for c in first) if r), None)
        if reason:
            return reason
        try:
            check_layers(model.module, getattr(config, field), field)
        except SpecError as e:
            return str(e)
        return None
    return check


@dataclass(frozen=True)
class StructuredPrune(_Pruning):
    importance: Importance = Importance.L2  # channels ranked by the L1 / L2 norm of their weights, or by gradients
    layer_ratios: tuple = ()  # ((layer, ratio), ...): a share of each named layer's channels, the rest at `ratio`

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "importance", Importance(self.importance))
        object.__setattr__(self, "layer_ratios", per_layer(self.layer_ratios, "layer_ratios", _check_ratio))

    @property
    def label(self) -> str:
        how = {"l1": "L1", "l2": "L2", "taylor": "Taylor", "hessian": "Hessian"}[self.importance.value]
        if self.layer_ratios:
            rest = f", others {100 * self.ratio:.4g} %" if self.ratio else ""
            return (f"prune channels per layer ({per_layer_label(self.layer_ratios, lambda r: f'{100 * r:.4g} %')}"
                    f"{rest}; structured, {how}{self._tuning()})")
        return f"prune {100 * self.ratio:.4g} % of channels (structured, {how}{self._tuning()})"


def schedule(ratio: float, steps: int) -> list[float]:
    """Cumulative target ratios of the cubic schedule (Zhu & Gupta 2017); the last is `ratio`."""
    return [ratio * (1 - (1 - i / steps) ** 3) for i in range(1, steps + 1)]


def prunable_weights(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(layer name, weight) of every weight matrix or kernel: parameters named '...weight' with 2+ dims.

    Read off the parameters, not the module types, so TorchScript and torch.export graphs
    (whose layers are not nn.Linear / nn.Conv2d objects) are pruned and quantized like the rest,
    under the same names (a .pt2's without its wrapper's 'graph.').
    """
    return [(n.removesuffix(".weight"), p) for n, p in unwrap(module).named_parameters()
            if (n == "weight" or n.endswith(".weight")) and p.ndim >= 2]


def prunable_names(module: nn.Module) -> list[str]:
    return [n for n, _ in prunable_weights(module)]


def sparsity(module: nn.Module) -> float:
    """Zero fraction over the prunable weights."""
    ws = [w for _, w in prunable_weights(module)]
    return sum(int((w == 0).sum()) for w in ws) / max(1, sum(w.numel() for w in ws))


def gradient_batches(split, batches: int = GRADIENT_BATCHES):
    """(images, labels) of the first `batches` training batches of 64: what gradient-based importance reads."""
    return zip(split.batches(64, stop=64 * batches), split.y[:64 * batches].split(64))


def taylor_scores(module: nn.Module, split, batches: int = GRADIENT_BATCHES) -> dict[str, torch.Tensor]:
    """{layer: |w * dL/dw|} summed over the first `batches` training batches of 64 (first-order Taylor: how much
    the loss would change without each weight). The module's mode and gradients are left as they were."""
    weights = dict(prunable_weights(module))
    scores = {n: torch.zeros_like(w) for n, w in weights.items()}
    was_training = module.training
    module.eval()  # BatchNorm statistics and dropout as the model runs; gradients flow all the same
    try:
        for x, y in gradient_batches(split, batches):
            module.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(module(x), y).backward()
            with torch.no_grad():
                for n, w in weights.items():
                    if w.grad is not None:
                        scores[n] += (w * w.grad).abs()
    finally:
        module.zero_grad(set_to_none=True)
        module.train(was_training)
    return scores


@torch.no_grad()
def magnitude_prune_(module: nn.Module, ratio: float, scope: Scope | str = Scope.GLOBAL,
                     layers: list[str] | None = None, scores: dict[str, torch.Tensor] | None = None) -> None:
    """Zero exactly round(ratio * n) of the least important weights (globally, or per layer). In place.
    Importance is |w|, or `scores` per layer (e.g. `taylor_scores`) when given."""
    weights = [(n, w) for n, w in prunable_weights(module) if layers is None or n in layers]
    rank = {n: (scores[n] if scores is not None else w.detach().abs()) for n, w in weights}
    if Scope(scope) is Scope.LAYER:
        for n, w in weights:
            _zero_least_(w.view(-1), rank[n].reshape(-1), round(ratio * w.numel()))
        return
    # global ranks |w|; std ranks |w| / std(layer), i.e. thresholds of q x each layer's std for one q
    scale = [w.detach().std().clamp_min(1e-12) if Scope(scope) is Scope.STD else 1.0 for _, w in weights]
    flat = torch.cat([rank[n].flatten() / s for (n, _), s in zip(weights, scale)])
    k = round(ratio * flat.numel())
    if k == 0:
        return
    order = torch.argsort(flat, stable=True)[:k]
    mask = torch.ones_like(flat, dtype=torch.bool)
    mask[order] = False
    start = 0
    for _, w in weights:
        w.mul_(mask[start:start + w.numel()].view_as(w))
        start += w.numel()


def _zero_least_(flat: torch.Tensor, rank: torch.Tensor, k: int) -> None:
    if k > 0:
        flat[torch.argsort(rank, stable=True)[:k]] = 0


def keep_zeros(module: nn.Module):
    """An `after_step` hook that holds every currently-zero weight at zero while training."""
    masks = [(w, w.detach() != 0) for _, w in prunable_weights(module) if (w == 0).any()]

    @torch.no_grad()
    def hook(_model: nn.Module) -> None:
        for i, (w, m) in enumerate(masks):
            if m.device != w.device:  # training moved the model to a GPU: the mask follows, once
                masks[i] = (w, m := m.to(w.device))
            w.mul_(m)
    return hook


def _finetune_(model: LoadedModel, data: DataSet, cfg: _Pruning, epochs: int, progress: Progress | None) -> None:
    """Re-estimate BatchNorm statistics on the training split, then fine-tune for `epochs` (zeros kept)."""
    d = data.adapted(model.input_shape)
    recalibrate_bn_(model.module, d.train, images=cfg.samples_per_epoch)
    if epochs > 0:
        train_(model.module, d.train, d.val, epochs=epochs, lr=cfg.lr, seed=cfg.seed, progress=progress,
               samples_per_epoch=cfg.samples_per_epoch, patience=cfg.patience, weight_decay=cfg.weight_decay,
               augment_shift=cfg.augment_shift, after_step=keep_zeros(model.module))


def _epochs_per_step(total: int, steps: int) -> list[int]:
    return [total // steps + (1 if i < total % steps else 0) for i in range(steps)]


@register(UnstructuredPrune, check=layers_named("layer_ratios"))
def unstructured(model: LoadedModel, cfg: UnstructuredPrune, data: DataSet,
                 progress: Progress | None = None) -> LoadedModel:
    out = model.derive(model.copy_module())
    train = data.adapted(model.input_shape).train
    cfg = replace(cfg, layer_ratios=check_layers(out.module, cfg.layer_ratios, "layer_ratios"))
    for share, epochs in zip(schedule(1.0, cfg.steps), _epochs_per_step(cfg.finetune_epochs, cfg.steps)):
        scores = taylor_scores(out.module, train) if cfg.importance is WeightImportance.TAYLOR else None
        if cfg.layer_ratios:  # each layer at its own ratio (the same share of it at each gradual step)
            for name, _ in prunable_weights(out.module):
                magnitude_prune_(out.module, share * cfg.ratio_of(name), Scope.LAYER, layers=[name], scores=scores)
        else:
            magnitude_prune_(out.module, share * cfg.ratio, cfg.scope, scores=scores)
        _finetune_(out, data, cfg, epochs, progress)
    return out


def _classifier_layers(module: nn.Module, num_classes: int) -> list[nn.Module]:
    """Layers whose outputs are the class scores: never pruned."""
    return [m for m in module.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]


def classifier_layer_names(module: nn.Module, num_classes: int) -> list[str]:
    """The names of the layers structured pruning never touches (their outputs are the classes)."""
    keep = _classifier_layers(module, num_classes)
    return [n for n, m in module.named_modules() if m in keep]


@register(StructuredPrune, check=layers_named("layer_ratios", needs_architecture("structured pruning")))
def structured(model: LoadedModel, cfg: StructuredPrune, data: DataSet,
               progress: Progress | None = None) -> LoadedModel:
    import torch_pruning as tp

    out = model.derive(model.copy_module())
    check_layers(out.module, cfg.layer_ratios, "layer_ratios")
    if cfg.ratio == 0 and not any(r for _, r in cfg.layer_ratios):
        return out
    classifier = _classifier_layers(out.module, model.num_classes)
    modules = dict(out.module.named_modules())
    if any(modules[n] in classifier and r for n, r in cfg.layer_ratios):
        raise SpecError("The classifier's outputs are the classes: it is never pruned; leave it out of layer_ratios.")
    importance = {Importance.TAYLOR: tp.importance.GroupTaylorImportance,
                  Importance.HESSIAN: tp.importance.GroupHessianImportance}.get(cfg.importance)
    importance = importance() if importance else tp.importance.MagnitudeImportance(
        p=1 if cfg.importance is Importance.L1 else 2)
    train = data.adapted(model.input_shape).train
    pruner = tp.pruner.MagnitudePruner(
        out.module, model.example_input(1), importance=importance, pruning_ratio=cfg.ratio,
        iterative_steps=cfg.steps, ignored_layers=classifier,
        pruning_ratio_dict={modules[n]: r for n, r in cfg.layer_ratios if modules[n] not in classifier} or None,
        iterative_pruning_ratio_scheduler=lambda r, n: [0.0, *schedule(r, n)])
    for epochs in _epochs_per_step(cfg.finetune_epochs, cfg.steps):
        _gradients_for_(importance, out.module, train)
        pruner.step()
        _finetune_(out, data, cfg, epochs, progress)
    out.module.eval()
    out.module.zero_grad(set_to_none=True)
    return out


def _gradients_for_(importance, module: nn.Module, train) -> None:
    """Leave in `module` the gradients Torch-Pruning's Taylor importance reads (the loss summed over training
    batches), or accumulate the per-sample gradients its Hessian importance needs; nothing for magnitudes."""
    import torch_pruning as tp

    if not isinstance(importance, (tp.importance.GroupTaylorImportance, tp.importance.GroupHessianImportance)):
        return
    module.eval()
    module.zero_grad(set_to_none=True)
    if isinstance(importance, tp.importance.GroupHessianImportance):
        importance.zero_grad()
        x, y = train.batch(slice(0, HESSIAN_SAMPLES)), train.y[:HESSIAN_SAMPLES]
        losses = nn.functional.cross_entropy(module(x), y, reduction="none")
        for loss in losses:
            module.zero_grad(set_to_none=True)
            loss.backward(retain_graph=True)
            importance.accumulate_grad(module)
        return
    for x, y in gradient_batches(train):
        nn.functional.cross_entropy(module(x), y).backward()


def sensitivity(model: LoadedModel, data: DataSet, ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9),
                split: str = "val", progress: Progress | None = None) -> list[dict]:
    """Accuracy after magnitude-pruning each layer alone at each ratio (no fine-tuning).

    Reported on the validation split by default, so that choosing per-layer ratios
    from it does not tune on the test set.
    """
    d = getattr(data.adapted(model.input_shape), split)
    names = prunable_names(model.module)
    rows = [{"layer": "(none)", "ratio": 0.0, "accuracy": accuracy(model.module, d)}]
    total, done = len(names) * len(ratios), 0
    for name in names:
        for r in ratios:
            m = model.copy_module()
            magnitude_prune_(m, r, Scope.LAYER, layers=[name])
            rows.append({"layer": name, "ratio": r, "accuracy": accuracy(m, d)})
            done += 1
            if progress:
                progress(done, total, f"{name} at {r:.0%}")
    return rows
