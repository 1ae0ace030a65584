"""Multi-objective search (Optuna NSGA-II or TPE) over a sweep's axes, for spaces too big for a grid.

Each trial picks one value per axis, becomes a Spec, and is measured and stored like a
grid point (a point already in the store is reused, not recomputed). The trials'
objective values come from the stored metrics, so the search and the grid share one
store and one set of fronts.
"""
from __future__ import annotations

import time

import pandas as pd

from core import pareto
from core import spec as S
from core.store import Store, point_key, points_frame

SEED = 0


def run_search(cfg, store: Store, progress, t0: float):
    import optuna

    from core.sweep import SweepResult, expand, load_context, run_points

    model, data = load_context(cfg.model, cfg.data)
    objectives = list(cfg.search.get("objectives", ["accuracy", "size"]))
    cols = [pareto.OBJECTIVES[o] for o in objectives if o in pareto.OBJECTIVES]
    if len(cols) != len(objectives):
        raise pareto.PickError(f"search.objectives must be among {', '.join(pareto.OBJECTIVES)}.")
    trials = int(cfg.search["trials"])
    sampler = (optuna.samplers.NSGAIISampler(seed=SEED) if cfg.search.get("sampler", "nsga2") == "nsga2"
               else optuna.samplers.TPESampler(seed=SEED, multivariate=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize" if d == "max" else "minimize" for _, d in cols],
                                sampler=sampler, study_name=cfg.run)
    axes = cfg.axes
    counts = {"computed": 0, "reused": 0, "failed": 0}
    baseline = S.Spec()

    def objective(trial):
        choice = {name: trial.suggest_categorical(name, values) for name, values in axes.items()}
        one = type(cfg)(cfg.run, cfg.model, cfg.data, {k: [v] for k, v in choice.items()}, cfg.settings,
                        cfg.measure)
        spec = expand(one)[-1]  # [baseline, this trial's spec], or [baseline] when the trial is the baseline
        key = point_key(model.fingerprint, data.fingerprint, spec)
        if store.has_ok(key):
            counts["reused"] += 1
            store.link(cfg.run, [key])
        else:
            counts["computed"] += 1
            run_points(cfg.model, cfg.data, [spec], [trial.number + 1], cfg.run, str(store.path), cfg.measure,
                       threads=cfg.measure.get("threads"))
        point = store.get(key)
        if progress:
            progress(trial.number + 1, trials, f"trial {trial.number + 1}: {spec.label} -> {point.status}")
        if point.status != "ok":
            counts["failed"] += 1
            raise optuna.TrialPruned(point.error)
        row = points_frame([point]).iloc[0]  # the same columns the fronts are computed on
        return tuple(float(row[c]) if pd.notna(row[c]) else float("inf") for c, _ in cols)

    # the baseline is always a point of the run, as in a grid
    run_points(cfg.model, cfg.data, [baseline], [0], cfg.run, str(store.path), cfg.measure,
               threads=cfg.measure.get("threads"))
    study.optimize(objective, n_trials=trials, catch=())
    return SweepResult(cfg.run, trials + 1, counts["computed"], counts["reused"], counts["failed"],
                       time.perf_counter() - t0)
