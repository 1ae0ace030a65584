"""Sweeps: a small file of axes expands into Specs; the runner measures each once and stores it.

A sweep file (YAML or JSON, or the same as a dict):

    run: lenet5-default           # the run's name in the store (default: the file's stem)
    model: lenet5                 # a sample, or {path:, arch:, input_shape: [C, H, W], num_classes:}
    data: digits                  # or an .npz / ImageFolder / IDX directory
    axes:
      student_width: [1.0, 0.5]   # 1.0 = the teacher itself (no distillation)
      prune: [unstructured, structured]
      prune_ratio: [0.0, 0.5, 0.9]
      finetune_epochs: [2]
      quantize: [fp32, int8, w4]  # fp32 | int8 | int8-dynamic | fp16 | w2..w8 | qat2..qat8 | share2..share8
    settings:                     # fixed knobs of each method
      distill: {epochs: 30, temperature: 4.0, alpha: 0.9}
      prune: {scope: global, importance: l2, steps: 1}
      qat_epochs: 3
    measure: {latency: true, budget_s: 0.1, threads: null}
    search: {trials: 30, sampler: nsga2, objectives: [accuracy, size]}   # optional, instead of the grid

The grid runs in the canonical order distill -> prune -> quantize, and the runner
shares the expensive prefix: each student is trained once (and cached on disk), each
pruned model is reused for every quantization of it. Points already in the store are
never recomputed, so a killed sweep resumes where it stopped.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import json
import multiprocessing as mp
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core import data as D
from core import measure as ME
from core import models as M
from core import spec as S
from core.distill import Distill
from core.prune import StructuredPrune, UnstructuredPrune
from core.quantize import Float16, Int8, WeightQuant, WeightShare
from core.store import Point, Store, point_key

AXES = {"student_width": [1.0], "prune": ["unstructured"], "prune_ratio": [0.0], "finetune_epochs": [0],
        "quantize": ["fp32"]}
TOP_KEYS = {"run", "model", "data", "axes", "settings", "measure", "search"}
SETTINGS = {"distill", "prune", "qat_epochs"}
MEASURE_KEYS = {"latency", "budget_s", "threads"}
QUANT_TOKEN = re.compile(r"^(fp32|fp16|int8|int8-dynamic|(w|qat|share)([2-8]))$")
MAX_POINTS = 5000

Progress = Callable[[int, int, str], None]


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
    for name, values in axes.items():
        if name not in AXES:
            raise SweepError(f"Unknown axis {name!r}; the axes are {', '.join(AXES)}.")
        if not isinstance(values, list) or not values:
            raise SweepError(f"Axis {name!r} is empty; give it a list of at least one value.")
    axes = {**AXES, **axes}
    _check_axes(axes)
    settings = raw.get("settings") or {}
    bad = sorted(set(settings) - SETTINGS)
    if bad:
        raise SweepError(f"Unknown setting {bad[0]!r}; settings are {', '.join(sorted(SETTINGS))}.")
    measure = raw.get("measure") or {}
    bad = sorted(set(measure) - MEASURE_KEYS)
    if bad:
        raise SweepError(f"Unknown measure option {bad[0]!r}; options are {', '.join(sorted(MEASURE_KEYS))}.")
    search = raw.get("search")
    if search is not None:
        if not isinstance(search, dict) or int(search.get("trials", 0)) < 1:
            raise SweepError("'search' needs a number of trials of at least 1, e.g. {trials: 30, sampler: nsga2}.")
        if search.get("sampler", "nsga2") not in ("nsga2", "tpe"):
            raise SweepError(f"search.sampler must be nsga2 or tpe, not {search.get('sampler')!r}.")
    cfg = SweepConfig(str(raw.get("run") or stem), raw["model"], str(raw.get("data", "digits")), axes, settings,
                      measure, search)
    specs = expand(cfg)  # builds every config once, so a bad value fails here, before any work
    if len(specs) > MAX_POINTS:
        raise SweepError(f"The grid has {len(specs)} points, more than {MAX_POINTS}; use 'search' with a trial budget.")
    return cfg


def _check_axes(axes: dict) -> None:
    for w in axes["student_width"]:
        if not isinstance(w, (int, float)) or not 0 < w <= 1:
            raise SweepError(f"student_width values must be in (0, 1], got {w!r}.")
    for k in axes["prune"]:
        if k not in ("unstructured", "structured"):
            raise SweepError(f"prune values are 'unstructured' or 'structured', not {k!r}.")
    for r in axes["prune_ratio"]:
        if not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise SweepError(f"prune_ratio values must be in [0, 1), got {r!r}.")
    for e in axes["finetune_epochs"]:
        if not isinstance(e, int) or e < 0:
            raise SweepError(f"finetune_epochs values must be whole numbers >= 0, got {e!r}.")
    for q in axes["quantize"]:
        if not isinstance(q, str) or not QUANT_TOKEN.match(q):
            raise SweepError(f"quantize value {q!r} is not one of fp32, fp16, int8, int8-dynamic, w2..w8, "
                             "qat2..qat8, share2..share8 (bit widths are 2 to 8).")


def quant_config(token: str, settings: dict):
    """'w4' -> WeightQuant(4), 'qat3' -> WeightQuant(3, qat_epochs=...), 'share4', 'int8', 'fp16', 'fp32' -> None."""
    if token == "fp32":
        return None
    if token == "fp16":
        return Float16()
    if token in ("int8", "int8-dynamic"):
        return Int8(mode="dynamic" if token == "int8-dynamic" else "static")
    m = QUANT_TOKEN.match(token)
    kind, bits = m.group(2), int(m.group(3))
    if kind == "w":
        return WeightQuant(bits)
    if kind == "qat":
        return WeightQuant(bits, qat_epochs=int(settings.get("qat_epochs", 3)))
    return WeightShare(bits)


def expand(cfg: SweepConfig) -> list[S.Spec]:
    """The grid in canonical order (distill -> prune -> quantize), baseline first, duplicates dropped."""
    a, st = cfg.axes, cfg.settings
    try:
        distills = [None if w == 1 else Distill(width=float(w), **st.get("distill", {})) for w in a["student_width"]]
        prunes = []
        for kind, ratio, ft in itertools.product(a["prune"], a["prune_ratio"], a["finetune_epochs"]):
            if ratio == 0:
                prunes.append(None)
                continue
            opts = dict(st.get("prune", {}))
            opts.pop("importance" if kind == "unstructured" else "scope", None)
            make = UnstructuredPrune if kind == "unstructured" else StructuredPrune
            prunes.append(make(ratio=float(ratio), finetune_epochs=ft, **opts))
        quants = [quant_config(q, st) for q in a["quantize"]]
    except TypeError as e:
        raise SweepError(f"A setting is not a field of its method ({e}).") from e
    seen, specs = set(), [S.Spec()]
    seen.add(S.Spec().hash)
    for d, p, q in itertools.product(distills, prunes, quants):
        s = S.Spec(distill=d, prune=p, quantize=q)
        if s.hash not in seen:
            seen.add(s.hash)
            specs.append(s)
    return specs


# ---- running ------------------------------------------------------------------------------

def open_model(source: Any) -> M.LoadedModel:
    if isinstance(source, str):
        if source in M.sample_names():
            return M.load_sample(source)
        if "/" not in source and "." not in source:
            raise M.ModelLoadError(f"No sample model named {source!r}; the samples are "
                                   f"{', '.join(M.sample_names())}, or give a path to a model file.")
        return M.load_model(source)
    if isinstance(source, dict):
        known = {"path", "arch", "input_shape", "num_classes", "arch_kwargs"}
        bad = sorted(set(source) - known)
        if bad or "path" not in source:
            raise SweepError(f"A model mapping needs 'path' and may have {', '.join(sorted(known))}.")
        return M.load_model(source["path"], arch=source.get("arch"), input_shape=source.get("input_shape"),
                            num_classes=source.get("num_classes"), arch_kwargs=source.get("arch_kwargs"))
    raise SweepError("'model' must be a sample name, a path, or a mapping with 'path'.")


_CACHE: dict = {}


def load_context(model_source: Any, data_source: str) -> tuple[M.LoadedModel, D.DataSet]:
    """Model and data, loaded once per process."""
    key = (json.dumps(model_source, sort_keys=True), data_source)
    if key not in _CACHE:
        _CACHE[key] = (open_model(model_source), D.load_data(data_source))
    return _CACHE[key]


def model_name(source: Any) -> str:
    return source if isinstance(source, str) and "/" not in source else Path(str(
        source["path"] if isinstance(source, dict) else source)).stem


def measure_specs(model: M.LoadedModel, data: D.DataSet, specs: list[S.Spec], measure_opts: dict,
                  threads: int | None = None):
    """Yield (spec, metrics or None, error or None, seconds) per spec, computing each shared
    distill -> prune prefix once. A spec that raises yields its error; the rest go on."""
    prefixes: dict[str, M.LoadedModel] = {}
    for spec in specs:
        t0 = time.perf_counter()
        try:
            prefix = S.Spec(distill=spec.distill, prune=spec.prune)
            if prefix.hash not in prefixes:
                prefixes[prefix.hash] = S.apply(model, prefix, data)
            out = prefixes[prefix.hash]
            if spec.quantize is not None:
                out = S.compress(out, spec.quantize, data)
            yield spec, ME.measure(out, data, threads=threads, **measure_opts), None, time.perf_counter() - t0
        except Exception as e:
            traceback.print_exc()
            yield spec, None, f"{type(e).__name__}: {e}"[:2000], time.perf_counter() - t0


def run_points(model_source: Any, data_source: str, specs: list[S.Spec], positions: list[int], run: str,
               store_path: str, measure_opts: dict, threads: int | None = None,
               on_point: Callable[[Point], None] | None = None) -> list[str]:
    """Measure the `specs` not yet stored and store each point (in the parent or a worker process)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model, data = load_context(model_source, data_source)
    store = Store(store_path)
    done = []
    try:
        position = dict(zip((s.hash for s in specs), positions))
        fresh = []
        for spec in specs:
            key = point_key(model.fingerprint, data.fingerprint, spec)
            if store.has_ok(key):
                store.link(run, [key])
                done.append(key)
            else:
                fresh.append(spec)
        for spec, metrics, error, seconds in measure_specs(model, data, fresh, measure_opts, threads):
            key = point_key(model.fingerprint, data.fingerprint, spec)
            point = Point(key, model_name(model_source), model.fingerprint, data.name, data.fingerprint, spec,
                          "ok" if error is None else "failed", metrics, error, seconds)
            store.put(point, run, position[spec.hash])
            done.append(key)
            if on_point:
                on_point(point)
    finally:
        store.close()
    return done


def _groups(specs: list[S.Spec]) -> list[list[int]]:
    """Indices of specs grouped by their distill -> prune prefix, so each prefix is computed once."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(S.Spec(distill=s.distill, prune=s.prune).hash, []).append(i)
    return list(groups.values())


@dataclass(frozen=True)
class SweepResult:
    run: str
    total: int
    computed: int
    reused: int
    failed: int
    seconds: float


def run_sweep(cfg: SweepConfig, store: Store, workers: int = 1, progress: Progress | None = None,
              executor: str = "local", address: str | None = None, cpus_per_point: float = 1,
              gpus_per_point: float = 0) -> SweepResult:
    """Run every point of the grid (or the search) not yet stored; Ctrl-C stops after the point in flight.

    executor "local" runs in this process (workers=1) or a process pool; "ray" sends groups of
    points to a Ray cluster (`address`: None starts a local one, "auto" or "ray://host:port" joins one).
    """
    if executor not in ("local", "ray"):
        raise SweepError(f"The executor is 'local' or 'ray', not {executor!r}.")
    t0 = time.perf_counter()
    model, data = load_context(cfg.model, cfg.data)
    store.add_run(cfg.run, cfg.to_dict(), model_name(cfg.model), data.name)
    if cfg.search:
        from core.search import run_search
        return run_search(cfg, store, progress, t0)
    specs = expand(cfg)
    keys = [point_key(model.fingerprint, data.fingerprint, s) for s in specs]
    todo = [i for i, k in enumerate(keys) if not store.has_ok(k)]
    store.link(cfg.run, [k for i, k in enumerate(keys) if i not in set(todo)])
    reused = len(specs) - len(todo)
    counter = {"done": reused, "failed": 0}

    def report(point: Point | None = None, msg: str = "") -> None:
        if point is not None:
            counter["done"] += 1
            counter["failed"] += point.status == "failed"
            msg = f"{point.spec.label} -> {point.status}"
        if progress:
            progress(counter["done"], len(specs), msg)

    report(msg=f"{reused} of {len(specs)} points already stored")
    todo_specs = [specs[i] for i in todo]
    if executor == "ray" and todo:
        from core.ray_executor import run_ray

        run_ray(cfg, store, todo_specs, todo, _groups(todo_specs), report, address, cpus_per_point, gpus_per_point)
    elif workers <= 1 or len(todo) <= 1:
        run_points(cfg.model, cfg.data, todo_specs, todo, cfg.run, str(store.path), cfg.measure,
                   threads=cfg.measure.get("threads"), on_point=report)
    else:
        _run_parallel(cfg, store, todo_specs, todo, workers, report)
    return SweepResult(cfg.run, len(specs), len(todo), reused, counter["failed"], time.perf_counter() - t0)


def _run_parallel(cfg: SweepConfig, store: Store, specs: list[S.Spec], positions: list[int], workers: int,
                  report: Callable) -> None:
    """Groups of points in worker processes; progress read back from the store as points land."""
    import os

    threads = cfg.measure.get("threads") or max(1, (os.cpu_count() or 1) // workers)
    # students first, one per worker, so no two workers train the same one
    students = {s.distill for s in specs if s.distill is not None}
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        try:
            if students:
                list(pool.map(_train_student, [(cfg.model, cfg.data, d, threads) for d in students]))
            futures = [pool.submit(run_points, cfg.model, cfg.data, [specs[i] for i in g], [positions[i] for i in g],
                                   cfg.run, str(store.path), cfg.measure, threads) for g in _groups(specs)]
            seen = {p.key for p in store.points(cfg.run)}
            while futures:
                finished, pending = cf.wait(futures, timeout=0.5)
                for f in finished:
                    f.result()
                for p in _new_points(store, cfg.run, seen):
                    report(p)
                futures = list(pending)
            for p in _new_points(store, cfg.run, seen):
                report(p)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise


def _new_points(store: Store, run: str, seen: set[str]) -> list[Point]:
    fresh = [p for p in store.points(run) if p.key not in seen]
    seen.update(p.key for p in fresh)
    return [p for p in fresh if p.seconds is not None]


def _train_student(args) -> None:
    model_source, data_source, distill_cfg, threads = args
    import torch

    torch.set_num_threads(threads)
    model, data = load_context(model_source, data_source)
    S.compress(model, distill_cfg, data)
