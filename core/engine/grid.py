"""The grid: a small sweep file of axes becomes a list of Specs (core.engine.runner measures them).

A sweep file (YAML or JSON, or the same as a dict):

    run: lenet5-default           # the run's name in the store (default: the file's stem)
    model: lenet5                 # a sample, or {path:, arch:, input_shape: [C, H, W], num_classes:}
    data: digits                  # or an .npz / ImageFolder / IDX directory
    axes:
      student_width: [1.0, 0.5]   # 1.0 = the teacher itself (no distillation)
      student: [lenet5, lenet5@0.5, mlp-800-800]   # students of other architectures, at a width (@0.5)
      student_training: [distilled, alone]         # alone: the same student on hard labels, the baseline
      prune: [unstructured, structured, lottery]   # lottery: iterative pruning with rewinding (core.methods.lottery)
      prune_ratio: [0.0, 0.5, 0.9]
      prune_importance: [magnitude, taylor]   # what is removed first: small |w| (L2 norms), or small |w * dL/dw|;
                                              # hessian (structured only): Torch-Pruning's second-order score
      finetune_epochs: [2]
      quantize: [fp32, w4, qat3]  # weights: fp32 | w2..w8 | qat2..qat8 | share2..share8 | dc2..dc8 | soft2..soft8
                                  # | vd2..vd8, vd (sparse variational dropout; vd: widths from the posterior)
                                  # | bayes, bayes2..bayes8 (the same, whole units removed too)
                                  # (int8 / fp16 accepted: see deploy)
      deploy: [fp32, int8]        # the file: fp32 | fp16 | int8 | int8-dynamic | int4 (4-bit Linear weights) | w4a8
    settings:                     # fixed knobs of each method
      distill: {epochs: 30, temperature: 4.0, alpha: 0.9}
      prune: {scope: global, importance: l2, steps: 1}
      lottery: {rounds: 5, rewind: weights, rewind_to: 0.02, epochs: 0}   # rewind: lr for your own model; epochs
                                  # per round (0: the sample's recipe); a finetune_epochs axis value above 0 overrides
      qat_epochs: 3               # the training epochs of qat, dc (centroid tuning), soft, vd and bayes tokens
      quantize: {conv_bits: 8}    # any further field of the weight-format configs that has it (lr, tau, ...)
      budget: {samples_per_epoch: 10000, patience: 2}   # every training step on big data (MNIST): optional
      device: auto                # where training and PyTorch evaluation run: auto | cpu | cuda | cuda:N | mps
                                  # (auto: a GPU when torch sees one; files are still scored in their runtimes)
    measure: {latency: true, budget_s: 0.1, threads: null,   # threads: 1 approximates a small board (a device profile)
              runtimes: [onnxruntime, pytorch],              # + executorch (.pte, XNNPACK), litert (.tflite), onnxruntime-cuda (a GPU)
              subset: 2000,               # optional: score each point on 2,000 seeded val and test images; the
                                          # points on a front are then scored whole (core.results.subset)
              board: nano33ble}           # optional: a microcontroller (core.runtimes.micro.BOARDS); adds litert, whose
                                          # file's flash and RAM are measured, and says which points fit on it
    search: {trials: 30, sampler: nsga2, objectives: [accuracy, size]}   # optional, instead of the grid
    # (accuracy is judged on the validation split; judge_on: test searches on the test split instead)
    # or a ratio and a width per layer, searched beside the grid of the axes (core.engine.layerwise):
    # search: {space: per-layer, trials: 60, objectives: [accuracy, archive], max_bytes: 30000}

The grid is in the canonical order distill -> prune -> quantize -> deploy, baseline first.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.inputs import device
from core.methods import deploy, quantize
from core.methods import spec as S
from core.methods.distill import Distill
from core.methods.lottery import LotteryTicket
from core.methods.prune import StructuredPrune, UnstructuredPrune
from core.methods.registry import SpecError, check_kinds, make
from core.methods.soft_share import SoftShare
from core.methods.variational import VariationalDropout

AXES = {"student_width": [1.0], "student": [], "student_training": ["distilled"], "prune": ["unstructured"],
        "prune_ratio": [0.0], "prune_importance": ["magnitude"], "finetune_epochs": [0], "quantize": ["fp32"],
        "deploy": ["fp32"]}
TOP_KEYS = {"run", "model", "data", "axes", "settings", "measure", "search"}
SETTINGS = {"distill", "prune", "lottery", "qat_epochs", "quantize", "budget", "device"}
TOKEN_FIELDS = {"bits", "components", "qat_epochs", "finetune_epochs", "epochs", "groups"}  # what a token itself sets
BUDGET_KEYS = {"samples_per_epoch", "patience"}
MEASURE_KEYS = {"latency", "budget_s", "threads", "runtimes", "board", "device", "subset"}
MAX_POINTS = 5000
MIN_SUBSET = 100  # fewer images give intervals too wide to settle anything
PRUNE_IMPORTANCE = ("magnitude", "taylor", "hessian")
PRUNE_KINDS = ("unstructured", "structured", "lottery")


class SweepError(ValueError):
    """A sweep file that cannot run; the message names the key and what it accepts."""


@dataclass(frozen=True)
class SweepConfig:
    run: str
    model: Any
    data: str = "digits"
    axes: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    measure: dict = field(default_factory=dict)
    search: dict | None = None

    def to_dict(self) -> dict:
        return {"run": self.run, "model": self.model, "data": self.data, "axes": self.axes,
                "settings": self.settings, "measure": self.measure, "search": self.search}


def load_config(source: str | Path | dict) -> SweepConfig:
    """A validated SweepConfig from a YAML/JSON file or a dict."""
    if isinstance(source, dict):
        raw, stem = source, "sweep"
    else:
        path = Path(source)
        if not path.is_file():
            raise SweepError(f"No sweep file at {path}.")
        text = path.read_text()
        try:
            if path.suffix == ".json":
                raw = json.loads(text)
            else:
                import yaml
                raw = yaml.safe_load(text)
        except Exception as e:
            raise SweepError(f"{path.name} is not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e}).") from e
        stem = path.stem
    if not isinstance(raw, dict):
        raise SweepError("A sweep file must be a mapping with at least 'model' and 'axes'.")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise SweepError(f"Unknown sweep key {unknown[0]!r}; a sweep file may have {', '.join(sorted(TOP_KEYS))}.")
    if "model" not in raw:
        raise SweepError("The sweep file needs a 'model' (a sample name or {path:, arch:, input_shape:}).")
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict):
        raise SweepError("'axes' must be a mapping of axis name to a list of values.")
    axes = dict(axes)
    for name, values in axes.items():
        if name not in AXES:
            raise SweepError(f"Unknown axis {name!r}; the axes are {', '.join(AXES)}.")
        if isinstance(values, (str, int, float)):  # `prune_ratio: 0.5`: an axis of one value
            values = axes[name] = [values]
        if values is not None and not isinstance(values, list):
            raise SweepError(f"Axis {name!r} must be a list of values (or one value), e.g. {name}: "
                             f"{AXES[name] or ['lenet5']}; got {values!r}.")
        if not values and name != "student":  # (None too: `prune_ratio:` with nothing after it)
            raise SweepError(f"Axis {name!r} is empty; give it a list of at least one value.")
    axes = {**AXES, **axes}
    _check_axes(axes)
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise SweepError("'settings' must be a mapping, e.g. {prune: {scope: layer}, qat_epochs: 3}.")
    bad = sorted(set(settings) - SETTINGS)
    if bad:
        raise SweepError(f"Unknown setting {bad[0]!r}; settings are {', '.join(sorted(SETTINGS))}.")
    _check_setting_keys(settings)
    bad = sorted(set(settings.get("budget") or {}) - BUDGET_KEYS)
    if bad:
        raise SweepError(f"Unknown budget setting {bad[0]!r}; a budget may have {', '.join(sorted(BUDGET_KEYS))}.")
    known = {f.name for c in (quantize.WeightQuant, quantize.WeightShare, SoftShare, VariationalDropout)
             for f in dataclasses.fields(c)}
    known -= TOKEN_FIELDS
    given = set(settings.get("quantize") or {})
    bad = sorted(given & TOKEN_FIELDS)
    if bad:
        raise SweepError(f"The quantize setting {bad[0]!r} is set by each token (w4, dc5, soft4, ...) and by qat_epochs; "
                         "put the widths on the quantize axis instead.")
    bad = sorted(given - known)
    if bad:
        raise SweepError(f"Unknown quantize setting {bad[0]!r}; the weight formats' fields are {', '.join(sorted(known))}.")
    measure = raw.get("measure") or {}
    bad = sorted(set(measure) - MEASURE_KEYS)
    if bad:
        raise SweepError(f"Unknown measure option {bad[0]!r}; options are {', '.join(sorted(MEASURE_KEYS))}.")
    threads = measure.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise SweepError(f"measure.threads must be a whole number of at least 1 (or null for all), not {threads!r}.")
    if "runtimes" in measure:
        from core.runtimes.measure import check_runtimes

        try:
            measure = {**measure, "runtimes": list(check_runtimes(measure["runtimes"]))}
        except ValueError as e:
            raise SweepError(f"measure.runtimes: {e}") from None
    if "board" in measure:
        from core.runtimes import micro
        from core.runtimes.measure import RUNTIMES

        try:
            micro.board(measure["board"])
        except ValueError as e:
            raise SweepError(f"measure.board: {e}") from None
        runtimes = list(measure.get("runtimes") or RUNTIMES)
        measure = {**measure, "runtimes": runtimes + ["litert"] * ("litert" not in runtimes)}
    n = measure.get("subset")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < MIN_SUBSET):
        raise SweepError(f"measure.subset is a whole number of images, at least {MIN_SUBSET}, not {n!r}.")
    try:  # the device travels with the measure options to every executor's workers (not part of a point's key)
        measure = {**measure, "device": device.parse(settings.get("device", measure.get("device")))}
    except device.DeviceError as e:
        raise SweepError(f"settings.device: {e}") from None
    budget = measure.get("budget_s", 0.1)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 60:
        raise SweepError(f"measure.budget_s must be a number of seconds in (0, 60], not {budget!r}.")
    search = raw.get("search")
    if search is not None:
        _check_search(search, measure)
    cfg = SweepConfig(str(raw.get("run") or stem), raw["model"], str(raw.get("data", "digits")), axes, settings,
                      measure, search)
    specs = expand(cfg)  # builds every config once, so a bad value fails here, before any work
    if len(specs) > MAX_POINTS:
        raise SweepError(f"The grid has {len(specs)} points, more than {MAX_POINTS}; use 'search' with a trial budget.")
    return cfg


def _check_setting_keys(settings: dict) -> None:
    """Each method's settings, checked as its config checks them even when no point of the grid uses them (a
    misspelt `prune: {scoope: layer}` under a grid without pruning is refused, not ignored)."""
    for name, cls in (("distill", Distill), ("prune", UnstructuredPrune), ("lottery", LotteryTicket),
                      ("budget", None), ("quantize", None)):
        value = settings.get(name)
        if value is not None and not isinstance(value, dict):
            raise SweepError(f"settings.{name} must be a mapping of field names to values, not {value!r}.")
        if cls is not None and value:  # (prune's importance is checked per kind when the grid is built)
            try:
                check_kinds(cls, {k: v for k, v in value.items() if not (name == "prune" and k == "importance")})
            except SpecError as e:
                raise SweepError(str(e)) from None


def _check_search(search, measure: dict) -> None:
    from core.engine.layerwise import SEARCH_KEYS, why_not_search

    trials = search.get("trials", 0) if isinstance(search, dict) else 0
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SweepError("'search' needs a whole number of trials of at least 1, e.g. {trials: 30, sampler: nsga2}.")
    bad = sorted(set(search) - SEARCH_KEYS)
    if bad:
        raise SweepError(f"Unknown search option {bad[0]!r}; options are {', '.join(sorted(SEARCH_KEYS))}.")
    if search.get("space", "axes") not in ("axes", "per-layer"):
        raise SweepError(f"search.space is axes (one value per axis) or per-layer (a ratio and a width per layer), "
                         f"not {search.get('space')!r}.")
    if search.get("sampler", "nsga2") not in ("nsga2", "tpe"):
        raise SweepError(f"search.sampler must be nsga2 or tpe, not {search.get('sampler')!r}.")
    if search.get("judge_on", "val") not in ("val", "test"):
        raise SweepError(f"search.judge_on is val (the validation split, the default) or test, not "
                         f"{search.get('judge_on')!r}.")
    for key in ("max_bytes", "max_latency_ms"):
        v = search.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")):
            raise SweepError(f"search.{key} is a positive number, not {v!r}.")
    if search.get("space") == "per-layer":
        reason = why_not_search(search, measure)
        if reason:
            raise SweepError(reason)
        ft = search.get("finetune_epochs", 0)
        if isinstance(ft, bool) or not isinstance(ft, int) or ft < 0:
            raise SweepError(f"search.finetune_epochs is a whole number of epochs, 0 or more, not {ft!r}.")
    elif set(search) & {"max_bytes", "max_latency_ms", "finetune_epochs", "prune"}:
        raise SweepError("search budgets, prune and finetune_epochs belong to a per-layer search (space: per-layer).")


def _check_axes(axes: dict) -> None:
    for w in axes["student_width"]:
        if not isinstance(w, (int, float)) or not 0 < w <= 1:
            raise SweepError(f"student_width values must be in (0, 1], got {w!r}.")
    for t in axes["student"]:
        parse_student(t)
    for how in axes["student_training"]:
        if how not in ("distilled", "alone"):
            raise SweepError(f"student_training values are 'distilled' or 'alone', not {how!r}.")
    if not axes["student"] and all(w == 1 for w in axes["student_width"]) and "alone" in axes["student_training"]:
        raise SweepError("student_training applies to students: add a student axis (e.g. student: [lenet5]) or a "
                         "student_width below 1.")
    for k in axes["prune"]:
        if k not in PRUNE_KINDS:
            raise SweepError(f"prune values are {', '.join(PRUNE_KINDS)}, not {k!r}.")
    for imp in axes["prune_importance"]:
        if imp not in PRUNE_IMPORTANCE:
            raise SweepError(f"prune_importance values are {', '.join(PRUNE_IMPORTANCE)}, not {imp!r}.")
        if imp == "hessian" and "unstructured" in axes["prune"]:
            raise SweepError("prune_importance hessian is for structured pruning (Torch-Pruning's group Hessian); "
                             "use magnitude or taylor with unstructured.")
    for r in axes["prune_ratio"]:
        if not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise SweepError(f"prune_ratio values must be in [0, 1), got {r!r}.")
    for e in axes["finetune_epochs"]:
        if not isinstance(e, int) or e < 0:
            raise SweepError(f"finetune_epochs values must be whole numbers >= 0, got {e!r}.")
    for q in axes["quantize"]:
        if not isinstance(q, str) or not (quantize.parse_token(q) or q in deploy.TOKENS):
            raise SweepError(f"quantize value {q!r} is not one of fp32, w2..w8, qat2..qat8, share2..share8, dc2..dc8, "
                             f"soft2..soft8, vd / vd2..vd8, bayes / bayes2..bayes8 (bit widths are 2 to 8), or a file "
                             f"format: {', '.join(deploy.TOKENS)}.")
    for f in axes["deploy"]:
        if f not in deploy.TOKENS:
            raise SweepError(f"deploy value {f!r} is not one of {', '.join(deploy.TOKENS)}.")


def parse_student(token: Any) -> tuple[str, float]:
    """'lenet5' -> ('lenet5', 1.0); 'lenet5@0.5' -> ('lenet5', 0.5): a student architecture at a width."""
    from core.inputs.models import is_architecture

    arch, at, width = str(token).partition("@")
    try:
        w = float(width) if width or not at else -1.0
    except ValueError:
        w = -1.0
    if not isinstance(token, str) or not is_architecture(arch) or not 0 < w <= 1:
        raise SweepError(f"student value {token!r} is not an architecture with an optional width in (0, 1]: e.g. "
                         "lenet5, lenet5@0.5, mlp-800-800, resnet18_small@0.25, tv:mobilenet_v3_small@0.5.")
    return arch, w


def steps_of(quant_token: str, deploy_token: str, settings: dict) -> tuple[Any, Any] | None:
    """(quantize config, deploy config) of one grid cell, or None when the cell names two file formats.
    A format token on the quantize axis (int8, fp16: the 0.1 spelling) is the file format, so
    `quantize: [int8]` still means an int8 file."""
    if quant_token in deploy.TOKENS:
        fmt = deploy.from_token(quant_token)
        if fmt is not None and deploy_token != "fp32":
            return None
        return None, fmt or deploy.from_token(deploy_token)
    weights = quantize.from_token(quant_token, int(settings.get("qat_epochs", 3)))
    if weights is not None:
        trains = any(getattr(weights, k, 0) for k in ("qat_epochs", "finetune_epochs", "epochs"))
        fields = {f.name for f in dataclasses.fields(weights)}
        extra = {**(settings.get("budget", {}) if trains else {}), **settings.get("quantize", {})}
        extra = {k: v for k, v in extra.items() if k in fields}
        check_kinds(type(weights), extra)
        weights = dataclasses.replace(weights, **extra)
    return weights, deploy.from_token(deploy_token)


def expand(cfg: SweepConfig) -> list[S.Spec]:
    """The grid in canonical order (distill -> prune -> quantize -> deploy), baseline first, duplicates dropped."""
    a, st = cfg.axes, cfg.settings
    budget = st.get("budget", {})
    try:
        students = [(None, float(w)) for w in a["student_width"]] + [parse_student(t) for t in a["student"]]
        distills = []
        for (arch, w), how in itertools.product(students, a["student_training"]):
            opts = {**budget, **st.get("distill", {}), "width": w, "student": arch}
            if how == "alone":
                opts["alone"] = True
            distills.append(None if arch is None and w == 1 else make(Distill, **opts))
        prunes = []
        for kind, imp, ratio, ft in itertools.product(a["prune"], a["prune_importance"], a["prune_ratio"],
                                                      a["finetune_epochs"]):
            if ratio == 0:
                prunes.append(None)
                continue
            if kind == "lottery":  # iterative magnitude pruning: importance is the trained weights' magnitude
                if imp == "magnitude":  # epochs per round: the finetune_epochs axis when set, else the settings'
                    opts = {**budget, **st.get("lottery", {}), **({"epochs": ft} if ft else {})}
                    prunes.append(make(LotteryTicket, ratio=float(ratio), **opts))
                continue
            opts = {**budget, **st.get("prune", {})}
            opts.pop("importance" if kind == "unstructured" else "scope", None)
            if imp != "magnitude":  # magnitude: the settings' norm (structured l1 / l2)
                opts["importance"] = imp
            cls = UnstructuredPrune if kind == "unstructured" else StructuredPrune
            prunes.append(make(cls, ratio=float(ratio), finetune_epochs=ft, **opts))
        formats = [c for c in (steps_of(q, f, st) for q, f in itertools.product(a["quantize"], a["deploy"])) if c]
    except SpecError as e:
        raise SweepError(str(e)) from e
    seen, specs = set(), [S.Spec()]
    seen.add(S.Spec().hash)
    for d, p, (q, f) in itertools.product(distills, prunes, formats):
        s = S.Spec(distill=d, prune=p, quantize=q, deploy=f)
        if s.hash not in seen:
            seen.add(s.hash)
            specs.append(s)
    return specs
