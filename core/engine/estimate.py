"""How long a point will train, said before it starts (so the dashboard starts training from a button, never a
slider, and the CLI's sweep estimate counts training).

The estimate is epochs x images x the measured time of one training step of the model that
trains (a student, or the model itself), timed here on this machine (a warm-up step, then
steps of 64 random images for half a second, the fastest kept: a few seconds at most for a big
model, once per architecture). It is an estimate: early stopping and data loading move it; the
pages say "about".
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.inputs import device
from core.inputs.data import DataSet
from core.inputs.models import LoadedModel
from core.methods import spec as S

STEP_BATCH = 64


@dataclass(frozen=True)
class Training:
    what: str        # 'the student', 'fine-tuning', 'quantization-aware training', ...
    epochs: int
    images: int      # per epoch


def trainings(model: LoadedModel, data: DataSet, spec: S.Spec) -> list[Training]:
    """Every training a Spec runs, in order (empty: it only measures). A student already trained and kept on
    disk costs nothing."""
    from core.methods.distill import student_path

    n, out = len(data.train), []

    def add(what: str, epochs: int, per_epoch: int | None) -> None:
        if epochs > 0:
            out.append(Training(what, int(epochs), min(n, per_epoch or n)))

    d = spec.distill
    if d is not None and not student_path(model, d, data).is_file():
        add("the student", d.epochs, d.samples_per_epoch)
    p = spec.prune
    if p is not None:
        if type(p).__name__ == "LotteryTicket":
            from core.methods.lottery import recipe

            per_round = p.epochs or int((recipe(model) or {}).get("epochs", 0))
            add(f"lottery tickets ({p.rounds} rounds)", p.rounds * per_round, p.samples_per_epoch)
        else:
            add("fine-tuning after pruning", getattr(p, "finetune_epochs", 0), getattr(p, "samples_per_epoch", None))
    q = spec.quantize
    if q is not None:
        add("quantization-aware training", getattr(q, "qat_epochs", 0), getattr(q, "samples_per_epoch", None))
        if type(q).__name__ == "VariationalDropout":  # a noisy epoch costs about two plain ones (mean and variance):
            images = min(n, q.samples_per_epoch or n)  # counted as twice the images, so the epochs read true
            out.append(Training("variational dropout", q.epochs, 2 * images))
            add("retraining and tuning shared values", q.retrain_epochs + q.tune_epochs, q.samples_per_epoch)
        else:
            add("fine-tuning shared values", getattr(q, "finetune_epochs", 0), getattr(q, "samples_per_epoch", None))
        if type(q).__name__ == "SoftShare":
            add("soft weight-sharing", q.epochs + q.tune_epochs, q.samples_per_epoch)
    return out


def trains(model: LoadedModel, data: DataSet, spec: S.Spec) -> bool:
    return bool(trainings(model, data, spec))


def step_seconds(module: torch.nn.Module, input_shape: tuple[int, ...], batch: int = STEP_BATCH) -> float:
    """Seconds of one Adam step on `batch` random images, timed here (after one untimed step) on a copy."""
    return _step_seconds(module, tuple(input_shape), batch)


_TIMED: dict[str, float] = {}  # per architecture (layer shapes), input and batch: timed once per process


def _time_step(module: torch.nn.Module, input_shape: tuple[int, ...], batch: int) -> float:
    import copy

    dev = device.current()  # where the sweep will train: a GPU's step, mixed precision and all, is what is timed
    m = copy.deepcopy(module).train().to(dev)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad] or [torch.zeros(1, requires_grad=True)])
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0)).to(dev)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    times, start = [], time.perf_counter()
    while len(times) < 3 or (len(times) < 12 and time.perf_counter() - start < 0.5):  # a small model: many steps
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with device.autocast(dev):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t)
    return min(times[1:])  # the least: other work on the machine only ever adds to a step


def _step_seconds(module, input_shape, batch) -> float:
    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    key = f"{type(module).__name__}|{shapes}|{input_shape}|{batch}|{device.current()}"
    if key not in _TIMED:
        _TIMED[key] = _time_step(module, input_shape, batch)
    return _TIMED[key]


def seconds(model: LoadedModel, data: DataSet, spec: S.Spec) -> float:
    """About how long the Spec's training takes here (0 when it trains nothing)."""
    runs = trainings(model, data, spec)
    if not runs:
        return 0.0
    trained = model.module
    if spec.distill is not None:
        from core.methods.distill import build_student

        trained = build_student(model, spec.distill)
    per_image = step_seconds(trained, model.input_shape) / STEP_BATCH
    total = sum(r.epochs * r.images * per_image for r in runs)
    d = spec.distill
    if d is not None and not d.alone and runs[0].what == "the student":  # the teacher's forward passes
        teacher = step_seconds(model.module, model.input_shape) / STEP_BATCH / 3  # a forward: about a third of a step
        total += teacher * runs[0].images * (runs[0].epochs if d.augment_shift else 1)
    return total
