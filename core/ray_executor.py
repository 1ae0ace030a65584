"""Run a sweep's points as Ray tasks, for sweeps that outgrow one machine.

The model and data go into Ray's object store once; each task takes one group of
points that share their distill -> prune prefix, computes the prefix once and
returns plain results; the driver writes every point to the results store as its
task finishes, so progress and resume work exactly as with the local executor.
A worker lost mid-task is retried by Ray (`max_retries`); a group whose task keeps
dying has its points stored as failed with the error, and the sweep finishes.

    edgetrim sweep sweeps/default.yaml --executor ray                     # a local Ray
    edgetrim sweep sweeps/default.yaml --executor ray --address auto      # an existing cluster
    edgetrim sweep sweeps/default.yaml --executor ray --address ray://head:10001 --store postgresql://...
"""
from __future__ import annotations

import json
import os
from typing import Callable

from core import measure as ME
from core import spec as S
from core.store import Point, Store, point_key

MAX_RETRIES = 3


def _measure_group(context, spec_jsons: list[str], measure_opts: dict, threads: int) -> list[dict]:
    """One Ray task: a group of specs on the shipped model and data; never raises for one bad point."""
    import torch

    from core.sweep import measure_specs

    torch.set_num_threads(threads)
    model, data = context
    specs = [S.Spec.from_json(sj) for sj in spec_jsons]
    return [{"spec": spec.to_json(), "status": "ok" if error is None else "failed",
             "metrics": metrics.to_json() if metrics else None, "error": error, "seconds": seconds}
            for spec, metrics, error, seconds in measure_specs(model, data, specs, measure_opts, threads)]


def _train_student(context, distill_json: str, threads: int) -> None:
    import torch

    from core.spec import config_from_dict

    torch.set_num_threads(threads)
    model, data = context
    S.compress(model, config_from_dict(json.loads(distill_json)), data)


def run_ray(cfg, store: Store, specs: list[S.Spec], positions: list[int], groups: list[list[int]],
            report: Callable[[Point], None], address: str | None = None, cpus_per_point: float = 1,
            gpus_per_point: float = 0) -> None:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("The Ray executor needs Ray: pip install 'edgetrim[ray]'.") from e
    from core.spec import config_to_dict
    from core.sweep import load_context, model_name

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 num_cpus=None if address else os.cpu_count(),
                 runtime_env={"env_vars": {"EDGETRIM_CACHE": os.environ.get("EDGETRIM_CACHE", "")}}
                 if os.environ.get("EDGETRIM_CACHE") else None)
    try:
        model, data = load_context(cfg.model, cfg.data)
        context = ray.put((model, data))  # shipped once, shared by every task
        threads = max(1, int(cpus_per_point))
        opts = dict(num_cpus=cpus_per_point, num_gpus=gpus_per_point, max_retries=MAX_RETRIES)
        students = {s.distill for s in specs if s.distill is not None}
        if students:
            train = ray.remote(**opts)(_train_student)
            ray.get([train.remote(context, json.dumps(config_to_dict(d)), threads) for d in students])
        task = ray.remote(**opts)(_measure_group)
        pending = {task.remote(context, [specs[i].to_json() for i in g], cfg.measure, threads): g for g in groups}
        name = model_name(cfg.model)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            group = pending.pop(ref)
            try:
                results = ray.get(ref)
            except Exception as e:  # the task died more than MAX_RETRIES times
                results = [{"spec": specs[i].to_json(), "status": "failed", "metrics": None,
                            "error": f"Ray task lost after {MAX_RETRIES} retries: {type(e).__name__}", "seconds": None}
                           for i in group]
            for i, r in zip(group, results):
                spec = specs[i]
                metrics = ME.Metrics.from_json(r["metrics"]) if r["metrics"] else None
                p = Point(point_key(model.fingerprint, data.fingerprint, spec), name, model.fingerprint, data.name,
                          data.fingerprint, spec, r["status"], metrics, r["error"], r["seconds"])
                store.put(p, cfg.run, positions[i])
                report(p)
    finally:
        if started_here:
            ray.shutdown()
