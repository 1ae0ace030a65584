"""Knowledge distillation: a smaller model trained on the teacher's soft labels: a narrower copy of the
teacher's architecture, or any architecture edgetrim builds (`student="lenet5"`, `"mlp-800-800"`, `"tv:..."`).

loss = alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * cross-entropy
(Hinton et al. 2015). With `alone=True` the same student is trained on hard labels
only: the baseline that shows what distillation bought. Trained students are cached
on disk by (teacher weights, config, data), so a sweep trains each student once.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from core import cache_dir
from core.inputs.data import DataSet
from core.inputs.models import ARCHITECTURES, LoadedModel, build, is_architecture
from core.inputs.train import Progress, predict, train_
from core.methods.registry import SpecError, check_budget, config_to_dict, register


@dataclass(frozen=True)
class Distill:
    width: float = 0.5              # student width: a fraction of the teacher's, or of `student`'s own
    student: str | None = None      # an architecture (mlp-800-800, lenet5, resnet18_small, tv:<name>); None: the teacher's
    depth: int | None = None        # hidden layers kept (MLP only); None keeps the teacher's depth
    temperature: float = 4.0
    alpha: float = 0.9              # weight of the soft-target term
    epochs: int = 30
    lr: float = 2e-3
    augment_shift: int = 2          # random translation (pixels) during training
    alone: bool = False             # True: hard labels only, no teacher (the baseline)
    seed: int = 0
    samples_per_epoch: int | None = None  # training budget on big data: images per epoch (None: all)
    patience: int | None = None           # stop after this many epochs without a better val score

    def __post_init__(self):
        check_budget(self.samples_per_epoch, self.patience)
        if not 0 < self.width <= 1:
            raise SpecError(f"A student width must be in (0, 1], got {self.width}.")
        if self.temperature <= 0:
            raise SpecError(f"The distillation temperature must be positive, got {self.temperature}.")
        if not 0 <= self.alpha <= 1:
            raise SpecError(f"alpha must be in [0, 1], got {self.alpha}.")
        if self.epochs < 1:
            raise SpecError(f"A student needs at least 1 epoch of training, got {self.epochs}.")
        if self.depth is not None and self.depth < 1:
            raise SpecError(f"A student needs at least 1 hidden layer, got depth {self.depth}.")
        if self.student is not None and not is_architecture(self.student):
            raise SpecError(f"Unknown student architecture {self.student!r}; use one of {', '.join(ARCHITECTURES)}, "
                            "mlp-<hidden>-<hidden> (e.g. mlp-800-800) or tv:<torchvision name>.")

    @property
    def label(self) -> str:
        how = "trained alone, no teacher" if self.alone else f"distilled, T={self.temperature:g}"
        depth = f", {self.depth} hidden layers" if self.depth is not None else ""
        who = f"student {self.student}" + (f" x{self.width:g}" if self.width != 1 else "") if self.student \
            else f"student width {self.width:g}"
        return f"{who}{depth} ({how}, {self.epochs} ep)"


def _why_not(teacher: LoadedModel, cfg: Distill) -> str | None:
    """Checked before any training: a student must be buildable from the teacher's architecture."""
    try:
        build_student(teacher, cfg)
    except (SpecError, ValueError) as e:
        return str(e)
    return None


def student_arch(teacher: LoadedModel, cfg: Distill) -> str | None:
    """The architecture the student is built as: the one named, else the teacher's."""
    return cfg.student or teacher.arch


def student_kwargs(teacher: LoadedModel, cfg: Distill) -> dict:
    """Keyword arguments of `build` that make the student (also what rebuilds it from an archive)."""
    if cfg.student is not None:
        if cfg.depth is not None:
            raise SpecError("Student depth applies to a copy of an MLP teacher; name the hidden layers instead "
                            "(student: mlp-800-800).")
        return {"width": cfg.width}
    if teacher.arch is None:
        raise SpecError(f"{teacher.name} is a fixed graph (TorchScript / torch.export): edgetrim cannot build a "
                        "narrower copy; name a student architecture (e.g. student: lenet5), or load the teacher as an "
                        "architecture plus state_dict.")
    kwargs = {**teacher.arch_kwargs, "width": teacher.arch_kwargs.get("width", 1.0) * cfg.width}
    if cfg.depth is not None:
        hidden = tuple(teacher.arch_kwargs.get("hidden", (300, 100)))
        if teacher.arch != "mlp" or cfg.depth > len(hidden):
            raise SpecError(f"Student depth applies to the MLP only, up to its {len(hidden)} hidden layers.")
        kwargs["hidden"] = hidden[:cfg.depth]
    return kwargs


def build_student(teacher: LoadedModel, cfg: Distill) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)
    return build(student_arch(teacher, cfg), teacher.num_classes, teacher.input_shape, **student_kwargs(teacher, cfg))


def _save_atomically(obj, path) -> None:
    """torch.save to a temporary file, then rename: a reader never sees half a cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def teacher_logits(teacher: LoadedModel, data: DataSet) -> torch.Tensor:
    """The teacher's logits on the training split, cached on disk: a ResNet-18 teacher takes minutes per pass,
    and every unshifted student of a sweep needs the same ones."""
    key = hashlib.sha256(json.dumps([teacher.fingerprint, data.fingerprint, list(teacher.input_shape)]).encode())
    path = cache_dir() / "teacher_logits" / f"{key.hexdigest()[:20]}.pt"
    n = len(data.train)
    if path.is_file():
        try:
            logits = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(logits, torch.Tensor) and tuple(logits.shape) == (n, teacher.num_classes):
                return logits
        except (RuntimeError, EOFError, OSError):
            pass
    logits = predict(teacher.module, data.train)
    _save_atomically(logits, path)
    return logits


def _as_student(teacher: LoadedModel, cfg: Distill, student: torch.nn.Module) -> LoadedModel:
    """The teacher's record around the trained student, with what rebuilds it (architecture and kwargs)."""
    return teacher.derive(student, card={}, arch=student_arch(teacher, cfg), arch_kwargs=student_kwargs(teacher, cfg))


def student_path(teacher: LoadedModel, cfg: Distill, data: DataSet) -> Path:
    """Where the trained student is kept: trained once per teacher, recipe and data."""
    key = hashlib.sha256(json.dumps([teacher.fingerprint, config_to_dict(cfg), data.fingerprint]).encode())
    return cache_dir() / "students" / f"{key.hexdigest()[:20]}.pt"


@register(Distill, check=_why_not)
def distill(teacher: LoadedModel, cfg: Distill, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    student = build_student(teacher, cfg)
    path = student_path(teacher, cfg, data)
    if path.is_file():
        try:
            student.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return _as_student(teacher, cfg, student)
        except (RuntimeError, EOFError, OSError):
            path.unlink(missing_ok=True)  # a stale or broken cache entry: retrain
    d = data.adapted(teacher.input_shape)
    soft = None if cfg.alone or cfg.augment_shift else teacher_logits(teacher, d)
    train_(student, d.train, d.val, epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed, augment_shift=cfg.augment_shift,
           teacher=None if cfg.alone else teacher.module, temperature=cfg.temperature, alpha=cfg.alpha,
           progress=progress, samples_per_epoch=cfg.samples_per_epoch, patience=cfg.patience, teacher_logits=soft)
    _save_atomically(student.state_dict(), path)
    return _as_student(teacher, cfg, student)
