"""Scoring a sweep's points on a subset: each accuracy's interval, and which points the whole splits settle.

A sweep with `measure: {subset: N}` scores every point on the same seeded N images of the validation split
(and N of the test split), far cheaper than the whole splits on big data. An accuracy seen on N images is known
only to an interval (Wilson's, at 95 %). When the sweep ends, the points on a front (their subset accuracy
against any cost a pick can minimise: file bytes on each runtime, the archive, MACs, each runtime's latency) and
the baseline are scored on the whole splits, so every front a person looks at is whole-split. A pick then judges
each point still on its subset by the HIGH end of its interval, and scores its choice on the whole splits before
it counts, choosing again while the choice falls short (core.engine.runner.confirmed_pick): what is picked and
reported is always whole-split, and it is the pick the whole-split sweep makes unless some point's accuracy lies
above its interval (a 2.5 % chance for each point near the floor).
"""
from __future__ import annotations

import math

import pandas as pd

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval
# what a pick can minimise (core.results.pareto.MINIMISED), on every runtime, in the table's columns
COSTS = ("onnx_bytes", "archive_bytes", "macs", "ort_b1_ms", "torch_b1_ms", "pte_bytes", "et_b1_ms", "tflite_bytes",
         "lrt_b1_ms", "tflite_ram_bytes", "cuda_b1_ms")
BUSY = {"ort_b1_ms": "ort_b1_busy", "torch_b1_ms": "torch_b1_busy", "et_b1_ms": "et_b1_busy", "lrt_b1_ms": "lrt_b1_busy",
        "cuda_b1_ms": "cuda_b1_busy"}
VAL_COLUMNS = ("val_accuracy", "pte_val_accuracy", "tflite_val_accuracy")  # each runtime's judged accuracy


def wilson(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion seen on `n` images: right near 0 and 1, where the normal one is not."""
    if not n:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


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
    """Keys of the subset points the whole splits settle when a sweep ends: the baseline (every drop starts from
    it) and every point on a front of validation accuracy (as the subset saw it) against some cost."""
    ok = df[(df["status"] == "ok") & df["val_accuracy"].notna()]
    if ok.empty or "eval_subset" not in ok or ok["eval_subset"].isna().all():
        return []
    costs = [c for c in COSTS if c in ok and ok[c].notna().any()]
    return [row["key"] for _, row in ok.iterrows()
            if is_subset(row) and (row["family"] == "baseline" or any(_on_front(ok, row, c) for c in costs))]


def _on_front(ok: pd.DataFrame, row, cost: str) -> bool:
    """Whether no other point is as accurate as `row` and no larger on `cost`, and better on one of them."""
    if pd.isna(row[cost]) or (BUSY.get(cost) in row and row[BUSY[cost]] is True):
        return False  # a pick by this cost leaves the point out anyway
    acc, size = ok["val_accuracy"], ok[cost]
    beats = (acc >= row["val_accuracy"]) & (size <= row[cost]) & ((acc > row["val_accuracy"]) | (size < row[cost]))
    if BUSY.get(cost) in ok:  # a latency timed on a busy machine is left out of picks: it beats nothing
        beats &= ~ok[BUSY[cost]].astype(bool)
    return not beats.any()
