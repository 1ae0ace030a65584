"""Scoring a sweep's points on a subset: each accuracy's interval, and which points the whole splits must settle.

A sweep with `measure: {subset: N}` scores every point on the same seeded N images of the validation split
(and N of the test split), far cheaper than the whole splits on big data. An accuracy seen on N images is known
only to an interval (Wilson's, at 95 %). Floors are chosen after the sweep, so a point is scored on the whole
splits unless, on every measure a pick could minimise, some other point is surely at least as accurate (its
interval's low end at or above this point's high end) and no larger: such a point can never be the pick at any
floor (budgets aside: a pick within a budget may still land on such a point, and is then settled as below).
Picks judge a subset point by the high end of its interval and score their choice on the whole splits
before it counts (core.engine.runner.confirmed_pick), so what is picked and reported is always whole-split.
"""
from __future__ import annotations

import math

import pandas as pd

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval
# what a pick or a front can minimise, in the table's columns (core.results.store.FRAME_COLUMNS)
COSTS = ("onnx_bytes", "archive_bytes", "nonzero_params", "macs", "ort_b1_ms", "torch_b1_ms", "pte_bytes", "et_b1_ms",
         "tflite_bytes", "lrt_b1_ms", "tflite_ram_bytes", "cuda_b1_ms")
BUSY = {"ort_b1_ms": "ort_b1_busy", "torch_b1_ms": "torch_b1_busy", "et_b1_ms": "et_b1_busy", "lrt_b1_ms": "lrt_b1_busy",
        "cuda_b1_ms": "cuda_b1_busy"}  # a latency timed on a busy machine is left out of picks: it beats nothing
VAL_COLUMNS = ("val_accuracy", "pte_val_accuracy", "tflite_val_accuracy")  # each runtime's judged accuracy


def wilson(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion seen on `n` images: right near 0 and 1, where the normal one is not."""
    if not n:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def interval(row) -> tuple[float, float]:
    """(low, high) of a row's validation accuracy: the point itself for one scored on the whole split."""
    acc = row["val_accuracy"]
    return wilson(acc, int(row["eval_subset"])) if is_subset(row) else (acc, acc)


def is_subset(row) -> bool:
    return "eval_subset" in row and pd.notna(row["eval_subset"]) and pd.notna(row.get("val_accuracy"))


def optimistic(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with each subset point's validation accuracies (every runtime's) at the high end of their intervals:
    what a pick judges such a point by, so none that might meet a floor is passed over."""
    if "eval_subset" not in df or df["eval_subset"].isna().all():
        return df
    out = df.copy()
    rows = out["eval_subset"].notna()
    for col in VAL_COLUMNS:
        if col in out:
            take = rows & out[col].notna()
            out.loc[take, col] = [wilson(a, int(n))[1] for a, n in zip(out.loc[take, col], out.loc[take, "eval_subset"])]
    return out


def to_confirm(df: pd.DataFrame) -> list[str]:
    """Keys of the subset points the whole splits must settle: the baseline (every drop starts from it), and every
    point that is not surely beaten on every cost at once (see the module's docstring)."""
    ok = df[(df["status"] == "ok") & df["val_accuracy"].notna()]
    if ok.empty or "eval_subset" not in ok or ok["eval_subset"].isna().all():
        return []
    bounds = ok.apply(interval, axis=1, result_type="expand")
    low, high = bounds[0], bounds[1]
    costs = [c for c in COSTS if c in ok and ok[c].notna().any()]
    out = []
    for key, row in ok.iterrows():
        if not is_subset(row):
            continue
        if row["family"] == "baseline" or any(_may_be_picked(ok, low, row, high[key], c) for c in costs):
            out.append(row["key"])
    return out


def _may_be_picked(ok: pd.DataFrame, low: pd.Series, row, high: float, cost: str) -> bool:
    """Whether no other point is surely as accurate as `row` and no larger on `cost`."""
    if pd.isna(row[cost]):
        return False  # a pick by this cost leaves the point out anyway
    beats = (low >= high) & (ok[cost] <= row[cost]) & (ok["key"] != row["key"])
    if BUSY.get(cost) in ok:
        beats &= ~ok[BUSY[cost]].astype(bool)
    return not beats.any()
