"""Time the default sweep: cold (empty store, no cached students) and warm (everything stored).

    python benchmarks/sweep_time.py                  # sweeps/default.yaml, 1 worker
    python benchmarks/sweep_time.py --workers 2
    python benchmarks/sweep_time.py --config sweeps/search.yaml
    python benchmarks/sweep_time.py --executor ray    # the same sweep as Ray tasks on a local Ray

Prints points, seconds, points per minute and peak memory; the store and the
student cache live in a temporary folder, so nothing of yours is touched or reused.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.cli import format_table  # noqa: E402
from core.engine import grid, runner, sweep  # noqa: E402
from core.results.store import Store  # noqa: E402


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="sweeps/default.yaml")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgetrim-sweep-bench-"))
    os.environ["EDGETRIM_CACHE"] = str(tmp / "cache")
    cfg = grid.load_config(args.config)
    rows = []
    for phase in ("cold", "warm"):
        store = Store(tmp / "results.sqlite")
        t0 = time.perf_counter()
        result = sweep.run_sweep(cfg, store, workers=args.workers, executor=args.executor)
        seconds = time.perf_counter() - t0
        rows.append({"phase": phase, "points": result.total, "measured": result.computed, "from store": result.reused,
                     "failed": result.failed, "seconds": round(seconds, 1),
                     "points/min": round(60 * result.total / seconds, 1), "peak MB": round(peak_mb())})
        store.close()
    print(f"sweep {args.config} ({cfg.run}), executor {args.executor}, workers {args.workers}, {os.cpu_count()} cores")
    print(format_table(rows))
    print()
    print(format_table(single_point(cfg, tmp)))


def single_point(cfg, tmp: Path) -> list[dict]:
    """What a slider move costs: an unseen spec (compress + measure + store) and the same spec again (store)."""
    from core.methods import spec as S
    from core.methods.prune import UnstructuredPrune
    from core.methods.quantize import WeightQuant
    from core.results.store import Point, point_key
    from core.runtimes import measure as ME

    model, data = runner.load_context(cfg.model, cfg.data)
    store = Store(tmp / "results.sqlite")
    spec = S.Spec(prune=UnstructuredPrune(0.65), quantize=WeightQuant(5))  # not in the default grid
    key = point_key(model.fingerprint, data.fingerprint, spec)
    t0 = time.perf_counter()
    metrics = ME.measure(S.apply(model, spec, data), data, spec.deploy, budget_s=0.05)
    store.put(Point(key, model.name, model.fingerprint, data.name, data.fingerprint, spec, "ok", metrics))
    unseen = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = store.get(key)
    seen = time.perf_counter() - t0
    assert again.metrics == metrics
    return [{"slider point": "unseen spec (compress, export, time, store)", "seconds": round(unseen, 3)},
            {"slider point": "seen spec (read from the store)", "seconds": round(seen, 4)}]


if __name__ == "__main__":
    main()
