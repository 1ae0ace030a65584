"""The one runner: measure a group of Specs on one model and data, and store each point.

Every executor uses it unchanged: the CLI's in-process sweep, the process pool, Ray
and the Optuna search call `run_group` (in process, with the open store) or ship
`measure_task` to a worker and hand the outcomes back to `record` in the driver, so
only the driver ever writes to the store and a password in a store URL never leaves it.
A group shares its distill -> prune prefix: each student is trained once (and cached on
disk), each pruned model is reused for every quantization and file format of it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from core.inputs import data as D
from core.inputs import device as DV
from core.inputs import models as M
from core.inputs.cancel import Cancelled
from core.inputs.train import Progress
from core.methods import spec as S
from core.methods.registry import check_keys
from core.results import describe
from core.results.artefacts import Artefact, Folder
from core.results.store import Point, Store, point_key
from core.runtimes import measure as ME

log = logging.getLogger("edgetrim")


class RunError(ValueError):
    """A model, data or spec that cannot run together; one sentence, said before any work."""


@dataclass(frozen=True)
class Outcome:
    """What measuring one Spec gave: metrics, or the one-line error that stopped it."""
    spec: S.Spec
    metrics: ME.Metrics | None
    error: str | None
    seconds: float
    artefacts: tuple[Artefact, ...] = ()  # the files it was measured on, kept (core.results.artefacts)


@dataclass(frozen=True)
class SweepResult:
    run: str
    total: int
    computed: int
    reused: int
    failed: int
    seconds: float
    errors: tuple[str, ...] = ()  # distinct causes of the failed points
    search_seconds: float | None = None  # a per-layer search's own time, beside its uniform grid
    settled: int | None = None  # scored on a subset: how many points were then scored on the whole splits


# ---- models and data -------------------------------------------------------------------

def open_model(source: Any) -> M.LoadedModel:
    """A sample name, a model file path, or {path, arch, input_shape, num_classes, arch_kwargs}."""
    if isinstance(source, str):
        if source in M.sample_names():
            return M.load_sample(source)
        if "/" not in source and "." not in source:
            raise M.ModelLoadError(f"No sample model named {source!r}; the samples are "
                                   f"{', '.join(M.sample_names())}, or give a path to a model file.")
        return M.load_model(source)
    if isinstance(source, dict):
        known = {"path", "arch", "input_shape", "num_classes", "arch_kwargs"}
        try:
            check_keys("The model mapping", source, known)  # a misspelt `archh:` is named, never ignored
        except S.SpecError as e:
            raise RunError(str(e)) from None
        if "path" not in source:
            raise RunError(f"A model mapping needs 'path' (the model file) and may have {', '.join(sorted(known))}.")
        return M.load_model(source["path"], arch=source.get("arch"), input_shape=source.get("input_shape"),
                            num_classes=source.get("num_classes"), arch_kwargs=source.get("arch_kwargs"))
    raise RunError("'model' must be a sample name, a path, or a mapping with 'path'.")


model_name = describe.source_name  # a sample's name, or the model file's stem


@functools.lru_cache(maxsize=4)
def _context(model_json: str, data_source: str) -> tuple[M.LoadedModel, D.DataSet]:
    return open_model(json.loads(model_json)), D.load_data(data_source)


def load_context(model_source: Any, data_source: str) -> tuple[M.LoadedModel, D.DataSet]:
    """Model and data, loaded once per process (the last few kept)."""
    return _context(json.dumps(model_source, sort_keys=True), data_source)


def preflight(model: M.LoadedModel, data: D.DataSet, specs: list[S.Spec]) -> None:
    """Refuse, before any work, a sweep in which some point cannot run on this model and data."""
    reasons = {}
    for spec in specs:
        reason = S.why_not_spec(model, data, spec)
        if reason:
            reasons.setdefault(reason, spec.label)
    if reasons:
        reason, label = next(iter(reasons.items()))
        more = f" ({len(reasons) - 1} other reason(s) too)" if len(reasons) > 1 else ""
        raise RunError(f"Nothing was run: {reason}{more} (first seen at the point '{label}').")


# ---- measuring -------------------------------------------------------------------------

def measure_group(model: M.LoadedModel, data: D.DataSet, specs: list[S.Spec], measure_opts: dict,
                  progress: Progress | None = None, partial=None) -> Iterator[Outcome]:
    """One Outcome per spec, computing each shared distill -> prune prefix once. A spec that raises
    gives its error as one line (the traceback goes to the 'edgetrim' logger at debug level); a cancelled job
    (core.inputs.cancel) stops the group. `measure_opts['keep']`, a folder, keeps each point's files there
    (core.results.artefacts); `partial` hears each point's numbers as they come (core.runtimes.measure.measure)."""
    opts = dict(measure_opts)
    opts.pop("board", None)  # what the points are judged against, not how they are measured
    asked = opts.pop("device", None)  # where training and PyTorch evaluation run (files run on the CPU); when the
    dev = DV.resolve(asked) if asked else DV.current()  # options name none, the caller's (core.inputs.device.using)
    keep = Folder(opts.pop("keep")) if opts.get("keep") else None
    prefixes: dict[str, M.LoadedModel] = {}
    for spec in specs:
        t0 = time.perf_counter()
        try:
            with DV.using(dev):
                if spec.prefix.hash not in prefixes:
                    prefixes[spec.prefix.hash] = S.apply(model, spec.prefix, data, progress)
                out = prefixes[spec.prefix.hash]
                if spec.quantize is not None:
                    out = S.compress(out, spec.quantize, data, progress)
                with tempfile.TemporaryDirectory(prefix="edgetrim-point-") as tmp:
                    metrics = ME.measure(out, data, spec.deploy, progress=progress, partial=partial,
                                         keep_dir=tmp if keep else None, **opts)
                    kept = keep.keep_all(tmp) if keep else ()
            metrics = dataclasses.replace(metrics, trained_on=DV.describe(dev))
            yield Outcome(spec, metrics, None, time.perf_counter() - t0, kept)
        except Cancelled:
            raise
        except Exception as e:
            log.debug("point %s failed", spec.label, exc_info=True)
            message = (str(e).splitlines() or [""])[0][:500]
            yield Outcome(spec, None, f"{type(e).__name__}: {message}", time.perf_counter() - t0)


def profile(measure_opts: dict) -> str:
    """The device profile a sweep times under, part of each point's key when set: 'threads=1', or '' (all cores)."""
    return f"threads={int(measure_opts['threads'])}" if measure_opts.get("threads") else ""


def covers(point: Point | None, model: M.LoadedModel, measure_opts: dict) -> bool:
    """Whether a stored point already has what this sweep asks for: measured, with a file and a latency on every
    runtime asked for that runs it here. A point that lacks one is measured again (and its record replaced)."""
    if point is None or point.status != "ok" or point.metrics is None:
        return False
    if point.metrics.eval_subset is not None and not measure_opts.get("subset"):
        return False  # scored on a subset; this sweep scores the whole splits
    for r in ME.check_runtimes(measure_opts.get("runtimes") or ME.RUNTIMES):
        if ME.why_unavailable(r) or ME.why_not_on(r, model, point.spec.deploy):
            continue
        file = point.metrics.file(r)
        if (r in ("executorch", "litert") and file is None) or \
                (measure_opts.get("latency", True) and point.metrics.latency_ms(r) is None) or \
                (measure_opts.get("board") and r == "litert" and file.ram_bytes is None):
            return False
    return True


def record(store: Store, run: str, source: Any, model: M.LoadedModel, data: D.DataSet, outcome: Outcome,
           position: int, measure_opts: dict | None = None) -> Point:
    """The Point of an Outcome, written to the store in one transaction."""
    key = point_key(model.fingerprint, data.fingerprint, outcome.spec, profile(measure_opts or {}))
    point = Point(key, model_name(source), model.fingerprint,
                  data.name, data.fingerprint, outcome.spec, "ok" if outcome.error is None else "failed",
                  outcome.metrics, outcome.error, outcome.seconds)
    store.put(point, run, position, outcome.artefacts)
    if outcome.artefacts:
        store.artefact_folder().evict()  # within its size bound; the numbers stay whatever is evicted
    return point


def keeping(measure_opts: dict, store: Store) -> dict:
    """`measure_opts` with the store's artefact folder to keep each point's files in (unless one is set)."""
    return {"keep": str(store.artefact_folder().root), **measure_opts}


def run_group(store: Store, run: str, source: Any, data_source: str, specs: list[S.Spec], positions: list[int],
              measure_opts: dict, on_point: Callable[[Point], None] | None = None,
              progress: Progress | None = None, store_failures: bool = True, partial=None) -> list[Point]:
    """Measure the `specs` not yet stored and store each point; return every point of the group.

    `store_failures=False` (the dashboard's Explore) raises instead of storing a failed point,
    so an app-side failure never becomes the point's stored result.
    """
    model, data = load_context(source, data_source)
    done, fresh = [], []
    position = dict(zip((s.hash for s in specs), positions))
    for spec in specs:
        stored = store.get(point_key(model.fingerprint, data.fingerprint, spec, profile(measure_opts)))
        if covers(stored, model, measure_opts):
            store.link(run, [stored.key])
            done.append(stored)
        else:
            fresh.append(spec)
    for outcome in measure_group(model, data, fresh, keeping(measure_opts, store), progress, partial):
        if outcome.error is not None and not store_failures:
            raise RunError(f"{outcome.spec.label} could not be computed ({outcome.error}).")
        point = record(store, run, source, model, data, outcome, position[outcome.spec.hash], measure_opts)
        done.append(point)
        if on_point:
            on_point(point)
    return done


def retime(store: Store, point: Point, budget_s: float = ME.TIME_BUDGET_S) -> tuple[ME.Latency, ...] | None:
    """A stored point's latencies timed again from its kept files, on the runtimes, batches and threads it was timed
    with (nothing rebuilt); None when its files are gone."""
    from core.runtimes import archive

    kept = store.artefacts(point.key)
    old = point.metrics.latency
    if not kept or not old:
        return None
    model = archive.load_archive(kept["archive"]) if "archive" in kept else None
    return ME.retime(kept, model, point.spec.deploy, list(dict.fromkeys(l.runtime for l in old)), old[0].threads,
                     tuple(dict.fromkeys(l.batch for l in old)), budget_s)


@dataclass(frozen=True)
class Retimed:
    """What re-timing a run did: points timed again, of them still busy, and the labels of those with no kept files."""
    done: int
    still_busy: int
    gone: tuple[str, ...]


def busy_points(store: Store, run: str, every: bool = False) -> list[Point]:
    """The run's measured points with a latency marked busy (every timed point with `every`)."""
    return [p for p in store.points(run) if p.status == "ok" and p.metrics and p.metrics.latency
            and (every or any(l.busy for l in p.metrics.latency))]


def retime_run(store: Store, run: str, every: bool = False, progress: Progress | None = None) -> Retimed:
    """Time a run's busy points (every point with `every`) again from their kept files and store the new
    latencies in place of the old (nothing is rebuilt; a point without kept files is left as it was)."""
    import dataclasses

    points = busy_points(store, run, every)
    done, still, gone = 0, 0, []
    for i, p in enumerate(points):
        if progress:
            progress(i, len(points), f"re-timing {p.spec.label}")
        new = retime(store, p)
        if new is None:
            gone.append(p.spec.label)
            continue
        timed = {(l.runtime, l.batch) for l in new}
        latency = tuple(new) + tuple(l for l in p.metrics.latency if (l.runtime, l.batch) not in timed)
        store.put(dataclasses.replace(p, metrics=dataclasses.replace(p.metrics, latency=latency)))
        done += 1
        still += any(l.busy for l in new)
    return Retimed(done, still, tuple(gone))


# ---- points scored on a subset, settled on the whole splits -------------------------------------------

def settle(store: Store, run: str, keys: list[str], progress: Progress | None = None) -> int:
    """Score the run's subset points `keys` on the whole validation and test splits (core.results.subset): from
    their kept files, or, where those are gone, computed again. Returns how many were settled."""
    cfg = store.run_config(run)
    model, data = load_context(cfg["model"], cfg["data"])
    measure_opts = {k: v for k, v in (cfg.get("measure") or {}).items() if k != "subset"}
    points = {p.key: p for p in store.points(run)}
    done = 0
    for i, key in enumerate(keys):
        p = points.get(key)
        if p is None or p.metrics is None or p.metrics.eval_subset is None:
            continue
        if progress:
            progress(i, len(keys), f"scoring {p.spec.label} on the whole validation and test splits")
        metrics = _rescored(store, p, data)
        if metrics is None:  # its files are gone: computed again, on the whole splits
            outcome = next(measure_group(model, data, [p.spec], keeping(measure_opts, store)))
            if outcome.error is not None:
                raise RunError(f"{p.spec.label} could not be scored on the whole splits ({outcome.error}).")
            store.put(dataclasses.replace(p, metrics=outcome.metrics), artefacts=outcome.artefacts)
        else:
            store.put(dataclasses.replace(p, metrics=metrics))
        done += 1
    if progress:
        progress(len(keys), len(keys), f"{done} point(s) scored on the whole splits")
    return done


def _rescored(store: Store, point: Point, data: D.DataSet) -> ME.Metrics | None:
    from core.runtimes import archive

    kept = store.artefacts(point.key)
    if not kept:
        return None
    model = archive.load_archive(kept["archive"]) if "archive" in kept else None
    return ME.rescore(point.metrics, kept, model, data)


def settle_run(store: Store, run: str, progress: Progress | None = None) -> int:
    """After a sweep scored on a subset: settle its baseline and the points on a front (core.results.subset)."""
    from core.results import subset

    return settle(store, run, subset.to_confirm(store.table(run)), progress)


def confirmed_pick(store: Store, run: str, choose: Callable, progress: Progress | None = None):
    """`choose(table)` (a core.results.pareto.Pick) made on the whole splits: subset points are judged by the high
    end of their intervals; a subset point chosen (or a subset baseline, where every drop starts) is scored on the
    whole splits and the choice made again, until it falls on a point scored whole."""
    import pandas as pd

    from core.results import subset

    for _ in range(len(store.points(run)) + 2):  # each turn settles one point
        df = store.table(run)
        base = df[(df["family"] == "baseline") & df["eval_subset"].notna()]
        if len(base):
            settle(store, run, list(base["key"]), progress)
            continue
        choice = choose(subset.optimistic(df))
        if pd.isna(choice.row.get("eval_subset")):
            return choice
        settle(store, run, [choice.row["key"]], progress)
    raise RunError(f"The pick of run {run!r} could not be settled on the whole splits.")


# ---- in worker processes (process pool, Ray) ------------------------------------------------

def _resolve(context) -> tuple[M.LoadedModel, D.DataSet]:
    """A context is (model, data) already loaded (Ray's object store) or (model source, data source)."""
    first, second = context
    return (first, second) if isinstance(first, M.LoadedModel) else load_context(first, second)


def _threads(measure_opts: dict) -> None:
    import torch

    if measure_opts.get("threads"):
        torch.set_num_threads(int(measure_opts["threads"]))


def measure_task(context, specs: list[S.Spec], measure_opts: dict) -> list[Outcome]:
    """One worker task: a group of specs; never raises for one bad point."""
    _threads(measure_opts)
    model, data = _resolve(context)
    return list(measure_group(model, data, specs, measure_opts))


def train_student_task(context, distill_config, measure_opts: dict) -> None:
    """Train (and cache on disk) one student, so no two workers train the same one."""
    _threads(measure_opts)
    model, data = _resolve(context)
    with DV.using(measure_opts.get("device")):
        S.compress(model, distill_config, data)


def groups(specs: list[S.Spec]) -> list[list[int]]:
    """Indices of specs grouped by their distill -> prune prefix, so each prefix is computed once."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        out.setdefault(s.prefix.hash, []).append(i)
    return list(out.values())
