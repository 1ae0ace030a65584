"""Lottery tickets: iterative magnitude pruning (IMP) with rewinding.

Frankle & Carbin (2019): train, remove the smallest weights, reset the survivors to their
initial values and train again; repeated, this finds a sparse sub-network (the "winning
ticket") that trains to the dense network's accuracy. Frankle et al. (2020): rewinding to
an early iterate of training instead of the initialisation keeps this working on bigger
networks. Renda et al. (2020), learning-rate rewinding: keep the trained survivors and
restart the learning-rate schedule; it needs no record of the original run, so it is the
one for a user's own trained model.

Rewinding weights needs the original run. edgetrim has it for its samples: their card
holds the architecture, the recipe and the seed, and `replay` runs that training again
up to `rewind_to` of it (`sample_models/train.py` trains them the same way; replayed whole,
it gives the bundled weights again up to float rounding, which a test checks). Each round
removes the same fraction of the weights that remain (globally, by magnitude), so `rounds`
rounds end at `ratio`; each round trains `epochs` with the recipe's optimiser and schedule.
"""
from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn

from core.inputs import models as M
from core.inputs.data import DataSet
from core.inputs.models import LoadedModel
from core.inputs.train import Progress, train_
from core.methods.prune import Scope, keep_zeros, magnitude_prune_, prunable_weights
from core.methods.registry import SpecError, check_budget, register

Rewind = enum.Enum("Rewind", [("WEIGHTS", "weights"), ("LR", "lr")], type=str)
DEFAULT_LR = 1e-3  # a model without a recipe (a user's) retrains at this rate unless told


@dataclass(frozen=True)
class LotteryTicket:
    ratio: float = 0.9              # fraction of the weights removed in the end
    rounds: int = 5                 # prune-and-retrain rounds; each removes the same fraction of what remains
    rewind: Rewind = Rewind.WEIGHTS  # weights: survivors go back to an early iterate; lr: they keep their values
    rewind_to: float = 0.02         # weights: how far into the original training (0: the initialisation)
    epochs: int = 0                 # training per round; 0: the original recipe's epochs (samples only)
    lr: float | None = None         # None: the recipe's learning rate (1e-3 for a model without a recipe)
    seed: int = 0
    samples_per_epoch: int | None = None  # a smaller budget per round: images per epoch (None: all)
    patience: int | None = None

    def __post_init__(self):
        check_budget(self.samples_per_epoch, self.patience)
        if self.rewind not in {r.value for r in Rewind}:
            raise SpecError(f"rewind is weights (to an early iterate) or lr (learning-rate rewinding), "
                            f"not {self.rewind!r}.")
        object.__setattr__(self, "rewind", Rewind(self.rewind))
        if not 0 < self.ratio <= 0.99:
            raise SpecError(f"A lottery ticket's ratio (the fraction of weights removed) must be in (0, 0.99], "
                            f"got {self.ratio}.")
        if not isinstance(self.rounds, int) or not 1 <= self.rounds <= 30:
            raise SpecError(f"rounds must be a whole number from 1 to 30, got {self.rounds!r}.")
        if not 0 <= self.rewind_to < 1:
            raise SpecError(f"rewind_to is a fraction of the original training in [0, 1), got {self.rewind_to}.")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise SpecError(f"epochs (per round) must be a whole number, 0 for the recipe's, got {self.epochs!r}.")
        if self.lr is not None and self.lr <= 0:
            raise SpecError(f"The learning rate must be positive, got {self.lr}.")

    @property
    def label(self) -> str:
        how = ("learning-rate rewinding" if self.rewind is Rewind.LR else
               "rewound to the initialisation" if self.rewind_to == 0 else
               f"rewound to {100 * self.rewind_to:g} % of training")
        budget = f", {self.epochs} ep per round" if self.epochs else ""
        budget += f" of {self.samples_per_epoch:,} images" if self.epochs and self.samples_per_epoch else ""
        return f"lottery ticket: {100 * self.ratio:.4g} % of weights removed in {self.rounds} rounds ({how}{budget})"


def round_targets(ratio: float, rounds: int) -> list[float]:
    """Cumulative sparsity after each round when every round removes the same fraction of what remains."""
    return [1 - (1 - ratio) ** (i / rounds) for i in range(1, rounds + 1)]


def recipe(model: LoadedModel) -> dict | None:
    """The training recipe of a model edgetrim trained (a sample's card), or None."""
    r = model.card.get("recipe")
    return r if r and model.arch and model.card.get("data_fingerprint") else None


def why_not_ticket(model: LoadedModel, cfg: LotteryTicket) -> str | None:
    if recipe(model) is not None:
        return None
    if cfg.rewind is Rewind.WEIGHTS:
        return (f"Rewinding weights replays {model.name}'s original training, which edgetrim knows only for its "
                "samples; use rewind: lr (learning-rate rewinding) for your own trained model.")
    if not cfg.epochs:
        return f"{model.name} has no training recipe: give the ticket its epochs per round (e.g. epochs: 5)."
    return None


def _steps_per_epoch(n: int, batch: int) -> int:
    return (n + batch - 1) // batch


def replay(model: LoadedModel, data: DataSet, fraction: float | None = None) -> nn.Module:
    """The model's original training replayed from its seed and recipe, stopped `fraction` of the way in (the
    weights rewinding goes back to), or whole when None (the bundled weights again, up to float rounding)."""
    r = recipe(model)
    if data.fingerprint != model.card["data_fingerprint"]:
        raise SpecError(f"Rewinding replays {model.name}'s training on {model.card.get('data', 'its data')}; "
                        f"this run's data is {data.name}. Use rewind: lr, or the data the model was trained on.")
    d = data.adapted(model.input_shape)
    torch.manual_seed(r["seed"])
    module = M.build(model.arch, model.num_classes, model.input_shape, **model.arch_kwargs)
    steps = None if fraction is None else round(fraction * r["epochs"] * _steps_per_epoch(len(d.train),
                                                                                          r["batch_size"]))
    if steps != 0:
        train_(module, d.train, d.val, epochs=r["epochs"], lr=r["lr"], seed=r["seed"], batch_size=r["batch_size"],
               augment_shift=r.get("augment_shift", 0), stop_after=steps)
    return module.eval()


def tickets(model: LoadedModel, data: DataSet, targets: list[float], cfg: LotteryTicket,
            progress: Progress | None = None) -> Iterator[tuple[float, LoadedModel]]:
    """(sparsity, ticket) after each round of IMP, one per target in `targets` (increasing)."""
    r = recipe(model) or {}
    d = data.adapted(model.input_shape)
    start = replay(model, data, cfg.rewind_to).state_dict() if cfg.rewind is Rewind.WEIGHTS else None
    trained = model.copy_module()
    for i, target in enumerate(targets):
        magnitude_prune_(trained, target, Scope.GLOBAL)  # the trained survivors' magnitudes decide
        net = trained
        if start is not None:
            masks = {n: w.detach() != 0 for n, w in prunable_weights(trained)}
            net.load_state_dict(start)
            with torch.no_grad():
                for n, w in prunable_weights(net):
                    w.mul_(masks[n])
        say = (lambda done, total, msg: progress(done, total, f"round {i + 1}/{len(targets)}: {msg}")) if progress else None
        train_(net, d.train, d.val, epochs=cfg.epochs or r["epochs"], lr=cfg.lr or r.get("lr", DEFAULT_LR),
               seed=cfg.seed + i, batch_size=r.get("batch_size", 64), augment_shift=r.get("augment_shift", 0),
               samples_per_epoch=cfg.samples_per_epoch, patience=cfg.patience, after_step=keep_zeros(net),
               progress=say)
        trained = net
        yield target, model.derive(_copy(net))


def _copy(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        return copy.deepcopy(module).eval()


@register(LotteryTicket, check=why_not_ticket)
def lottery_ticket(model: LoadedModel, cfg: LotteryTicket, data: DataSet,
                   progress: Progress | None = None) -> LoadedModel:
    """The ticket after the last round."""
    *_, (_, ticket) = tickets(model, data, round_targets(cfg.ratio, cfg.rounds), cfg, progress)
    return ticket
