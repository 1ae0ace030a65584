"""One recipe: distill -> prune -> quantize -> deploy format, any step optional.

A `Spec` holds one config per step (frozen dataclasses from the method modules). Its
canonical JSON (every config wrapped as {"_type": ..., fields...} inside a
{"_type": "Spec", "_version": ...} envelope) is what gets stored, and the hash of that
JSON is its identity in the results store and in file names. `apply` runs the weight
steps; the deploy step is applied when the file is written (core.runtimes.onnx_io).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from core.inputs.data import DataSet, class_mismatch
from core.inputs.models import LoadedModel
from core.inputs.train import Progress

# the methods register themselves on import; the registry is a leaf they all import
from core.methods import deploy, distill, lottery, prune, quantize, soft_share, variational  # noqa: F401
from core.methods.registry import (SpecError, check_keys, compress, config_from_dict, config_to_dict,  # noqa: F401
                                   why_not)

SPEC_VERSION = 2  # 2: int8 / fp16 moved from `quantize` to their own `deploy` step


@dataclass(frozen=True)
class Spec:
    """distill -> prune -> quantize -> deploy; None skips a step. An empty Spec is the baseline."""
    distill: Any = None
    prune: Any = None
    quantize: Any = None
    deploy: Any = None  # the file format (core.methods.deploy); None: fp32 ONNX

    STEPS = ("distill", "prune", "quantize", "deploy")

    def steps(self) -> list[Any]:
        return [c for c in (self.distill, self.prune, self.quantize, self.deploy) if c is not None]

    def weight_steps(self) -> list[Any]:
        """The steps that change the PyTorch model (all but the deploy format)."""
        return [c for c in (self.distill, self.prune, self.quantize) if c is not None]

    def to_dict(self, full: bool = False) -> dict:
        """The canonical form (fields at their defaults left out); `full=True` spells every field out."""
        return {"_type": "Spec", "_version": SPEC_VERSION,
                **{s: config_to_dict(getattr(self, s), full) if getattr(self, s) is not None else None
                   for s in self.STEPS}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        if not isinstance(d, dict) or d.get("_type") != "Spec":
            raise SpecError("Not a Spec: the JSON lacks '_type': 'Spec'.")
        if d.get("_version", 0) > SPEC_VERSION:
            raise SpecError(f"This Spec was written by a newer edgetrim (version {d['_version']}); upgrade to read it.")
        check_keys("The Spec", d, {"_type", "_version", *cls.STEPS})  # a misspelt step would be skipped unseen
        for s in cls.STEPS:
            if d.get(s) and not isinstance(d[s], dict):
                raise SpecError(f"The Spec's {s!r} must be a method config such as {{\"_type\": \"WeightQuant\", "
                                f"\"bits\": 4}}, not {d[s]!r}.")
        steps = {s: config_from_dict(d[s]) if d.get(s) else None for s in cls.STEPS}
        if isinstance(steps["quantize"], (deploy.Int8, deploy.Float16)):  # version 1 kept formats under quantize
            steps["deploy"], steps["quantize"] = steps["quantize"], None
        return cls(**steps)

    @classmethod
    def from_json(cls, s: str) -> "Spec":
        return cls.from_dict(json.loads(s))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def prefix(self) -> "Spec":
        """The distill -> prune part, which sweeps compute once for all quantizations of it."""
        return Spec(distill=self.distill, prune=self.prune)

    @property
    def family(self) -> str:
        """'baseline', 'pruning', 'quantization', 'combined' (pruned and quantized; int8 / fp16 files count as
        quantization), or for any student, whatever is done to it after: 'distillation' (distilled) or
        'student alone' (the same student on hard labels). Students are their own family, so their front stands
        beside the teacher's pruned and quantized fronts. A ratio or width set layer by layer (core.engine.layerwise) is
        'per-layer', so searched settings have their own front beside the uniform ones."""
        if self.distill is not None:
            return "student alone" if self.distill.alone else "distillation"
        if getattr(self.prune, "layer_ratios", ()) or getattr(self.quantize, "layer_bits", ()):
            return "per-layer"
        kinds = list(dict.fromkeys(k for k, s in (("pruning", self.prune), ("quantization", self.quantize),
                                                   ("quantization", self.deploy)) if s is not None))
        return "baseline" if not kinds else kinds[0] if len(kinds) == 1 else "combined"

    @property
    def label(self) -> str:
        """What a person reads: every ratio, bit width, width and kind, e.g.
        'prune 50 % of weights (unstructured, global) → 4-bit weights (per-channel) → int8 file (static)'."""
        return " → ".join(c.label for c in self.steps()) or "baseline (fp32)"


def why_not_spec(model: LoadedModel, data: DataSet, spec: Spec) -> str | None:
    """One sentence on why `spec` cannot run on this model and data, or None: checked before any work."""
    mismatch = class_mismatch(data, model.name, model.num_classes)
    if mismatch:
        return mismatch
    steps = [spec.distill] if spec.distill is not None else spec.weight_steps()  # after it: the student's to check
    return next((r for r in (why_not(model, c) for c in steps) if r), None)


def apply(model: LoadedModel, spec: Spec, data: DataSet, progress: Progress | None = None) -> LoadedModel:
    """Run the weight steps of the recipe; each returns a new model. The deploy format is not applied here."""
    for config in spec.weight_steps():
        model = compress(model, config, data, progress)
    return model
