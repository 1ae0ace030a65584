"""Soft weight-sharing (Ullrich, Meeds & Welling 2017): prune and quantize in one retraining.

The trained network is retrained under a Gaussian-mixture prior over its weights: one
component pinned at zero with a fixed large share (pruning), `components` others whose
means, precisions and shares are learned with the weights (quantization). The prior's
negative log-likelihood, scaled by tau / training-set size, is added to the data loss;
Gamma hyperpriors keep precisions from collapsing. Afterwards every weight is set to the
mean of the component most responsible for it (zero for the zero component), so each
layer holds at most `components` distinct non-zero values and many exact zeros, which the
compact archive stores as relative indices and Huffman-coded codes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from core.inputs.data import DataSet
from core.inputs.models import LoadedModel
from core.inputs.train import Progress, recalibrate_bn_, train_
from core.methods.prune import prunable_weights
from core.methods.registry import SpecError, check_budget, needs_architecture, register
from core.methods.shared import codes_of, tune_shared_

# The paper's settings (Sec. 6.1): learning rates per parameter kind, Gamma(alpha, beta) hyperpriors on precisions
MEAN_LR, PRECISION_LR, SHARE_LR = 1e-4, 3e-3, 3e-3
ZERO_GAMMA, OTHER_GAMMA = (5000.0, 2.0), (250.0, 0.1)
BATCH = 256
# Starting widths: the zero component a quarter of the weights' std, the others 1/16 of the gap between
# neighbouring means, so weights cluster within minutes of retraining (the paper retrains for hours)
ZERO_WIDTH, INIT_WIDTH_DIV = 0.25, 16


@dataclass(frozen=True)
class SoftShare:
    components: int = 16          # non-zero mixture components (plus the one fixed at zero)
    tau: float = 5e-3             # weight of the prior against the data
    epochs: int = 10
    lr: float = 5e-4              # the network's weights (Adam)
    zero_share: float = 0.99      # prior share of the zero component, fixed
    seed: int = 0
    samples_per_epoch: int | None = None
    augment_shift: int = 0        # retrain on images shifted by up to this many pixels
    tune_epochs: int = 0          # after the snap: the component means fine-tuned, assignments fixed

    def __post_init__(self):
        check_budget(self.samples_per_epoch, None)
        if self.augment_shift not in range(0, 9):
            raise SpecError(f"augment_shift must be a whole number of pixels from 0 to 8, got {self.augment_shift!r}.")
        if not isinstance(self.components, int) or not 2 <= self.components <= 256:
            raise SpecError(f"components must be a whole number from 2 to 256, got {self.components!r}.")
        if not self.tau > 0:
            raise SpecError(f"tau must be positive, got {self.tau}.")
        if self.epochs < 1:
            raise SpecError(f"Soft weight-sharing retrains: epochs must be at least 1, got {self.epochs}.")
        if self.tune_epochs < 0:
            raise SpecError(f"tune_epochs must be 0 or more, got {self.tune_epochs}.")
        if not 0 < self.zero_share < 1:
            raise SpecError(f"zero_share must be between 0 and 1, got {self.zero_share}.")

    @property
    def label(self) -> str:
        tuned = f", means tuned {self.tune_epochs} ep" if self.tune_epochs else ""
        return (f"soft weight-sharing ({self.components} + zero components, tau {self.tau:g}, "
                f"{self.epochs} ep retraining{tuned})")


class MixturePrior(nn.Module):
    """A Gaussian mixture over all weights; component 0 sits at zero with share `zero_share`."""

    def __init__(self, weights: torch.Tensor, components: int, zero_share: float):
        super().__init__()
        lo, hi = float(weights.min()), float(weights.max())
        self.means = nn.Parameter(torch.linspace(lo, hi, components))
        width = (hi - lo) / (components - 1) / INIT_WIDTH_DIV
        zero_width = float(weights.std()) * ZERO_WIDTH
        self.log_precisions = nn.Parameter(-2 * torch.log(torch.tensor([zero_width] + [width] * components)))
        self.share_logits = nn.Parameter(torch.zeros(components))
        self.log_zero_share = math.log(zero_share)
        self.log_other = math.log1p(-zero_share)

    def all_means(self) -> torch.Tensor:
        return torch.cat([self.means.new_zeros(1), self.means])

    def log_shares(self) -> torch.Tensor:
        return torch.cat([self.means.new_full((1,), self.log_zero_share),
                          self.log_other + torch.log_softmax(self.share_logits, 0)])

    def log_joint(self, w: torch.Tensor) -> torch.Tensor:
        """log(share_j * N(w_i | mean_j, 1 / precision_j)), weights x components."""
        lam = self.log_precisions.exp()
        return (self.log_shares() + 0.5 * (self.log_precisions - math.log(2 * math.pi))
                - 0.5 * lam * (w[:, None] - self.all_means()) ** 2)

    def nll(self, w: torch.Tensor) -> torch.Tensor:
        """-log p(w) - log p(precisions): the prior's negative log-likelihood with its Gamma hyperpriors."""
        lam = self.log_precisions.exp()
        alpha = lam.new_tensor([ZERO_GAMMA[0]] + [OTHER_GAMMA[0]] * (len(lam) - 1))
        beta = lam.new_tensor([ZERO_GAMMA[1]] + [OTHER_GAMMA[1]] * (len(lam) - 1))
        hyper = ((alpha - 1) * self.log_precisions - beta * lam).sum()
        return -torch.logsumexp(self.log_joint(w), dim=1).sum() - hyper

    @torch.no_grad()
    def snap(self, w: torch.Tensor) -> torch.Tensor:
        """Each weight set to the mean of its most responsible component (0 for the zero component)."""
        return self.all_means()[self.log_joint(w).argmax(1)]


@register(SoftShare, check=needs_architecture("tuning the shared means", when=lambda cfg: cfg.tune_epochs > 0))
def soft_share(model: LoadedModel, cfg: SoftShare, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    module = model.copy_module()
    d = data.adapted(model.input_shape)
    weights = [w for _, w in prunable_weights(module)]
    prior = MixturePrior(torch.cat([w.detach().flatten() for w in weights]), cfg.components, cfg.zero_share)
    n = len(d.train)

    def penalty() -> torch.Tensor:
        return cfg.tau * prior.nll(torch.cat([w.flatten() for w in weights])) / n

    groups = [{"params": [prior.means], "lr": MEAN_LR}, {"params": [prior.log_precisions], "lr": PRECISION_LR},
              {"params": [prior.share_logits], "lr": SHARE_LR}]
    train_(module, d.train, d.val, epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed, batch_size=BATCH, progress=progress,
           samples_per_epoch=cfg.samples_per_epoch, augment_shift=cfg.augment_shift, penalty=penalty,
           extra_params=groups, keep_best=False)
    with torch.no_grad():
        for w in weights:
            w.copy_(prior.snap(w.detach().flatten()).view_as(w))
    if cfg.tune_epochs:
        shared = {name: codes_of(w) for name, w in prunable_weights(module)}
        tune_shared_(module, shared, d, epochs=cfg.tune_epochs, lr=MEAN_LR, seed=cfg.seed, progress=progress,
                     samples_per_epoch=cfg.samples_per_epoch, augment_shift=cfg.augment_shift)
    recalibrate_bn_(module, d.train, images=cfg.samples_per_epoch)
    return model.derive(module)
