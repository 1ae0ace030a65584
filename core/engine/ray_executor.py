"""Run a sweep's points as Ray tasks, for sweeps that outgrow one machine.

The model and data go into Ray's object store once; each task runs core.engine.runner's
`measure_task` on one group of points that share their distill -> prune prefix and
returns plain outcomes; the driver records every point in the results store as its task
finishes, so progress and resume work exactly as with the local executor. A worker lost
mid-task is retried by Ray (`max_retries`); a group whose task keeps dying has its points
stored as failed with the error, and the sweep finishes.

    edgetrim sweep sweeps/default.yaml --executor ray                     # a local Ray
    edgetrim sweep sweeps/default.yaml --executor ray --address auto      # an existing cluster
    edgetrim sweep sweeps/default.yaml --executor ray --address ray://head:10001 --store postgresql://...
"""
from __future__ import annotations

import os
from typing import Callable

from core.engine import runner as R
from core.results.store import Point, Store

MAX_RETRIES = 3


def _task_device(device: str | None) -> dict:
    """A task Ray gives a GPU sees it as cuda:0 (Ray sets CUDA_VISIBLE_DEVICES): cuda:N becomes cuda there."""
    return {"device": "cuda"} if device and device.startswith("cuda:") else {}


def gpus_for(device: str | None, asked: float, cluster_gpus: float) -> float:
    """The GPUs each task asks Ray for: what --gpus-per-point says, else one when the sweep's device is a GPU
    (auto: when the cluster has any), so Ray places each point on a node with a free GPU."""
    device = device or "auto"
    if asked:
        return asked
    if device.startswith("cuda") and not cluster_gpus:
        raise RuntimeError(f"The sweep's device is {device}, but the Ray cluster has no GPU; use --device cpu or "
                           "join a cluster with GPU workers.")
    return 1 if cluster_gpus and device.startswith(("cuda", "auto")) else 0


def run_ray(cfg, store: Store, specs: list, positions: list[int], report: Callable[[Point], None],
            address: str | None = None, cpus_per_point: float = 1, gpus_per_point: float = 0) -> None:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("The Ray executor needs Ray: pip install 'edgetrim[ray]'.") from e

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 num_cpus=None if address else os.cpu_count(),
                 runtime_env={"env_vars": {"EDGETRIM_CACHE": os.environ.get("EDGETRIM_CACHE", "")}}
                 if os.environ.get("EDGETRIM_CACHE") else None)
    try:
        model, data = R.load_context(cfg.model, cfg.data)
        context = ray.put((model, data))  # shipped once, shared by every task
        opts = R.keeping({**cfg.measure, "threads": cfg.measure.get("threads") or max(1, int(cpus_per_point)),
                          **_task_device(cfg.measure.get("device"))}, store)  # a worker on another machine keeps its files there: export rebuilds those
        gpus = gpus_for(cfg.measure.get("device"), gpus_per_point, ray.cluster_resources().get("GPU", 0))
        resources = dict(num_cpus=cpus_per_point, num_gpus=gpus, max_retries=MAX_RETRIES)
        students = list(dict.fromkeys(s.distill for s in specs if s.distill is not None))
        if students:
            train = ray.remote(**resources)(R.train_student_task)
            ray.get([train.remote(context, d, opts) for d in students])
        task = ray.remote(**resources)(R.measure_task)
        pending = {task.remote(context, [specs[i] for i in g], opts): g for g in R.groups(specs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(done[0])
            try:
                outcomes = ray.get(done[0])
            except Exception as e:  # the task raised outside a point, or its worker died more than MAX_RETRIES times
                lost = type(e).__name__ in ("WorkerCrashedError", "NodeDiedError", "OwnerDiedError")
                why = (f"Ray task lost after {MAX_RETRIES} retries ({type(e).__name__})" if lost else
                       f"Ray task failed: {(str(getattr(e, 'cause', None) or e).splitlines() or [''])[0][:300]}")
                outcomes = [R.Outcome(specs[i], None, why, 0.0) for i in group]
            for i, outcome in zip(group, outcomes):
                report(R.record(store, cfg.run, cfg.model, model, data, outcome, positions[i], cfg.measure))
    finally:
        if started_here:
            ray.shutdown()
