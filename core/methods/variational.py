"""Variational dropout that sparsifies (Molchanov et al. 2017) and Bayesian compression (Louizos et al. 2017).

Every Conv2d / Linear weight gets a learned noise variance sigma^2 beside its value theta; the
dropout rate alpha = sigma^2 / theta^2 is the weight's own. Training maximises the ELBO: the data
loss plus the KL to a log-uniform prior (Molchanov's approximation), divided by the training-set
size, with the local reparameterisation trick (the noise is drawn on each output, not each
weight). Weights whose log alpha ends above `threshold` (3: dropped more than 95 % of the time)
carry no signal and are pruned. With `groups="units"` each output unit / channel (not the
classifier's) also gets a multiplicative scale z under a group log-uniform prior (Louizos's group
normal-Jeffreys), so whole units go and are removed from the model, which shrinks every file.
Then each layer's surviving weights are shared (k-means, centroids fine-tuned: Deep Compression's
trained quantization) at `bits`, or at a width read from the posterior (`bits=0`): the coarser the
layer's posterior, the fewer bits it needs.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.inputs.data import DataSet
from core.inputs.models import LoadedModel
from core.inputs.train import Progress, recalibrate_bn_, train_
from core.methods.prune import keep_zeros
from core.methods.registry import SpecError, check_budget, needs_architecture, register
from core.methods.shared import share_values, tune_shared_

Groups = enum.Enum("Groups", [("WEIGHTS", "weights"), ("UNITS", "units")], type=str)
K1, K2, K3 = 0.63576, 1.87320, 1.48695   # Molchanov et al. 2017, eq. 14: -KL(alpha) ~ k1 s(k2 + k3 log a) - ...
LOG_SIGMA2_INIT = -10.0  # the papers' start; log alpha is left unclipped (a clip freezes a fresh unit scale at -10)
MIN_BITS, MAX_BITS = 2, 8
MIN_THRESHOLD, MAX_THRESHOLD = 0.0, 10.0   # log alpha: 0 prunes weights as noisy as they are large; 3 is the papers'
BATCH = 128
SHARE_ITERATIONS, TUNE_LR = 30, 1e-4   # k-means iterations, and the shared values' fine-tuning rate (as WeightShare)


@dataclass(frozen=True)
class VariationalDropout:
    groups: Groups = Groups.WEIGHTS  # weights: sparse VD; units: whole units / channels too (group prior)
    bits: int = 4                    # shared values per layer: 2^bits; 0: each layer's width from its posterior
    epochs: int = 10                 # variational training
    lr: float = 1e-3                 # Adam, the weights
    noise_lr: float | None = None    # the variances and unit scales (None: lr); higher moves them in fewer steps
    kl_weight: float = 1.0           # 1: the ELBO; above 1 trades accuracy for sparsity
    warmup: float = 0.25             # share of the training over which the KL's weight rises from 0
    threshold: float = 3.0           # log alpha above which a weight (or unit) is pruned
    retrain_epochs: int = 0          # after pruning, before sharing: the kept weights retrained, zeros held
    tune_epochs: int = 2             # after sharing: the shared values fine-tuned, codes fixed
    seed: int = 0
    samples_per_epoch: int | None = None
    augment_shift: int = 0

    def __post_init__(self):
        check_budget(self.samples_per_epoch, None)
        object.__setattr__(self, "groups", Groups(self.groups))
        if self.bits != 0 and not (isinstance(self.bits, int) and MIN_BITS <= self.bits <= MAX_BITS):
            raise SpecError(f"bits must be 0 (from the posterior) or a width from {MIN_BITS} to {MAX_BITS}, "
                            f"got {self.bits!r}.")
        if self.epochs < 1:
            raise SpecError(f"Variational dropout trains: epochs must be at least 1, got {self.epochs}.")
        if self.noise_lr is not None and not self.noise_lr > 0:
            raise SpecError(f"noise_lr must be positive (or null: lr), got {self.noise_lr}.")
        if not self.kl_weight > 0:
            raise SpecError(f"kl_weight must be positive, got {self.kl_weight}.")
        if not 0 <= self.warmup <= 1:
            raise SpecError(f"warmup is a share of the training, from 0 to 1, got {self.warmup}.")
        if self.tune_epochs < 0 or self.retrain_epochs < 0:
            raise SpecError(f"retrain_epochs and tune_epochs must be 0 or more, got {self.retrain_epochs} and "
                            f"{self.tune_epochs}.")
        if not MIN_THRESHOLD <= self.threshold <= MAX_THRESHOLD:
            raise SpecError(f"threshold is the log alpha above which a weight is pruned, from {MIN_THRESHOLD:g} to "
                            f"{MAX_THRESHOLD:g} (the paper's: 3), got {self.threshold}.")
        if self.augment_shift not in range(0, 9):
            raise SpecError(f"augment_shift must be a whole number of pixels from 0 to 8, got {self.augment_shift!r}.")

    @property
    def label(self) -> str:
        what = "Bayesian compression (units and weights" if self.groups is Groups.UNITS else "sparse VD (weights"
        width = "widths from the posterior" if self.bits == 0 else f"{self.bits}-bit shared values"
        d = {f.name: f.default for f in dataclasses.fields(self)}
        extra = [text for name, text in (("kl_weight", f"KL x{self.kl_weight:g}"), ("lr", f"lr {self.lr:g}"),
                                         ("noise_lr", f"noise lr {self.noise_lr:g}" if self.noise_lr else ""),
                                         ("warmup", f"warm-up {self.warmup:g}"),
                                         ("threshold", f"pruned at log alpha > {self.threshold:g}"),
                                         ("retrain_epochs", f"{self.retrain_epochs} ep retraining"),
                                         ("tune_epochs", f"values tuned {self.tune_epochs} ep"))
                 if getattr(self, name) != d[name]]
        return f"{what}, {', '.join([f'{self.epochs} ep', *extra])}) → {width}"


class _Noisy:
    """One layer's variational state: log sigma^2 per weight, and per output unit a scale z when grouped."""

    def __init__(self, name: str, layer: nn.Module, grouped: bool, threshold: float):
        self.name, self.layer, self.threshold = name, layer, threshold
        w = layer.weight
        self.log_sigma2 = nn.Parameter(torch.full_like(w.detach(), LOG_SIGMA2_INIT))
        units = w.shape[0]
        self.z_mu = nn.Parameter(torch.ones(units)) if grouped else None
        self.z_log_sigma2 = nn.Parameter(torch.full((units,), LOG_SIGMA2_INIT)) if grouped else None

    def params(self) -> list[nn.Parameter]:
        return [p for p in (self.log_sigma2, self.z_mu, self.z_log_sigma2) if p is not None]

    def log_alpha(self) -> torch.Tensor:
        return self.log_sigma2 - torch.log(self.layer.weight ** 2 + 1e-16)

    def z_log_alpha(self) -> torch.Tensor:
        return self.z_log_sigma2 - torch.log(self.z_mu ** 2 + 1e-16)

    def kl(self) -> torch.Tensor:
        out = _kl(self.log_alpha()).sum()
        return out + _kl(self.z_log_alpha()).sum() if self.z_mu is not None else out

    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        layer = self.layer
        return F.linear(x, w, b) if isinstance(layer, nn.Linear) else layer._conv_forward(x, w, b)

    def _per_unit(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return v.view(*v.shape[:2], *([1] * (out.ndim - 2))) if v.ndim == 2 else v.view(1, -1, *([1] * (out.ndim - 2)))

    def hook(self, layer: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        """The layer's output under the posterior: noisy while training, the pruned means otherwise."""
        x = args[0]
        if layer.training:
            var = self._op(x * x, self.log_sigma2.exp(), None)
            out = out + var.clamp_min(1e-16).sqrt() * torch.randn_like(out)
            if self.z_mu is not None:  # z drawn per example and unit (local reparameterisation)
                eps = torch.randn(out.shape[0], len(self.z_mu), device=out.device, dtype=out.dtype)
                out = out * self._per_unit(self.z_mu + (0.5 * self.z_log_sigma2).exp() * eps, out)
            return out
        with torch.no_grad():
            out = self._op(x, layer.weight * self.keep(), layer.bias)
            return out * self._per_unit(self.unit_scale(), out) if self.z_mu is not None else out

    @torch.no_grad()
    def keep(self) -> torch.Tensor:
        return (self.log_alpha() < self.threshold).to(self.layer.weight.dtype)

    @torch.no_grad()
    def unit_scale(self) -> torch.Tensor:
        """z's mean where the unit stays, 0 where it goes (a layer keeps at least its least noisy unit)."""
        log_alpha = self.z_log_alpha()
        stays = log_alpha < self.threshold
        stays[log_alpha.argmin()] = True
        return self.z_mu * stays

    @torch.no_grad()
    def posterior_variance(self) -> torch.Tensor:
        """Each weight's posterior variance (with z: of z * w, as the Bayesian compression authors' code has it)."""
        s2 = self.log_sigma2.exp()
        if self.z_mu is None:
            return s2
        shape = (-1,) + (1,) * (s2.ndim - 1)
        zm2, zs2 = self.z_mu.view(shape) ** 2, self.z_log_sigma2.exp().view(shape)
        return zm2 * s2 + zs2 * self.layer.weight ** 2 + zs2 * s2

    @torch.no_grad()
    def settle_(self) -> None:
        """The posterior's means into the layer: pruned weights (and units) at zero, z folded in."""
        w, b = self.layer.weight, self.layer.bias
        w.mul_(self.keep())
        if self.z_mu is not None:
            shape = (-1,) + (1,) * (w.ndim - 1)
            w.mul_(self.unit_scale().view(shape))
            if b is not None:
                b.mul_(self.unit_scale())


def _kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """KL(q || log-uniform prior) per weight, Molchanov et al. 2017 eq. 14 (up to a constant)."""
    return -(K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1)


def noisy_layers(module: nn.Module, num_classes: int, grouped: bool, threshold: float) -> list[_Noisy]:
    """A variational state for every Conv2d / Linear; the classifier (outputs = classes) keeps its units."""
    out = []
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            is_classifier = isinstance(layer, nn.Linear) and layer.out_features == num_classes
            out.append(_Noisy(name, layer, grouped and not is_classifier, threshold))
    if not out:
        raise SpecError("Variational dropout needs Conv2d or Linear layers; this model has none.")
    return out


def posterior_bits(weights: torch.Tensor, variance: torch.Tensor) -> int:
    """A layer's code width from its posterior (Louizos et al. 2017): each kept weight needs the bits that round it
    within its posterior spread, here over the layer's range in fixed point (2 std per step); the layer takes the
    mean of its weights' needs, rounded up (as the authors' code does for its floating-point significands), from
    MIN_BITS to MAX_BITS."""
    kept = weights != 0
    if int(kept.sum()) < 2:
        return MIN_BITS
    span = float(weights[kept].max() - weights[kept].min())
    need = torch.log2(span / (2 * variance[kept].clamp_min(1e-24).sqrt())).clamp_min(0)
    return int(min(MAX_BITS, max(MIN_BITS, math.ceil(float(need.mean())))))


def remove_dead_units_(module: nn.Module, example: torch.Tensor, layers: list[_Noisy]) -> int:
    """Units whose weights and bias are all zero removed from the model (Torch-Pruning keeps the graph
    consistent); returns how many went. A BatchNorm after such a unit still adds its shift; removing the unit
    drops that too, which the tuning and BatchNorm re-estimation after absorb."""
    import torch_pruning as tp

    graph = tp.DependencyGraph().build_dependency(module, example_inputs=example)
    gone = 0
    for n in layers:
        if n.z_mu is None:
            continue
        w, b = n.layer.weight, n.layer.bias
        dead = (w.detach().flatten(1) == 0).all(1) & ((b.detach() == 0) if b is not None else True)
        idxs = dead.nonzero().flatten().tolist()
        if not idxs or len(idxs) == w.shape[0]:
            continue  # a layer with every unit dead stays (it would cut the model in two)
        fn = tp.prune_linear_out_channels if isinstance(n.layer, nn.Linear) else tp.prune_conv_out_channels
        group = graph.get_pruning_group(n.layer, fn, idxs=idxs)
        if graph.check_pruning_group(group):
            group.prune()
            gone += len(idxs)
    return gone


def sparsify(model: LoadedModel, cfg: VariationalDropout, data: DataSet,
             progress: Progress | None = None) -> tuple[LoadedModel, dict[str, int]]:
    """The variational training and pruning (and `retrain_epochs`), before any sharing: (the pruned model, each
    layer's width read from its posterior). What `bits` does after is separate, so a benchmark can share one
    trained model at several widths."""
    module = model.copy_module()
    d = data.adapted(model.input_shape)
    layers = noisy_layers(module, model.num_classes, cfg.groups is Groups.UNITS, cfg.threshold)
    hooks = [n.layer.register_forward_hook(n.hook) for n in layers]
    steps = cfg.epochs * math.ceil(min(len(d.train), cfg.samples_per_epoch or len(d.train)) / BATCH)
    done = [0]

    def penalty() -> torch.Tensor:  # the KL per training image, its weight rising over the warm-up
        done[0] += 1
        ramp = min(1.0, done[0] / max(1.0, cfg.warmup * steps)) if cfg.warmup else 1.0
        return cfg.kl_weight * ramp * sum(n.kl() for n in layers) / len(d.train)

    noise = [{"params": [p for n in layers for p in n.params()], "lr": cfg.noise_lr or cfg.lr}]

    def report(done_epochs: int, total: int, msg: str) -> None:  # each epoch: the share of weights still kept
        if progress:
            kept = sum(float(n.keep().sum()) for n in layers) / sum(n.layer.weight.numel() for n in layers)
            progress(done_epochs, total, f"{msg}, {100 * kept:.2f} % of weights kept")

    try:
        train_(module, d.train, d.val, epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed, batch_size=BATCH,
               progress=report, samples_per_epoch=cfg.samples_per_epoch, augment_shift=cfg.augment_shift,
               penalty=penalty, extra_params=noise, keep_best=False)
        variances = {n.name: n.posterior_variance() for n in layers}
        for n in layers:
            n.settle_()
        # widths read before units go: a removed unit's weights are zeros, which the rule skips anyway
        widths = {n.name: posterior_bits(n.layer.weight.detach(), variances[n.name]) for n in layers}
    finally:
        for h in hooks:
            h.remove()
    total = sum(n.layer.weight.numel() for n in layers)  # before units go: kept is of the model's own weights
    gone = remove_dead_units_(module, model.example_input(1), layers) if cfg.groups is Groups.UNITS else 0
    if progress:
        kept = sum(int((n.layer.weight != 0).sum()) for n in layers) / total
        progress(cfg.epochs, cfg.epochs, f"kept {100 * kept:.2f} % of the weights, {gone} units removed; posterior "
                 "widths " + ", ".join(f"{name} {b}" for name, b in widths.items()))
    if cfg.retrain_epochs:
        train_(module, d.train, d.val, epochs=cfg.retrain_epochs, lr=cfg.lr / 10, seed=cfg.seed, progress=progress,
               samples_per_epoch=cfg.samples_per_epoch, augment_shift=cfg.augment_shift, after_step=keep_zeros(module))
    return model.derive(module), widths


def share(model: LoadedModel, cfg: VariationalDropout, widths: dict[str, int], data: DataSet,
          progress: Progress | None = None) -> LoadedModel:
    """Each layer's kept weights shared at `cfg.bits` (0: its posterior width), the shared values then fine-tuned."""
    module = model.copy_module()
    d = data.adapted(model.input_shape)
    shared = {name: share_values(module.get_submodule(name).weight, cfg.bits or widths[name], SHARE_ITERATIONS)
              for name in widths}
    tune_shared_(module, shared, d, epochs=cfg.tune_epochs, lr=TUNE_LR, seed=cfg.seed, progress=progress,
                 samples_per_epoch=cfg.samples_per_epoch, augment_shift=cfg.augment_shift)  # 0 epochs: just shared
    recalibrate_bn_(module, d.train, images=cfg.samples_per_epoch)
    return model.derive(module)


@register(VariationalDropout, check=needs_architecture("variational dropout"))
def variational_dropout(model: LoadedModel, cfg: VariationalDropout, data: DataSet,
                        progress: Progress | None = None) -> LoadedModel:
    sparse, widths = sparsify(model, cfg, data, progress)
    return share(sparse, cfg, widths, data, progress)
