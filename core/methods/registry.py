"""The method registry: a leaf module (it imports nothing of edgetrim's), filled by the methods.

Each compression method is a frozen config dataclass plus one function registered for
it with `@register(ConfigType)`; `compress(model, config, data)` dispatches on the
config's type (torchao's `quantize_(model, config)` pattern). A method may also
register a `check(model, config)` that returns why it cannot run on a model, so a
sweep refuses an impossible point before any work. Deploy formats (core.methods.deploy) are
registered as configs only: they are applied when a file is written, not to weights.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable

_METHODS: dict[type, Callable] = {}
_CHECKS: dict[type, Callable[[Any, Any], str | None]] = {}
_CONFIGS: dict[str, type] = {}


class SpecError(ValueError):
    """A recipe that cannot be built or run; the message says which field and why."""


def check_budget(samples_per_epoch: int | None, patience: int | None) -> None:
    """The training-budget fields every training config shares, checked in its __post_init__."""
    if samples_per_epoch is not None and (not isinstance(samples_per_epoch, int) or samples_per_epoch < 1):
        raise SpecError(f"samples_per_epoch must be a whole number of at least 1 (or null for all), "
                        f"got {samples_per_epoch!r}.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise SpecError(f"patience must be a whole number of epochs, at least 1 (or null), got {patience!r}.")


def register_config(config_type: type) -> type:
    """Make a config class known to (de)serialisation."""
    _CONFIGS[config_type.__name__] = config_type
    return config_type


def register(config_type: type, check: Callable[[Any, Any], str | None] | None = None) -> Callable:
    """Register `fn(model, config, data, progress) -> LoadedModel` as the method for `config_type`."""
    def wrap(fn: Callable) -> Callable:
        _METHODS[config_type] = fn
        if check is not None:
            _CHECKS[config_type] = check
        register_config(config_type)
        return fn
    return wrap


def compress(model, config: Any, data, progress=None):
    """Apply one method. Pure: `model` is left as it was."""
    fn = _METHODS.get(type(config))
    if fn is None:
        raise SpecError(f"No compression method is registered for {type(config).__name__}.")
    reason = why_not(model, config)
    if reason:
        raise SpecError(reason)
    return fn(model, config, data, progress)


def why_not(model, config: Any) -> str | None:
    """One sentence on why `config` cannot run on `model`, or None when it can."""
    check = _CHECKS.get(type(config))
    return check(model, config) if check else None


def needs_architecture(what: str, when: Callable[[Any], bool] = lambda cfg: True) -> Callable:
    """A check that refuses fixed graphs (TorchScript / torch.export), which edgetrim cannot rebuild."""
    def check(model, config) -> str | None:
        if model.arch is None and when(config):
            return (f"{model.name} is a fixed graph (TorchScript / torch.export): {what} needs an nn.Module; "
                    "load it as an architecture plus state_dict.")
        return None
    return check


def check_keys(what: str, given, known, noun: str = "key") -> None:
    """One sentence naming a key `what` does not have (and the nearest known one), and the keys it has: a
    misspelt key is refused, never ignored."""
    import difflib

    bad = sorted(str(k) for k in set(given) - set(known))
    if bad:
        near = difflib.get_close_matches(bad[0], [str(k) for k in known], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise SpecError(f"{what} has no {noun} {bad[0]!r}{hint}; its {noun}s are {', '.join(sorted(map(str, known)))}.")


def check_kinds(cls: type, values: dict) -> None:
    """One sentence for a field `cls` does not have, a number given as text, or a choice not offered,
    before the config is built (its own __post_init__ then checks ranges)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(cls.__name__, values, fields, "field")
    for name, v in values.items():
        default = fields[name].default
        if isinstance(default, enum.Enum):
            choices = [c.value for c in type(default)]
            if (v.value if isinstance(v, enum.Enum) else v) not in choices:
                raise SpecError(f"{cls.__name__}.{name} must be one of {', '.join(choices)}; got {v!r}.")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SpecError(f"{cls.__name__}.{name} must be a number, got {v!r}.")


def make(cls: type, **values) -> Any:
    """`cls(**values)` after `check_kinds`: every bad field is one sentence naming it."""
    check_kinds(cls, values)
    return cls(**values)


def config_to_dict(config: Any, full: bool = False) -> dict:
    """The config's fields that differ from their defaults: a field added later, with a default, leaves
    every stored Spec's JSON (and so its hash, its identity in the store) unchanged. `full`: every field,
    for what a person reads (a model card)."""
    out: dict[str, Any] = {"_type": type(config).__name__}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if not full and f.default is not dataclasses.MISSING and v == f.default:
            continue
        out[f.name] = v.value if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v
    return out


def config_from_dict(d: dict) -> Any:
    d = dict(d)
    name = d.pop("_type", None)
    cls = _CONFIGS.get(name)
    if cls is None:
        raise SpecError(f"Unknown method config {name!r}; known: {', '.join(sorted(_CONFIGS))}.")
    return make(cls, **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
