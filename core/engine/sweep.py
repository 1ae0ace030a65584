"""Run a sweep: its points (a grid from core.engine.grid, or an Optuna search) measured into the store.

    result = run_sweep(load_config("sweeps/default.yaml"), Store(), workers=2)

Executors only decide where core.engine.runner's work happens: "local" runs the groups in
this process (workers=1) or in a process pool, "ray" sends them to a Ray cluster, and a
sweep file with `search:` lets Optuna choose the points. Whatever the executor, the
driver writes every point to the open store, points already stored are reused (so a
killed sweep resumes where it stopped), and Ctrl-C stops after the point in flight.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import importlib.util
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from typing import Callable

from core.engine import runner as R
from core.engine.grid import SweepConfig, SweepError, expand
from core.inputs import device as DV
from core.inputs.train import Progress
from core.methods import spec as S
from core.results.store import Point, Store, point_key

EXECUTORS = ("local", "ray")
InFlight = Callable[[S.Spec, int, int, str], None]  # (the point being computed, done, total, message)


def check(cfg: SweepConfig, executor: str = "local", workers: int = 1) -> tuple:
    """(model, data, the grid's Specs), or the one sentence on why the sweep cannot run, before any work and before
    a store is opened: a refused sweep leaves nothing behind (no store, no empty run)."""
    if executor not in EXECUTORS:
        raise SweepError(f"The executor is {' or '.join(EXECUTORS)}, not {executor!r}.")
    if workers < 1:
        raise SweepError(f"workers must be at least 1, not {workers}.")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise SweepError("The Ray executor needs Ray: pip install 'edgetrim[ray]'.")
    model, data = R.load_context(cfg.model, cfg.data)
    specs = expand(cfg)
    R.preflight(model, data, specs)
    if cfg.search and cfg.search.get("space") == "per-layer":
        from core.engine.layerwise import why_not_model

        reason = why_not_model(model, cfg.search)
        if reason:
            raise SweepError(reason)
    return model, data, specs


def run_sweep(cfg: SweepConfig, store: Store, workers: int = 1, progress: Progress | None = None,
              executor: str = "local", address: str | None = None, cpus_per_point: float = 1,
              gpus_per_point: float = 0, in_flight: InFlight | None = None) -> R.SweepResult:
    """Run every point of the grid (or the search) not yet stored.

    `progress(done, total, message)` hears each finished point; `in_flight(spec, done, total, message)` hears
    the work on the point being computed (training epochs, measuring stages) when points run in this process.

    executor "local" runs in this process (workers=1) or a process pool; "ray" sends groups of
    points to a Ray cluster (`address`: None starts a local one, "auto" or "ray://host:port" joins one).
    """
    t0 = time.perf_counter()
    model, data, specs = check(cfg, executor, workers)
    per_layer = bool(cfg.search) and cfg.search.get("space") == "per-layer"
    store.add_run(cfg.run, cfg.to_dict(), R.model_name(cfg.model), data.name)
    if cfg.search and not per_layer:
        from core.engine.search import run_search

        found = run_search(cfg, store, progress, t0)
        return dataclasses.replace(found, settled=_settle(cfg, store, progress, found.total))
    keys = [point_key(model.fingerprint, data.fingerprint, s, R.profile(cfg.measure)) for s in specs]
    todo = [i for i, k in enumerate(keys) if not R.covers(store.get(k), model, cfg.measure)]
    store.link(cfg.run, [k for i, k in enumerate(keys) if i not in set(todo)])
    reused = len(specs) - len(todo)
    failed: list[Point] = []
    counter = {"done": reused}

    def report(point: Point | None = None, msg: str = "") -> None:
        if point is not None:
            counter["done"] += 1
            if point.status == "failed":
                failed.append(point)
            msg = f"{point.spec.label} -> {point.status}"
        if progress:
            progress(counter["done"], len(specs), msg)

    report(msg=f"{reused} of {len(specs)} points already stored")
    todo_specs, positions = [specs[i] for i in todo], todo
    if executor == "ray" and todo:
        from core.engine.ray_executor import run_ray

        run_ray(cfg, store, todo_specs, positions, report, address, cpus_per_point, gpus_per_point)
    elif workers <= 1 or len(todo) <= 1:
        def step(done: int, total: int, message: str) -> None:
            # the group computes its points in order: the one in flight is the first not reported yet
            in_flight(todo_specs[min(counter["done"] - reused, len(todo) - 1)], done, total, message)

        R.run_group(store, cfg.run, cfg.model, cfg.data, todo_specs, positions, cfg.measure, on_point=report,
                    progress=step if in_flight else None)
    else:
        _run_pool(cfg, store, todo_specs, positions, workers, report)
    settled = _settle(cfg, store, progress, len(specs))
    errors = tuple(dict.fromkeys(p.error for p in failed))
    grid = R.SweepResult(cfg.run, len(specs), len(todo), reused, len(failed), time.perf_counter() - t0, errors,
                         settled=settled)
    if not per_layer:
        return grid
    from core.engine.layerwise import run_layerwise  # the uniform grid above, then the per-layer search beside it

    found = run_layerwise(cfg, store, progress, time.perf_counter())
    more = _settle(cfg, store, progress, grid.total + found.total)
    return R.SweepResult(cfg.run, grid.total + found.total, grid.computed + found.computed,
                         grid.reused + found.reused, grid.failed + found.failed, time.perf_counter() - t0,
                         tuple(dict.fromkeys(grid.errors + found.errors)), search_seconds=found.seconds,
                         settled=None if more is None else settled + more)


def _settle(cfg: SweepConfig, store: Store, progress: Progress | None, total: int) -> int | None:
    """A sweep scored on a subset: its baseline and the points on a front, scored on the whole splits (None: no subset)."""
    if not cfg.measure.get("subset"):
        return None
    return R.settle_run(store, cfg.run, (lambda d, t, m: progress(total, total, m)) if progress else None)


def _run_pool(cfg: SweepConfig, store: Store, specs: list, positions: list[int], workers: int,
              report: Callable[[Point], None]) -> None:
    """Groups of points in worker processes; the driver records each group's outcomes as it finishes."""
    opts = R.keeping({**cfg.measure, "threads": cfg.measure.get("threads") or max(1, (os.cpu_count() or 1) // workers)},
                     store)
    model, data = R.load_context(cfg.model, cfg.data)
    context = (cfg.model, cfg.data)
    students = list(dict.fromkeys(s.distill for s in specs if s.distill is not None))
    position = dict(zip((s.hash for s in specs), positions))
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        try:
            list(pool.map(R.train_student_task, [context] * len(students), students, [opts] * len(students)))
            futures = [pool.submit(R.measure_task, context, [specs[i] for i in g], opts) for g in R.groups(specs)]
            for future in cf.as_completed(futures):
                for outcome in future.result():
                    report(R.record(store, cfg.run, cfg.model, model, data, outcome, position[outcome.spec.hash],
                                    cfg.measure))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # the workers got the same SIGINT (one process group)
            raise


# ---- what a grid will do, said before it starts ------------------------------------------------

# Calibrated on this machine (benchmarks/subset_eval.py, alone, 2026-12-02: 126 LeNet-5 points on MNIST scored whole
# and on 1,000-image subsets): writing a point's files and opening its sessions costs about a quarter second; scoring
# an image in a runtime about two thirds of an image's share of a training step (session calls, conversions);
# about a tenth of a subset sweep's points sit on some front and are then scored whole.
MEASURE_OVERHEAD_S = 0.25
SCORE_PER_STEP = 2 / 3


@dataclass(frozen=True)
class Planned:
    """A point still to compute: what it trains here, in order (a shared distill -> prune prefix, and a student,
    train once: for the first point that needs them), and about how long its training and measuring take."""
    spec: S.Spec
    trainings: tuple  # core.engine.estimate.Training, each (what, epochs, images per epoch)
    train_seconds: float
    measure_seconds: float

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.measure_seconds


SETTLED_SHARE = 0.1


def _per_image(model, spec: S.Spec, train_on) -> tuple[float, float]:
    """(seconds of a training step per image on the sweep's device, seconds of scoring an image on the CPU, where
    deployed files are scored: SCORE_PER_STEP of a CPU step); (0, 0) for a graph that cannot take a step."""
    from core.engine import estimate as E
    from core.methods.distill import build_student

    try:
        module = model.module if spec.distill is None else build_student(model, spec.distill)
        with DV.using(train_on):
            step = E.step_seconds(module, model.input_shape) / E.STEP_BATCH
        with DV.using("cpu"):
            forward = E.step_seconds(module, model.input_shape) / E.STEP_BATCH * SCORE_PER_STEP
        return step, forward
    except Exception:  # no estimate, never a failed sweep
        return 0.0, 0.0


def _images_scored(data, spec: S.Spec, runtimes: list[str], subset: int | None) -> int:
    """Images a point's measurement scores: validation and test in ONNX Runtime, test again in PyTorch (fp32) and in
    ExecuTorch."""
    n_val, n_test = (min(len(d), subset or len(d)) for d in (data.val, data.test))
    return n_test + n_val + n_test * ((spec.deploy is None) + ("executorch" in runtimes))


def plan(cfg: SweepConfig, store: Store) -> tuple[list[Planned], int]:
    """The grid's points not yet stored, in the order run_sweep computes them in this process, and how many are
    stored already. Times come from one training step of each model that trains, timed here (core.engine.estimate); a
    search's own trials are not known before it runs (only a per-layer search's uniform grid is planned)."""
    from core.engine import estimate as E
    from core.runtimes import measure as ME

    model, data = R.load_context(cfg.model, cfg.data)
    if cfg.search and cfg.search.get("space") != "per-layer":
        return [], 0
    try:
        train_on = DV.resolve(cfg.measure.get("device"))
    except DV.DeviceError:  # a GPU sweep planned where there is none (a Ray driver): its steps timed here
        train_on = DV.current()
    specs = expand(cfg)
    R.preflight(model, data, specs)  # a point that cannot run is said before any estimate, as run_sweep says it
    todo = [s for s in specs if not R.covers(store.get(point_key(model.fingerprint, data.fingerprint, s,
                                                                 R.profile(cfg.measure))), model, cfg.measure)]
    runtimes = [r for r in ME.check_runtimes(cfg.measure.get("runtimes") or ME.RUNTIMES) if not ME.why_unavailable(r)]
    series = len(runtimes) * len(ME.BATCHES) if cfg.measure.get("latency", True) else 0
    budget = float(cfg.measure.get("budget_s", ME.TIME_BUDGET_S))
    prefixes, students, per_image, out = set(), set(), {}, []
    for spec in todo:
        runs = E.trainings(model, data, spec)
        student = S.Spec(distill=spec.distill).hash
        if spec.prefix.hash in prefixes:  # computed for an earlier point of the group
            runs = runs[len(E.trainings(model, data, spec.prefix)):]
        elif spec.distill is not None and student in students:  # trained for an earlier point, kept on disk
            runs = runs[len(E.trainings(model, data, S.Spec(distill=spec.distill))):]
        prefixes.add(spec.prefix.hash)
        students.add(student)
        if student not in per_image:
            per_image[student] = _per_image(model, spec, train_on)
        step, forward = per_image[student]
        whole = _images_scored(data, spec, runtimes, None)
        part = _images_scored(data, spec, runtimes, cfg.measure.get("subset"))
        scoring = (part + SETTLED_SHARE * (whole - part)) * forward  # some subset points are then scored whole
        measure = MEASURE_OVERHEAD_S + scoring + series * (budget + 0.05)
        out.append(Planned(spec, tuple(runs), sum(r.epochs * r.images for r in runs) * step, measure))
    return out, len(specs) - len(todo)
