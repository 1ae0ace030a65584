"""The one training loop: sample models, fine-tuning after pruning, QAT, distillation.

`train_` mutates its model (hence the trailing underscore); callers that must stay
pure deep-copy first. With a teacher it minimises Hinton's distillation loss
    alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * cross-entropy,
otherwise plain cross-entropy. The model with the best validation accuracy is kept.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.inputs import device as D
from core.inputs.cancel import checkpoint
from core.inputs.data import Split

Progress = Callable[[int, int, str], None]  # (done, total, message)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to `max_shift` pixels per image (zero padding): cheap augmentation."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, x.shape[1], h, w)
    return out.gather(3, cols)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor | Split, batch: int = 512) -> torch.Tensor:
    """Logits on the CPU for `x` (a tensor, or a Split read as float32 batch by batch so uint8 data stays uint8), in
    eval mode, computed on the current device (core.inputs.device) in full precision."""
    was_training = model.training
    model.eval()
    chunks = x.batches(batch) if isinstance(x, Split) else (x[i:i + batch] for i in range(0, len(x), batch))
    out, done = None, 0
    with D.on(model) as m:
        dev = D.module_device(m)
        for c in chunks:  # a cancelled job stops in Split.batches
            logits = m(c.to(dev, non_blocking=True)).float().cpu()
            if out is None:  # one tensor filled in place: a list of batches to concatenate grows the heap with N
                out = torch.empty((len(x), *logits.shape[1:]))
            out[done:done + len(logits)] = logits
            done += len(logits)
    model.train(was_training)
    return out if out is not None else torch.empty(0)


def accuracy(model: nn.Module, split: Split) -> float:
    return (predict(model, split).argmax(1) == split.y).float().mean().item()


BN_IMAGES = 50_000  # BatchNorm statistics settle long before this; ImageNet's 1.28 M images would cost a pass each


@torch.no_grad()
def recalibrate_bn_(model: nn.Module, split: Split, batch: int = 128, images: int | None = None) -> nn.Module:
    """Re-estimate BatchNorm statistics on `split` (cumulative average; on a seeded BN_IMAGES, or `images` when
    fewer, of a bigger split: a method's samples_per_epoch budget bounds this pass too). In place; no-op without
    BatchNorm.

    Pruning and rounding shift every activation's mean and variance; stale statistics
    alone can drop a pruned MobileNet to chance, and fine-tuning from there stalls.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    most = min(BN_IMAGES, images or BN_IMAGES)
    reads = split.batches(batch) if len(split) <= most else \
        split.batches_of(torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:most], batch)
    with D.on(model) as on_device:
        dev = D.module_device(on_device)
        for x in reads:
            on_device(x.to(dev, non_blocking=True))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return model


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), log_target=True,
                    reduction="batchmean") * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def train_(model: nn.Module, train: Split, val: Split, epochs: int, lr: float = 1e-3, seed: int = 0,
           batch_size: int = 64, weight_decay: float = 0.0, augment_shift: int = 0,
           teacher: nn.Module | None = None, temperature: float = 4.0, alpha: float = 0.9,
           progress: Progress | None = None, after_step: Callable[[nn.Module], None] | None = None,
           samples_per_epoch: int | None = None, patience: int | None = None,
           penalty: Callable[[], torch.Tensor] | None = None, extra_params: list[dict] | None = None,
           keep_best: bool = True, teacher_logits: torch.Tensor | None = None,
           stop_after: int | None = None) -> nn.Module:
    """Train `model` in place with Adam and cosine decay; keep the weights that scored best on `val`.

    `after_step` runs after every optimiser step (pruning masks use it to keep zeros at zero).
    `penalty()` is added to every batch's loss as it is (a prior over the weights, as soft weight-sharing
    uses; the caller scales it); `extra_params` are further Adam parameter groups it learns.
    With `keep_best=False` the last epoch's weights are kept (a prior's pull must not be undone).
    `teacher_logits` (the teacher's logits on `train`, unshifted) spare the teacher's pass over the training set.
    Budgets for big data: each epoch sees `samples_per_epoch` random training images (all when None),
    and training stops after `patience` epochs without a better validation score (never when None).
    `stop_after` optimiser steps: return the weights as they are then (replaying the start of a run, which
    lottery tickets rewind to); the schedule is still the whole run's.
    """
    if epochs <= 0:
        return model
    gen = seed_everything(seed)
    if teacher is not None and teacher_logits is None and not augment_shift:
        teacher_logits = predict(teacher, train)
    dev = D.current()
    with contextlib.ExitStack() as stack:  # the model (and a teacher) on the device, back where they were after
        stack.enter_context(D.on(model, dev, extra_params))
        if teacher is not None:
            stack.enter_context(D.on(teacher, dev))
        return _train_on(dev, model, train, val, epochs, lr, gen, batch_size, weight_decay, augment_shift, teacher,
                         temperature, alpha, progress, after_step, samples_per_epoch, patience, penalty,
                         extra_params, keep_best, None if teacher_logits is None else teacher_logits.to(dev),
                         stop_after)


def _train_on(dev, model, train, val, epochs, lr, gen, batch_size, weight_decay, augment_shift, teacher, temperature,
              alpha, progress, after_step, samples_per_epoch, patience, penalty, extra_params, keep_best,
              teacher_logits, stop_after) -> nn.Module:
    """train_'s loop, with everything already on `dev`; batches are read (and shifted) on the CPU, then moved."""
    opt = torch.optim.Adam([{"params": [p for p in model.parameters() if p.requires_grad]}, *(extra_params or [])],
                           lr=lr, weight_decay=weight_decay)
    per_epoch = min(len(train), samples_per_epoch or len(train))
    steps = epochs * ((per_epoch + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    scaler = D.scaler(dev)
    labels = train.y.to(dev)
    best, best_acc, since_best, done = None, -1.0, 0, 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)[:per_epoch]
        for i, x in zip(range(0, len(order), batch_size), train.batches_of(order, batch_size)):
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            x = shift(x, augment_shift, gen).to(dev, non_blocking=True)
            with D.autocast(dev):
                logits = model(x)
                if teacher is None:
                    loss = F.cross_entropy(logits, labels[idx.to(dev)])
                else:
                    t_logits = predict(teacher, x).to(dev) if augment_shift else teacher_logits[idx.to(dev)]
                    loss = distillation_loss(logits.float(), t_logits, labels[idx.to(dev)], temperature, alpha)
                if penalty is not None:
                    loss = loss + penalty()
            checkpoint()  # a cancelled dashboard job stops here, at the next batch
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:  # fp16 on a GPU without bf16: gradients scaled so small ones do not flush to zero
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            sched.step()
            if after_step is not None:
                after_step(model)
            done += 1
            if done == stop_after:
                return model.eval()
        acc = accuracy(model, val)
        if acc > best_acc:
            best_acc, best, since_best = acc, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
        stop = patience is not None and since_best >= patience
        if progress:
            progress(epochs if stop else epoch + 1, epochs,
                     f"epoch {epoch + 1}/{epochs}: val {acc:.3f}" + (" (stopped early)" if stop else ""))
        if stop:
            break
    if keep_best:
        model.load_state_dict(best)
    model.eval()
    return model
