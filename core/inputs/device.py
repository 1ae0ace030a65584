"""Where training and PyTorch-side evaluation run: one setting, `auto` taking a GPU when torch sees one.

    with device.using("auto"):      # cuda when there is one, else mps, else the CPU
        S.apply(model, spec, data)  # train_, predict and everything built on them run there

Files are still scored in their own runtimes (ONNX Runtime, ExecuTorch, LiteRT) on the CPU, and
the accuracy a point reports never comes from mixed precision: only training autocasts (bf16 where the
GPU has it, else fp16 with a gradient scaler). Models always come back on the CPU, so what follows a
training step (export, measurement) never sees a GPU tensor.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch

CHOICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N
_current: contextvars.ContextVar[torch.device | None] = contextvars.ContextVar("edgetrim_device", default=None)


class DeviceError(ValueError):
    """A device that is not a device, or one this machine does not have; the message says which there are."""


def present() -> list[str]:
    """The devices torch sees here, CPU first: what a person can choose from."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def parse(name: str | None) -> str:
    """`name` as it is written down ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'), or one sentence when it is none of
    those. Not checked against this machine: a sweep file may be written for the GPU box it will run on."""
    if name is not None and not isinstance(name, str):
        raise DeviceError(f"The device is auto, cpu, cuda, cuda:N or mps, not {name!r}.")
    name = (name or "auto").strip().lower()
    kind, _, index = name.partition(":")
    if kind not in CHOICES or (index and not (kind == "cuda" and index.isdigit())):
        raise DeviceError(f"The device is auto, cpu, cuda, cuda:N or mps, not {name!r}.")
    return name


def resolve(name: str | None = "auto") -> torch.device:
    """The torch device `name` means here (None and 'auto': the first GPU torch sees, else the CPU), or one
    sentence on why it cannot be used."""
    name = parse(name)
    if name == "auto":
        return torch.device(present()[1] if len(present()) > 1 else "cpu")
    kind, _, index = name.partition(":")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if "mps" not in present():
            raise DeviceError(f"mps was asked for but torch sees no Apple GPU here; use {_choices()}.")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"{name} was asked for but torch sees no CUDA GPU here; use {_choices()}.")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceError(f"{name} was asked for but torch sees {torch.cuda.device_count()} GPU(s) here "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1}).")
    return torch.device(name if index else "cuda:0")


def _choices() -> str:
    return ", ".join(["auto", *present()])


def current() -> torch.device:
    """The device the work of this thread runs on: the one `using` set, else 'auto'."""
    return _current.get() or resolve("auto")


@contextlib.contextmanager
def using(name: str | torch.device | None):
    """Run the block's training and PyTorch evaluation on `name` (a setting or a torch.device)."""
    token = _current.set(name if isinstance(name, torch.device) else resolve(name))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def describe(dev: torch.device | None = None) -> str:
    """What a person reads: 'cpu', or 'cuda:0 (NVIDIA A100-SXM4-40GB)'."""
    dev = dev or current()
    if dev.type == "cuda":
        return f"{dev.type}:{dev.index or 0} ({torch.cuda.get_device_name(dev.index or 0)})"
    return str(dev)


def autocast(dev: torch.device):
    """Mixed precision for a training forward pass on a GPU (bf16 where supported, else fp16), nothing on the CPU:
    a CPU run stays bit-for-bit the run it always was."""
    if dev.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=amp_dtype(dev))


def amp_dtype(dev: torch.device) -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def scaler(dev: torch.device):
    """A gradient scaler where fp16 needs one (a GPU without bf16), else None."""
    if dev.type == "cuda" and amp_dtype(dev) == torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's weights are (the CPU for one without any)."""
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


@contextlib.contextmanager
def on(module: torch.nn.Module, dev: torch.device | None = None, extra: list | None = None):
    """`module` (and the parameters in `extra`, moved in place so closures holding them follow) on `dev` for the
    block, then back where it was: callers see their model where they left it."""
    dev = dev or current()
    home = module_device(module)
    tensors = [p for group in extra or [] for p in group["params"]]
    if dev == home:
        yield module
        return
    module.to(dev)
    for p in tensors:
        p.data = p.data.to(dev)
    try:
        yield module
    finally:
        module.to(home)
        for p in tensors:
            p.data = p.data.to(home)
            if p.grad is not None:
                p.grad = p.grad.to(home)
