"""Models: the bundled samples, torchvision architectures by name, and users' own files.

Every model becomes a `LoadedModel`: the module in eval mode plus what the rest of
edgetrim needs to know about it (input shape, class count, how to rebuild it at
another width, and a fingerprint of its weights). All loading of files goes
through `load_model`; state_dicts are read with `weights_only=True`, so a file
that asks to run code is refused, never executed.

The tensor names a state_dict must have for each architecture (`--arch`, a sweep file's `arch:`), as
`torch.save(model.state_dict())` of the same class writes them; every layer has `.weight` and, unless said,
`.bias`; a BatchNorm layer also has `.running_mean`, `.running_var` and `.num_batches_tracked`:

| architecture | tensor names |
| --- | --- |
| `mlp` (= `mlp-300-100`), `mlp-<h1>-<h2>-...` | an `nn.Sequential` (Flatten, then Linear and ReLU per hidden layer): Linear layers `1`, `3`, `5`, ... (`1.weight`, `1.bias`, `3.weight`, ...), the last one the classes; with `arch_kwargs: {dropout: p}` a Dropout follows each ReLU: `1`, `4`, `7`, ...; `input_dropout: p` puts a Dropout at `1` (after Flatten), moving every Linear one on: `2`, `4`, ... (`2`, `5`, ... with both) |
| `lenet5` | `features.0` (conv, 6), `features.3` (conv, 16), `classifier.1` (fc, 120), `classifier.3` (fc, 84), `classifier.5` (fc, classes) |
| `lenet5_caffe` | `features.0` (conv, 20), `features.2` (conv, 50), `classifier.1` (fc, 500), `classifier.3` (fc, classes) |
| `resnet18_small` | torchvision's ResNet-18 names (122 tensors): `conv1` (no bias), `bn1`, `layer1.0.conv1`, `layer1.0.bn1`, `layer1.0.conv2`, `layer1.0.bn2`, ... `layer4.1.bn2` (convs without bias), `layer2.0.downsample.0` (conv) and `.1` (BatchNorm) in layers 2 to 4, `fc` |
| `tv:<name>` | torchvision's own names for that model: `torchvision.models.get_model(name, num_classes=K).state_dict().keys()` |

A file saved from `nn.DataParallel` has every name prefixed `module.`: save `model.module.state_dict()` instead.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import logging.handlers
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from core.inputs import etz

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "sample_models"
MAX_MODEL_BYTES = 500 * 2**20  # files bigger than this are refused before reading
TORCHVISION_PREFIX = "tv:"


class ModelLoadError(ValueError):
    """A model file or name that cannot be used; the message is one sentence saying why."""


# ---- the sample architectures ------------------------------------------------

def _scaled(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


class MLP(nn.Sequential):
    """LeNet-300-100 by default: fully connected hidden layers; `width` scales them (students); `dropout` after
    each hidden layer and `input_dropout` on the pixels (Hinton's 1200-1200 teacher: 0.5 and 0.2). Without
    input dropout the layer indices are as they always were (`1.weight` is the first Linear)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10, hidden: tuple[int, ...] = (300, 100),
                 width: float = 1.0, dropout: float = 0.0, input_dropout: float = 0.0):
        layers: list[nn.Module] = [nn.Flatten()]
        layers += [nn.Dropout(input_dropout)] if input_dropout else []
        for h in hidden:
            layers += [nn.Linear(in_features, _scaled(h, width)), nn.ReLU()]
            layers += [nn.Dropout(dropout)] if dropout else []
            in_features = _scaled(h, width)
        layers.append(nn.Linear(in_features, num_classes))
        super().__init__(*layers)


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 inputs: conv(6) - pool - conv(16) - pool - 120 - 84 - classes."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        c1, c2 = _scaled(6, width), _scaled(16, width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 5 * 5, _scaled(120, width)), nn.ReLU(),
            nn.Linear(_scaled(120, width), _scaled(84, width)), nn.ReLU(),
            nn.Linear(_scaled(84, width), num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet5Caffe(nn.Module):
    """Caffe's LeNet-5 (the model Deep Compression and soft weight-sharing report on): conv 20 5x5 - pool -
    conv 50 5x5 - pool - fc 500 - fc classes; 431k weights at width 1."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        c1, c2, h = _scaled(20, width), _scaled(50, width), _scaled(500, width)
        self.features = nn.Sequential(nn.Conv2d(in_channels, c1, 5), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 5),
                                      nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 4 * 4, h), nn.ReLU(), nn.Linear(h, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def small_resnet18(in_channels: int = 1, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """torchvision's ResNet-18 with its stem made for small images (a 3x3 stride-1 first conv, no max-pool, as
    for CIFAR), so a 28x28 digit keeps its detail: 0.46 G MACs at width 1. `width` scales every stage's channels."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class SmallResNet(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            if planes == 64:  # the first stage: its input is the narrowed stem
                self.inplanes = _scaled(64, width)
            return super()._make_layer(block, _scaled(planes, width), blocks, stride, dilate)

    model = SmallResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    stem = _scaled(64, width)
    model.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.bn1 = nn.BatchNorm2d(stem)
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(_scaled(512, width), num_classes)
    return model


ARCHITECTURES = ("mlp", "lenet5", "lenet5_caffe", "resnet18_small")  # edgetrim's own; besides them tv:<name>
MLP_LAYERS = re.compile(r"mlp(?:-\d+)+")  # an MLP spelled with its hidden layers: mlp-800-800


def is_architecture(arch: str) -> bool:
    """A name `build` knows (whether torchvision has a tv: name is checked when building)."""
    return arch in ARCHITECTURES or bool(MLP_LAYERS.fullmatch(arch)) or arch.startswith(TORCHVISION_PREFIX)


def build(arch: str, num_classes: int, input_shape: tuple[int, int, int], width: float = 1.0,
          **kwargs) -> nn.Module:
    """A fresh (untrained) model: 'mlp', 'lenet5', 'lenet5_caffe', 'resnet18_small' or 'tv:<torchvision name>';
    `width` narrows it; 'mlp-1200-1200' is an MLP with those hidden layers."""
    if MLP_LAYERS.fullmatch(arch):
        arch, kwargs = "mlp", {**kwargs, "hidden": tuple(int(h) for h in arch.split("-")[1:])}
    if arch == "mlp":
        return MLP(in_features=input_shape[0] * input_shape[1] * input_shape[2], num_classes=num_classes,
                   width=width, hidden=tuple(kwargs.pop("hidden", (300, 100))), **kwargs)
    if arch == "lenet5":
        if tuple(input_shape[1:]) != (28, 28):
            raise ModelLoadError(f"lenet5 expects 28x28 inputs, not {input_shape[1]}x{input_shape[2]}.")
        return LeNet5(in_channels=input_shape[0], num_classes=num_classes, width=width, **kwargs)
    if arch == "lenet5_caffe":
        if tuple(input_shape[1:]) != (28, 28):
            raise ModelLoadError(f"lenet5_caffe expects 28x28 inputs, not {input_shape[1]}x{input_shape[2]}.")
        return LeNet5Caffe(in_channels=input_shape[0], num_classes=num_classes, width=width, **kwargs)
    if arch == "resnet18_small":
        return small_resnet18(in_channels=input_shape[0], num_classes=num_classes, width=width, **kwargs)
    name = arch.removeprefix(TORCHVISION_PREFIX)
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        if not arch.startswith(TORCHVISION_PREFIX):
            raise ModelLoadError(f"Unknown architecture {arch!r}; use one of {', '.join(ARCHITECTURES)}, "
                                 "mlp-<hidden>-<hidden> (e.g. mlp-800-800) or tv:<torchvision name>.")
        raise ModelLoadError(f"torchvision has no classification architecture named {name!r}; "
                             "see torchvision.models.list_models().")
    if width != 1.0:  # students: scale the architecture's own width multiplier
        if not name.startswith(("mobilenet", "mnasnet")):
            raise ModelLoadError(f"{name} has no width multiplier, so edgetrim cannot build a narrower student of it.")
        key = "alpha" if name.startswith("mnasnet") else "width_mult"
        kwargs = {**kwargs, key: kwargs.get(key, 1.0) * width}
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


class GraphModel(nn.Module):
    """A torch.export graph, frozen in the mode it was exported in: train()/eval() only set the flag."""

    def __init__(self, graph: nn.Module):
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def train(self, mode: bool = True) -> "GraphModel":
        self.training = mode
        return self


def unwrap(module: nn.Module) -> nn.Module:
    """The module whose names are the model's layer names: a GraphModel's graph (the wrapper would put 'graph.'
    before each), so a .pt2's layers are named as the same model's TorchScript or architecture names them."""
    return module.graph if isinstance(module, GraphModel) else module


# ---- the loaded model record ---------------------------------------------------

@dataclass(frozen=True, eq=False)
class LoadedModel:
    name: str
    module: nn.Module
    input_shape: tuple[int, int, int]
    num_classes: int
    arch: str | None = None  # None: a TorchScript / torch.export graph that cannot be rebuilt
    arch_kwargs: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)

    def copy_module(self) -> nn.Module:
        """A deep copy of the module whose parameters are trainable leaves, whatever the model kind.

        (A plain deepcopy of a TorchScript module yields non-leaf parameters that no optimiser takes.)
        """
        with torch.no_grad():
            module = copy.deepcopy(self.module)
        for p in module.parameters():
            p.requires_grad_(True)
        return module

    def derive(self, module: nn.Module, **changes) -> "LoadedModel":
        """The same record around a new module (a compressed copy)."""
        return dataclasses.replace(self, module=module.eval(), **changes)

    @property
    def fingerprint(self) -> str:
        return weights_fingerprint(self.module)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, *self.input_shape)


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of every parameter and buffer (names, shapes, values)."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(repr(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes() if v.dtype != torch.bfloat16 else b"")
    return h.hexdigest()[:16]


# ---- the bundled samples ---------------------------------------------------------

def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.json"))


def sample_card(name: str) -> dict:
    path = SAMPLES_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelLoadError(f"No sample model named {name!r}; the samples are {', '.join(sample_names()) or 'none'}.")
    return json.loads(path.read_text())


def load_sample(name: str) -> LoadedModel:
    """A bundled sample with its trained weights and card."""
    card = sample_card(name)
    return load_model(SAMPLES_DIR / card["weights"], arch=card["arch"], input_shape=tuple(card["input_shape"]),
                      num_classes=card["num_classes"], arch_kwargs=card.get("arch_kwargs", {}), name=name, card=card)


# ---- users' files ------------------------------------------------------------------

LOOKS_LIKE = {"torchscript": "a TorchScript file", "export": "a torch.export .pt2 program",
              "state_dict": "a torch.save weights file"}


def _kind_of(names: list[str]) -> str:
    """'torchscript', 'export' or 'state_dict', told apart by the names in the zip archive."""
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(("/models/" in n and n.endswith(".json")) or n.endswith("archive_format") or "/data/weights/" in n
           for n in names):
        return "export"
    return "state_dict"


TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # what torch.save's pre-zip format starts with


def _plain_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 or later (b'\\x80' and the protocol) that is not torch.save's legacy format: told
    from its first bytes, so it is never handed to an unpickler."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and not head.startswith(TORCH_LEGACY_MAGIC)


def _archive_kind(path: Path) -> str:
    """The kind of a model file; a zip archive cut short (no directory at its end) is refused, naming its kind."""
    try:
        with zipfile.ZipFile(path) as z:
            return _kind_of(z.namelist())
    except zipfile.BadZipFile:
        raw = path.read_bytes()
    if _plain_pickle(raw[:32]):
        raise ModelLoadError(f"{path.name} is a plain Python pickle, not a PyTorch file: edgetrim does not "
                             "unpickle it (unpickling can run any code); save model.state_dict() with torch.save, or "
                             "export the model with torch.export.")
    if not raw.startswith(b"PK\x03\x04"):
        return "state_dict"  # legacy torch.save format; weights_only still guards it
    # the names in the local headers that survive; torch.save writes data.pkl first, TorchScript its tensors
    names = [raw[i + 30:i + 30 + int.from_bytes(raw[i + 26:i + 28], "little")].decode("utf-8", "replace")
             for i in (m.start() for m in re.finditer(b"PK\x03\x04", raw))]
    kind = _kind_of(names)
    if kind == "state_dict" and not names[0].endswith("data.pkl"):
        kind = "torchscript"
    raise ModelLoadError(f"{path.name} is truncated or corrupt: it starts like {LOOKS_LIKE[kind]} but its zip "
                         "archive is incomplete; copy or save it again.")


def _reason(e: BaseException) -> str:
    """The first non-empty line of an exception's message (without torch's boilerplate), else its type's name."""
    lines = [re.sub(r"\s*\(Could this error message be improved.*", "", line).strip(" :.")
             for line in str(e).splitlines()]
    return next((line[:120] for line in lines if line), type(e).__name__)


@contextlib.contextmanager
def _torch_log_held():
    """Keep what torch logs while it reads a file (a whole traceback for a bad .pt2) off the screen; yield it."""
    keep = logging.handlers.BufferingHandler(capacity=10_000)
    loggers = [logging.getLogger(n) for n in ("torch", "torch.export")]
    saved = [(lg.handlers, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [keep], False
    try:
        yield keep.buffer
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved):
            lg.handlers, lg.propagate = handlers, propagate


def _load_graph(path: Path, kind: str):
    """A torch.export program or a TorchScript module, with torch's own log of a failure kept off the screen."""
    with _torch_log_held() as logged, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": a user's file is what it is
        try:
            return torch.export.load(path) if kind == "export" else torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            cause = next((r.exc_info[1] for r in logged if r.exc_info), e)  # torch.export logs the real error first
            raise ModelLoadError(f"{path.name} looks like {LOOKS_LIKE[kind]} but torch could not load it "
                                 f"({_reason(cause)}).") from e


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from disk, refusing anything but plain tensors (no code ever runs)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):
            raise ModelLoadError(f"{path.name} is not a plain weights file: it asks to run Python code, which "
                                 "edgetrim refuses to load; save model.state_dict() with torch.save instead.") from e
        raise ModelLoadError(f"{path.name} is truncated or not a PyTorch file (it does not unpickle).") from e
    except Exception as e:  # torch.load fails in many ways on junk: RuntimeError, EOFError, KeyError, ...
        raise ModelLoadError(f"{path.name} is truncated or not a PyTorch file ({_reason(e)}).") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path.name} does not hold a state_dict (a mapping of names to tensors).")
    return obj


def load_model(path: str | Path, arch: str | None = None, input_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None, arch_kwargs: dict | None = None, name: str | None = None,
               card: dict | None = None) -> LoadedModel:
    """The one door for model files: a state_dict (needs `arch`), a TorchScript file, a torch.export .pt2, or an
    edgetrim archive (.etz: its architecture is in it)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"No model file at {path}.")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelLoadError(f"{path.name} is larger than the {MAX_MODEL_BYTES >> 20} MB edgetrim accepts.")
    if path.open("rb").read(len(etz.MAGIC[:17])) == etz.MAGIC[:17]:  # an edgetrim archive names its architecture
        model = load_archive(path)
        return dataclasses.replace(model, name=name or path.stem, card=card or {}) if name or card else model
    kind = _archive_kind(path)
    name = name or path.stem
    arch_kwargs = dict(arch_kwargs or {})
    if kind == "export":
        program = _load_graph(path, kind)
        module = GraphModel(program.module())
        if input_shape is None:
            specs = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"]
            user = [s for s, i in zip(specs, program.graph_signature.input_specs) if i.kind.name == "USER_INPUT"]
            input_shape = tuple(int(d) for d in user[0].shape[1:]) if user else None
        arch = None
    elif kind == "torchscript":
        module = _load_graph(path, kind)
        arch = None
    else:
        if arch is None:
            raise ModelLoadError(f"{path.name} holds only weights; name its architecture (e.g. --arch tv:resnet18).")
        state = read_state_dict(path)
        num_classes = num_classes or _guess_classes(state)
        if input_shape is None:
            input_shape = (3, 224, 224) if arch.startswith(TORCHVISION_PREFIX) else (1, 28, 28)
        module = build(arch, num_classes, tuple(input_shape), **arch_kwargs)
        _load_weights(module, state, path.name, arch)
    if input_shape is None:
        raise ModelLoadError(f"Give the input shape of {path.name} (e.g. --input-shape 3x224x224).")
    module.eval()
    input_shape = tuple(int(s) for s in input_shape)
    num_classes = check_classifier(module, input_shape, path.name, num_classes)
    return LoadedModel(name, module, input_shape, num_classes, arch, arch_kwargs, card or {})


# ---- the compact archive (.etz): edgetrim's own model file, read by core.inputs.etz --------------------

def read_archive(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header, state_dict) of an archive: the numpy reader (core.inputs.etz), as torch tensors."""
    try:
        header, weights = etz.read(path)
    except etz.ArchiveError as e:
        raise ModelLoadError(str(e)) from e
    return header, {name: torch.from_numpy(w) for name, w in weights.items()}


def load_archive(path: str | Path) -> LoadedModel:
    """Rebuild the model an archive holds, at the (possibly pruned) shapes it was saved with."""
    header, state = read_archive(path)
    module = build(header["arch"], header["num_classes"], tuple(header["input_shape"]), **header["arch_kwargs"])
    resize_like_(module, state)
    module.load_state_dict(state)
    return LoadedModel(header["name"], module.eval(), tuple(header["input_shape"]), header["num_classes"],
                       header["arch"], header["arch_kwargs"])


@torch.no_grad()
def resize_like_(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give every layer the tensor shapes in `state` (channels removed by structured pruning). In place."""
    for mod_name, mod in module.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        changed = False
        for kind in ("_parameters", "_buffers"):
            for name, t in getattr(mod, kind).items():
                new = state.get(prefix + name)
                if t is not None and new is not None and new.shape != t.shape:
                    fresh = torch.empty(new.shape, dtype=t.dtype)
                    getattr(mod, kind)[name] = nn.Parameter(fresh, t.requires_grad) if kind == "_parameters" else fresh
                    changed = True
        if not changed:
            continue
        if isinstance(mod, nn.modules.conv._ConvNd):
            depthwise = mod.groups > 1 and mod.groups == mod.in_channels
            mod.out_channels = mod.weight.shape[0]
            mod.in_channels = mod.out_channels if depthwise else mod.weight.shape[1] * mod.groups
            mod.groups = mod.out_channels if depthwise else mod.groups
        elif isinstance(mod, nn.Linear):
            mod.out_features, mod.in_features = mod.weight.shape
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.num_features = mod.running_mean.shape[0]


def _guess_classes(state: dict[str, torch.Tensor]) -> int:
    last = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not last:
        raise ModelLoadError("Cannot tell the number of classes from the weights; give num_classes.")
    return int(last[-1].shape[0])


def _keys_brief(keys: list[str], shown: int = 6) -> str:
    """'1.weight, 1.bias, 3.weight, ...' and how many in all: the tensor names an architecture expects, briefly
    (BatchNorm's running statistics left out of the few shown)."""
    named = [k for k in keys if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    return ", ".join(named[:shown]) + (f", ... ({len(keys)} in all)" if len(keys) > shown else "")


def _load_weights(module: nn.Module, state: dict[str, torch.Tensor], fname: str, arch: str) -> None:
    """Load `state` strictly, naming the first tensor that does not fit and the names the architecture expects
    (the module docstring lists every architecture's)."""
    own = module.state_dict()
    for k, v in state.items():
        if k not in own:
            prefix = k.split(".", 1)[0] + "."
            extra = (f" (every name in it starts with {prefix!r}, which {arch}'s names lack: save the inner module's "
                     "state_dict)") if all(n.startswith(prefix) and n[len(prefix):] in own for n in state) else ""
            raise ModelLoadError(f"{fname} does not fit {arch}: it has a tensor {k!r} that {arch} does not "
                                 f"have{extra}; {arch} expects {_keys_brief(list(own))}.")
        if tuple(own[k].shape) != tuple(v.shape):
            raise ModelLoadError(f"{fname} does not fit {arch}: tensor {k!r} has shape {tuple(v.shape)}, "
                                 f"{arch} expects {tuple(own[k].shape)}.")
    missing = [k for k in own if k not in state]
    if missing:
        raise ModelLoadError(f"{fname} does not fit {arch}: it lacks the tensor {missing[0]!r}.")
    module.load_state_dict(state)


def check_classifier(module: nn.Module, input_shape: tuple[int, ...], fname: str,
                     num_classes: int | None = None) -> int:
    """Refuse NaN/inf weights and outputs that are not one score vector per input; return the class count."""
    for k, v in module.state_dict().items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ModelLoadError(f"{fname} has NaN or infinite values in {k!r}.")
    try:
        with torch.inference_mode():
            out = module(torch.zeros(2, *input_shape))
    except Exception as e:
        if "size()[0]" in str(e):  # a torch.export graph traced with a fixed batch: edgetrim runs batches
            raise ModelLoadError(f"{fname} was exported with a fixed batch size; export it with a dynamic batch: "
                                 "torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},)).")\
                from e
        raise ModelLoadError(f"{fname} does not run on inputs of shape {'x'.join(map(str, input_shape))} "
                             f"({_reason(e)}).") from e
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelLoadError(f"{fname} does not output one class-score vector per input (got {shape}).")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ModelLoadError(f"{fname} outputs {out.shape[1]} scores, not the {num_classes} classes expected.")
    return int(out.shape[1])
