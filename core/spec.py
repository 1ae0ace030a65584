"""One registry, one entry point, one recipe.

Each compression method is a frozen config dataclass plus one function registered
for it with `@register(ConfigType)`; `compress(model, config, data)` dispatches on the
config's type and returns a new model (the input is never changed).

A `Spec` is the whole recipe, distill -> prune -> quantize, any step optional. Its
canonical JSON (every config wrapped as {"_type": ..., fields...} inside a
{"_type": "Spec", "_version": ...} envelope) is what gets stored, and the hash of that
JSON is its identity in the results store and in file names.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

from core.data import DataSet
from core.models import LoadedModel
from core.train import Progress

SPEC_VERSION = 1
_METHODS: dict[type, Callable[..., LoadedModel]] = {}
_CONFIGS: dict[str, type] = {}


class SpecError(ValueError):
    """A recipe that cannot be built or run; the message says which field and why."""


def register(config_type: type) -> Callable:
    """Register `fn(model, config, data, progress) -> LoadedModel` as the method for `config_type`."""
    def wrap(fn: Callable[..., LoadedModel]) -> Callable[..., LoadedModel]:
        _METHODS[config_type] = fn
        _CONFIGS[config_type.__name__] = config_type
        return fn
    return wrap


def compress(model: LoadedModel, config: Any, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    """Apply one method. Pure: `model` is left as it was."""
    _load_methods()
    fn = _METHODS.get(type(config))
    if fn is None:
        raise SpecError(f"No compression method is registered for {type(config).__name__}.")
    return fn(model, config, data, progress)


def _load_methods() -> None:
    """Import the method modules so their @register lines have run."""
    from core import distill, prune, quantize  # noqa: F401


# ---- (de)serialising configs ------------------------------------------------------

def config_to_dict(config: Any) -> dict:
    out: dict[str, Any] = {"_type": type(config).__name__}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = v.value if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v
    return out


def config_from_dict(d: dict) -> Any:
    _load_methods()
    d = dict(d)
    name = d.pop("_type", None)
    cls = _CONFIGS.get(name)
    if cls is None:
        raise SpecError(f"Unknown method config {name!r}; known: {', '.join(sorted(_CONFIGS))}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise SpecError(f"{name} has no field {unknown[0]!r}; its fields are {', '.join(sorted(names))}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def config_label(config: Any) -> str:
    """A short human label, e.g. 'StructuredPrune(ratio=0.5)': only fields that differ from defaults."""
    parts = []
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if v != default or f.default is dataclasses.MISSING:
            parts.append(f"{f.name}={v.value if isinstance(v, enum.Enum) else v}")
    return f"{type(config).__name__}({', '.join(parts)})"


@dataclass(frozen=True)
class Spec:
    """distill -> prune -> quantize; None skips a step. An empty Spec is the baseline."""
    distill: Any = None
    prune: Any = None
    quantize: Any = None

    STEPS = ("distill", "prune", "quantize")

    def steps(self) -> list[Any]:
        return [c for c in (self.distill, self.prune, self.quantize) if c is not None]

    def to_dict(self) -> dict:
        return {"_type": "Spec", "_version": SPEC_VERSION,
                **{s: config_to_dict(getattr(self, s)) if getattr(self, s) is not None else None for s in self.STEPS}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        if d.get("_type") != "Spec":
            raise SpecError("Not a Spec: the JSON lacks '_type': 'Spec'.")
        if d.get("_version", 0) > SPEC_VERSION:
            raise SpecError(f"This Spec was written by a newer edgetrim (version {d['_version']}); upgrade to read it.")
        return cls(**{s: config_from_dict(d[s]) if d.get(s) else None for s in cls.STEPS})

    @classmethod
    def from_json(cls, s: str) -> "Spec":
        return cls.from_dict(json.loads(s))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def family(self) -> str:
        """'baseline', 'distillation', 'pruning', 'quantization', or 'combined'."""
        kinds = [k for k, s in (("distillation", self.distill), ("pruning", self.prune),
                                ("quantization", self.quantize)) if s is not None]
        return "baseline" if not kinds else kinds[0] if len(kinds) == 1 else "combined"

    @property
    def label(self) -> str:
        return " -> ".join(config_label(c) for c in self.steps()) or "baseline"


def apply(model: LoadedModel, spec: Spec, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    """Run the recipe step by step; each step returns a new model."""
    for config in spec.steps():
        model = compress(model, config, data, progress)
    return model
