"""Multi-objective search (Optuna NSGA-II or TPE) over a sweep's axes, for spaces too big for a grid.

Each trial picks one value per axis, becomes a Spec, and is measured and stored by the
same runner as a grid point (a point already in the store is reused, not recomputed).
The trials' objective values come from the stored metrics, so the search and the grid
share one store and one set of fronts. Accuracy is the deployed file's on the validation
split (`search: {judge_on: test}` to search on the test split); the test split is what is
reported. A point stored before validation accuracy was recorded counts with its test accuracy.
"""
from __future__ import annotations

import dataclasses
import time

import pandas as pd

from core.engine import runner as R
from core.engine.grid import expand
from core.methods import spec as S
from core.results import pareto
from core.results.store import Store, point_key, points_frame

SEED = 0


def run_search(cfg, store: Store, progress, t0: float) -> R.SweepResult:
    import optuna

    objectives = list(cfg.search.get("objectives", ["accuracy", "size"]))
    cols = [pareto.OBJECTIVES[o] for o in objectives if o in pareto.OBJECTIVES]
    if len(cols) != len(objectives):
        raise pareto.PickError(f"search.objectives must be among {', '.join(pareto.OBJECTIVES)}.")
    judge = cfg.search.get("judge_on", "val")
    if judge not in pareto.JUDGES:
        raise pareto.PickError(f"search.judge_on is val (the validation split) or test, not {judge!r}.")
    cols = [(pareto.JUDGE_COLUMNS[judge], d) if c == "accuracy" else (c, d) for c, d in cols]
    trials = int(cfg.search["trials"])
    sampler = (optuna.samplers.NSGAIISampler(seed=SEED) if cfg.search.get("sampler", "nsga2") == "nsga2"
               else optuna.samplers.TPESampler(seed=SEED, multivariate=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize" if d == "max" else "minimize" for _, d in cols],
                                sampler=sampler, study_name=cfg.run)
    counts = {"computed": 0, "reused": 0}
    errors: list[str] = []

    model, data = R.load_context(cfg.model, cfg.data)

    def measure(spec: S.Spec, position: int):
        reused = R.covers(store.get(point_key(model.fingerprint, data.fingerprint, spec, R.profile(cfg.measure))),
                          model, cfg.measure)
        counts["reused" if reused else "computed"] += 1
        return R.run_group(store, cfg.run, cfg.model, cfg.data, [spec], [position], cfg.measure)[0]

    def objective(trial):
        # one student per trial: a width of the model's own architecture or another architecture (never both)
        widths = [str(w) for w in cfg.axes["student_width"]]
        student = trial.suggest_categorical("student", widths + list(cfg.axes["student"]))
        axes = {name: [trial.suggest_categorical(name, values)] for name, values in cfg.axes.items()
                if name not in ("student_width", "student")}
        axes["student_width"], axes["student"] = ([float(student)], []) if student in widths else ([], [student])
        spec = expand(dataclasses.replace(cfg, axes=axes))[-1]
        point = measure(spec, trial.number + 1)
        if progress:
            progress(trial.number + 1, trials, f"trial {trial.number + 1}: {spec.label} -> {point.status}")
        if point.status != "ok":
            errors.append(point.error)
            raise optuna.TrialPruned(point.error)
        row = points_frame([point]).iloc[0]  # the same columns the fronts are computed on
        if pd.isna(row["val_accuracy"]):  # stored before validation accuracy was recorded: its test accuracy
            row["val_accuracy"] = row["accuracy"]
        return tuple(float(row[c]) if pd.notna(row[c]) else float("inf") for c, _ in cols)

    measure(S.Spec(), 0)  # the baseline is always a point of the run, as in a grid
    study.optimize(objective, n_trials=trials, catch=())
    return R.SweepResult(cfg.run, trials + 1, counts["computed"], counts["reused"], len(errors),
                         time.perf_counter() - t0, tuple(dict.fromkeys(errors)))
