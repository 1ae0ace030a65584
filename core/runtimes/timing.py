"""Timing one call honestly: warm-up, then many single calls; the median, the spread and the outliers.

Every runtime times its calls through `time_calls` and returns a `Latency`, so a number from ONNX Runtime and one
from ExecuTorch are measured the same way.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

WARMUP = 5               # untimed calls first: allocators, caches, lazy init
MIN_REPEATS = 15
MAX_REPEATS = 300
TIME_BUDGET_S = 0.25     # per (runtime, batch): repeat until this much time has passed
OUTLIER_FACTOR = 3.0     # a call slower than 3x the median is counted as an outlier (a preemption, not the model)


@dataclass(frozen=True)
class Latency:
    runtime: str
    batch: int
    median_ms: float
    p90_ms: float
    repeats: int
    threads: int
    p10_ms: float | None = None  # None in points stored before it was recorded
    outliers: int = 0            # calls slower than OUTLIER_FACTOR x the median
    load: float | None = None    # the machine's 1-minute load average when timing began (others' work competes)
    busy: bool = False           # timed on an oversubscribed machine even after a re-time: kept out of latency fronts


def time_calls(fn, warmup: int = WARMUP, budget_s: float = TIME_BUDGET_S) -> dict:
    """Median, p10 and p90 (ms), repeats and outliers of `fn()` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MAX_REPEATS and (len(times) < MIN_REPEATS or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    median = float(np.median(times))
    return {"load": round(os.getloadavg()[0], 2), "median_ms": median, "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "repeats": len(times),
            "outliers": int(sum(t > OUTLIER_FACTOR * median for t in times))}


def latency(runtime: str, fn, batch: int, threads: int, budget_s: float = TIME_BUDGET_S) -> Latency:
    """`fn()` (one call of a batch of `batch` inputs) timed as a `Latency` of `runtime` on `threads` threads."""
    return Latency(runtime, batch, threads=threads, **time_calls(fn, budget_s=budget_s))
