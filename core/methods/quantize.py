"""Quantization of weights: k-bit rounding (optionally with QAT) and k-means weight sharing.

`WeightQuant` rounds every weight matrix / kernel to 2-8 bit levels (per channel or per
tensor, symmetric or affine; optionally after quantization-aware training with a
straight-through estimator) and `WeightShare` clusters each layer's weights into 2^k
shared values (k-means, linear init, as in Deep Compression). Both work on every model
kind edgetrim loads (nn.Module, TorchScript, torch.export), because they change the
parameters themselves. Accuracy is that of the rounded weights; the compact archive
(core.runtimes.archive) stores them as packed k-bit codes. The file formats a point ships as
(int8, fp16 ONNX) are core.methods.deploy's, a separate step of the Spec.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

from core.inputs.data import DataSet
from core.inputs.models import LoadedModel
from core.inputs.train import Progress, recalibrate_bn_, train_
from core.methods.prune import check_layers, layers_named, per_layer, per_layer_label, prunable_weights
from core.methods.registry import SpecError, check_budget, needs_architecture, register
from core.methods.shared import share_values, tune_shared_

Granularity = enum.Enum("Granularity", [("PER_CHANNEL", "per_channel"), ("PER_TENSOR", "per_tensor")], type=str)
Scheme = enum.Enum("Scheme", [("SYMMETRIC", "symmetric"), ("AFFINE", "affine")], type=str)


def _check_bits(bits: int, name: str = "bits") -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise SpecError(f"{name} (a bit width) must be a whole number from 2 to 8, got {bits!r}.")


@dataclass(frozen=True)
class WeightQuant:
    bits: int = 8
    granularity: Granularity = Granularity.PER_CHANNEL
    scheme: Scheme = Scheme.SYMMETRIC
    qat_epochs: int = 0             # > 0: quantization-aware training (straight-through estimator) first
    lr: float = 5e-4
    seed: int = 0
    samples_per_epoch: int | None = None  # QAT budget on big data: images per epoch (None: all)
    patience: int | None = None           # stop QAT after this many epochs without a better val score
    layer_bits: tuple = ()          # ((layer, bits), ...): each named layer at its own width, the rest at `bits`

    def __post_init__(self):
        check_budget(self.samples_per_epoch, self.patience)
        _check_bits(self.bits)
        object.__setattr__(self, "layer_bits", per_layer(self.layer_bits, "layer_bits", _check_bits))
        if self.qat_epochs < 0:
            raise SpecError(f"qat_epochs must be 0 or more, got {self.qat_epochs}.")
        object.__setattr__(self, "granularity", Granularity(self.granularity))
        object.__setattr__(self, "scheme", Scheme(self.scheme))

    @property
    def label(self) -> str:
        extra = [x for x, default in ((self.granularity.value.replace("_", "-"), "per-channel"),
                                      (self.scheme.value, "symmetric")) if x != default]
        how = f"QAT {self.qat_epochs} ep, " if self.qat_epochs else ""
        if self.layer_bits:
            return (f"per-layer bits ({per_layer_label(self.layer_bits, lambda b: f'{b}-bit')}, others {self.bits}-bit; "
                    f"{how}{', '.join(extra) or 'per-channel'})")
        return f"{self.bits}-bit weights ({how}{', '.join(extra) or 'per-channel'})"

    def bits_of(self, layer: str) -> int:
        return dict(self.layer_bits).get(layer, self.bits)


@dataclass(frozen=True)
class WeightShare:
    """k-means weight sharing; with `finetune_epochs`, Deep Compression's trained quantization:
    the codes stay fixed and the centroids are fine-tuned, each by the sum of its weights' gradients."""
    bits: int = 4                   # 2^bits shared values per layer
    iterations: int = 30
    conv_bits: int | None = None    # a different width for conv kernels (Deep Compression: 8 conv, 5 fc)
    finetune_epochs: int = 0
    lr: float = 1e-4
    seed: int = 0
    samples_per_epoch: int | None = None
    patience: int | None = None
    augment_shift: int = 0          # fine-tune on images shifted by up to this many pixels

    def __post_init__(self):
        check_budget(self.samples_per_epoch, self.patience)
        _check_bits(self.bits)
        if self.augment_shift not in range(0, 9):
            raise SpecError(f"augment_shift must be a whole number of pixels from 0 to 8, got {self.augment_shift!r}.")
        if self.conv_bits is not None:
            _check_bits(self.conv_bits, "conv_bits")
        if self.iterations < 1:
            raise SpecError(f"k-means needs at least 1 iteration, got {self.iterations}.")
        if self.finetune_epochs < 0:
            raise SpecError(f"finetune_epochs must be 0 or more, got {self.finetune_epochs}.")

    def bits_for(self, weight: torch.Tensor) -> int:
        return self.conv_bits if self.conv_bits is not None and weight.ndim > 2 else self.bits

    @property
    def label(self) -> str:
        conv = f", conv {self.conv_bits}-bit" if self.conv_bits is not None and self.conv_bits != self.bits else ""
        tuned = f", centroids fine-tuned {self.finetune_epochs} ep" if self.finetune_epochs else ""
        return f"{self.bits}-bit shared weights ({2 ** self.bits} values per layer{conv}{tuned})"


# ---- k-bit fake quantization -------------------------------------------------------

def fake_quantize(w: torch.Tensor, bits: int, granularity: Granularity = Granularity.PER_CHANNEL,
                  scheme: Scheme = Scheme.SYMMETRIC) -> torch.Tensor:
    """`w` rounded to 2^bits levels (symmetric: 2^bits - 1 levels around an exact zero) and back to float."""
    dims = tuple(range(1, w.ndim)) if Granularity(granularity) is Granularity.PER_CHANNEL and w.ndim > 1 else None
    amax = (lambda t: t.amax(dim=dims, keepdim=True)) if dims else (lambda t: t.max())
    amin = (lambda t: t.amin(dim=dims, keepdim=True)) if dims else (lambda t: t.min())
    if Scheme(scheme) is Scheme.SYMMETRIC:
        qmax = 2 ** (bits - 1) - 1
        scale = (amax(w.abs()) / qmax).clamp_min(1e-12)
        return (w / scale).round().clamp(-qmax, qmax) * scale
    lo, hi = amin(w).clamp(max=0), amax(w).clamp(min=0)  # the range holds 0, so zeros stay exactly zero
    scale = ((hi - lo) / (2 ** bits - 1)).clamp_min(1e-12)
    zero = (-lo / scale).round()
    return ((w / scale).round() + zero).clamp(0, 2 ** bits - 1).sub(zero) * scale


class _STEFakeQuant(nn.Module):
    """Parametrization: forward sees quantized weights, gradients pass straight through."""

    def __init__(self, cfg: WeightQuant, bits: int):
        super().__init__()
        self.cfg, self.bits = cfg, bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (fake_quantize(w, self.bits, self.cfg.granularity, self.cfg.scheme) - w).detach()


@register(WeightQuant, check=layers_named("layer_bits", needs_architecture("quantization-aware training",
                                                                         when=lambda cfg: cfg.qat_epochs > 0)))
def weight_quant(model: LoadedModel, cfg: WeightQuant, data: DataSet,
                 progress: Progress | None = None) -> LoadedModel:
    """Every weight matrix / kernel rounded to 2^bits levels (QAT first when asked)."""
    module = model.copy_module()
    cfg = replace(cfg, layer_bits=check_layers(module, cfg.layer_bits, "layer_bits"))
    if cfg.qat_epochs > 0:
        _qat_(module, cfg, data.adapted(model.input_shape), progress)
    with torch.no_grad():
        for name, w in prunable_weights(module):
            w.copy_(fake_quantize(w, cfg.bits_of(name), cfg.granularity, cfg.scheme))
    recalibrate_bn_(module, data.adapted(model.input_shape).train, images=cfg.samples_per_epoch)
    return model.derive(module)


def _qat_(module: nn.Module, cfg: WeightQuant, data: DataSet, progress: Progress | None) -> None:
    """Quantization-aware training in place: forward sees k-bit weights, pruned zeros stay zero."""
    named = [(n, m) for n, m in module.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    layers = [m for _, m in named]
    masks = [(m, m.weight.detach() != 0) for m in layers if (m.weight == 0).any()]
    for n, m in named:
        parametrize.register_parametrization(m, "weight", _STEFakeQuant(cfg, cfg.bits_of(n)))

    @torch.no_grad()
    def hold_zeros(_):
        for i, (m, mask) in enumerate(masks):
            w = m.parametrizations.weight.original
            if mask.device != w.device:  # training moved the model to a GPU: the mask follows, once
                masks[i] = (m, mask := mask.to(w.device))
            w.mul_(mask)

    train_(module, data.train, data.val, epochs=cfg.qat_epochs, lr=cfg.lr, seed=cfg.seed, progress=progress,
           samples_per_epoch=cfg.samples_per_epoch, patience=cfg.patience,
           after_step=hold_zeros)
    for m in layers:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)


# ---- weight sharing ------------------------------------------------------------------

@register(WeightShare, check=needs_architecture("fine-tuning shared centroids", when=lambda cfg: cfg.finetune_epochs > 0))
def weight_share(model: LoadedModel, cfg: WeightShare, data: DataSet,
                 progress: Progress | None = None) -> LoadedModel:
    """Each layer's non-zero weights replaced by the nearest of 2^bits centroids (zeros stay zero);
    then, if asked, the centroids fine-tuned with the codes fixed."""
    module = model.copy_module()
    d = data.adapted(model.input_shape)
    shared = {name: share_values(w, cfg.bits_for(w), cfg.iterations) for name, w in prunable_weights(module)}
    if cfg.finetune_epochs > 0:
        tune_shared_(module, shared, d, epochs=cfg.finetune_epochs, lr=cfg.lr, seed=cfg.seed, progress=progress,
                     samples_per_epoch=cfg.samples_per_epoch, patience=cfg.patience, augment_shift=cfg.augment_shift)
    else:
        with torch.no_grad():
            for (name, w), (centroids, codes) in zip(prunable_weights(module), shared.values()):
                w.copy_(torch.cat([centroids, centroids.new_zeros(1)])[codes])
    recalibrate_bn_(module, d.train, images=cfg.samples_per_epoch)
    return model.derive(module)


# ---- the one spelling of the quantize tokens: w4 (rounding), qat3 (QAT), share4 (k-means) ----------

TOKEN = re.compile(r"^(?:(w|qat|share|dc|soft)([2-8])|(vd|bayes)([2-8]?))$")  # vd, bayes: widths from the posterior
TOKEN_HELP = {"w4": "each weight rounded to 4 bits after training, one scale per output channel (w8 .. w2 alike)",
              "qat3": "3-bit weights after a few epochs of quantization-aware training: slower, usually more accurate "
                      "(qat8 .. qat2 alike)",
              "share3": "each layer's weights replaced by 2^3 = 8 shared values found by k-means (share8 .. share2 "
                        "alike)",
              "dc5": "Deep Compression's trained quantization: 2^5 = 32 shared values per layer (k-means), then the "
                     "shared values fine-tuned for a few epochs (dc8 .. dc2 alike)",
              "soft4": "soft weight-sharing: retrained under a mixture prior of 2^4 - 1 = 15 components plus one at "
                       "zero (16 values, 4-bit codes), which prunes and quantizes in one pass (soft8 .. soft2 alike; "
                       "slow: it retrains)",
              "vd4": "sparse variational dropout: retrained with a dropout rate per weight, the weights that carry "
                     "only noise pruned, then 2^4 = 16 trained shared values per layer (vd8 .. vd2 alike; vd: each "
                     "layer's width read from its posterior; slow: it retrains)",
              "bayes": "Bayesian compression: as vd, and whole units / channels go too (a smaller model, every file "
                       "shrinks), each layer's width read from its posterior (bayes4: 4 bits everywhere)"}


CHOICES = ("fp32", "w8", "w6", "w5", "w4", "w3", "w2", "qat4", "qat3", "qat2", "share4", "share3", "dc6", "dc5",
           "soft4", "vd4", "vd", "bayes")  # offered in the UI


def parse_token(token) -> tuple[str, int] | None:
    """'dc5' -> ('dc', 5); 'vd' -> ('vd', 0) (0: widths from the posterior); None if not a weight token."""
    m = TOKEN.match(str(token))
    if m is None:
        return None
    kind, bits = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return kind, int(bits or 0)


def token_name(token: str) -> str:
    """What a person reads for a token: 'w4 (4-bit)', 'qat3 (3-bit, QAT)', 'share4 (16 values)'."""
    parsed = parse_token(token)
    if parsed is None:
        return "fp32 (as trained)" if token == "fp32" else token
    kind, bits = parsed
    values = f"{2 ** bits} values" if bits else "widths from the posterior"
    return f"{token} " + {"w": f"({bits}-bit)", "qat": f"({bits}-bit, QAT)", "share": f"({values})",
                          "dc": f"({values}, trained)", "soft": f"(soft sharing, {values})",
                          "vd": f"(sparse variational dropout, {values})",
                          "bayes": f"(Bayesian compression, {values})"}[kind]


def from_token(token: str, epochs: int = 3):
    """'w4' -> WeightQuant(4), 'qat3' -> WeightQuant(3, qat_epochs=epochs), 'share4' -> WeightShare(4),
    'dc5' -> WeightShare(5, finetune_epochs=epochs), 'soft4' -> SoftShare(15 components + zero, epochs),
    'vd4' / 'vd' -> VariationalDropout(bits 4 / from the posterior, epochs), 'bayes' -> the same with whole units;
    'fp32' -> None."""
    from core.methods.soft_share import SoftShare
    from core.methods.variational import Groups, VariationalDropout

    if token == "fp32":
        return None
    parsed = parse_token(token)
    if parsed is None:
        raise SpecError(f"{token!r} is not a weight format: use w2..w8, qat2..qat8, share2..share8, dc2..dc8, "
                        "soft2..soft8, vd or vd2..vd8, bayes or bayes2..bayes8 (or fp32).")
    kind, bits = parsed
    return {"w": lambda: WeightQuant(bits), "qat": lambda: WeightQuant(bits, qat_epochs=epochs),
            "share": lambda: WeightShare(bits), "dc": lambda: WeightShare(bits, finetune_epochs=epochs),
            "soft": lambda: SoftShare(components=2 ** bits - 1, epochs=max(1, epochs)),
            "vd": lambda: VariationalDropout(bits=bits, epochs=max(1, epochs)),
            "bayes": lambda: VariationalDropout(groups=Groups.UNITS, bits=bits, epochs=max(1, epochs))}[kind]()
