"""Pareto fronts and the best point above an accuracy floor: small pure functions.

Every objective states its direction. Accuracy is maximised; size (bytes of the
deployable ONNX file, or of the compact archive) and latency (ONNX Runtime or
PyTorch, batch 1) are minimised. Tables come from `core.store.points_frame`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

# name -> (column, direction)
OBJECTIVES = {
    "accuracy": ("accuracy", "max"),
    "size": ("onnx_bytes", "min"),
    "archive": ("archive_bytes", "min"),
    "latency": ("ort_b1_ms", "min"),
    "torch_latency": ("torch_b1_ms", "min"),
    "macs": ("macs", "min"),
}
MINIMISED = tuple(o for o in OBJECTIVES if o != "accuracy")  # what a pick or a front's x axis can be
# what a person reads for each objective, and how its values are written
OBJECTIVE_NAMES = {
    "accuracy": "test accuracy",
    "size": "ONNX file size",
    "archive": "compact archive size",
    "latency": "ONNX Runtime latency (batch 1)",
    "torch_latency": "PyTorch latency (batch 1)",
    "macs": "compute (multiply-accumulates per input)",
}
# why a point may have no value for an objective
WHY_MISSING = {
    "size": "it was not measured", "macs": "it was not measured",
    "archive": "TorchScript and torch.export models have no compact archive",
    "latency": "latency is not timed in a sweep with measure: {latency: false}",
    "torch_latency": "not timed, or an int8 / fp16 file, which runs in ONNX Runtime only",
}
FAMILIES = ("baseline", "pruning", "quantization", "combined", "distillation", "student alone")


def value_text(objective: str, value) -> str:
    """`value` of `objective` in its unit: '76.7 KB', '0.041 ms', '1.23 M MACs', '98.06 %'."""
    from core import describe

    if objective == "macs":
        return "n/a" if value is None or value != value else f"{describe.count(value)} MACs"
    return {"accuracy": describe.pct, "size": describe.size, "archive": describe.size, "latency": describe.ms,
            "torch_latency": describe.ms}[objective](value)


class PickError(ValueError):
    """An accuracy floor or objective that makes no sense; one sentence on what to give."""


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """a is at least as good as b everywhere and better somewhere."""
    better = False
    for x, y, d in zip(a, b, directions):
        if (x < y) if d == "max" else (x > y):
            return False
        if x != y:
            better = True
    return better


def front_indices(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated rows (duplicates of a front point are kept once)."""
    keep: list[int] = []
    seen: set[tuple] = set()
    for i, a in enumerate(values):
        if tuple(a) in seen or any(dominates(b, a, directions) for j, b in enumerate(values) if j != i):
            continue
        seen.add(tuple(a))
        keep.append(i)
    return keep


def _columns(objectives: Sequence[str]) -> tuple[list[str], list[str]]:
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise PickError(f"Unknown objective {unknown[0]!r}; choose from {', '.join(OBJECTIVES)}.")
    return [OBJECTIVES[o][0] for o in objectives], [OBJECTIVES[o][1] for o in objectives]


def front(df: pd.DataFrame, objectives: Sequence[str] = ("accuracy", "size"), by: str | None = None) -> pd.DataFrame:
    """The Pareto-optimal rows of `df` over `objectives`, per group of column `by` (e.g. 'family' or 'run')
    if given, sorted by the second objective."""
    cols, dirs = _columns(objectives)
    ok = df[(df["status"] == "ok")].dropna(subset=cols) if "status" in df else df.dropna(subset=cols)
    groups = [ok] if by is None else [g for _, g in ok.groupby(by, sort=False)]
    parts = []
    for g in groups:
        idx = front_indices(g[cols].to_numpy().tolist(), dirs)
        parts.append(g.iloc[idx])
    out = pd.concat(parts) if parts else ok.iloc[:0]
    return out.sort_values(cols[1:] + cols[:1] if len(cols) > 1 else cols)


@dataclass(frozen=True)
class Pick:
    row: dict            # the chosen point (a row of the table)
    met_floor: bool      # False: nothing reached the floor, `row` is the closest point
    floor: float
    message: str


def resolve_floor(baseline_accuracy: float | None, floor: float | None = None, max_drop: float | None = None) -> float:
    """An absolute floor (0.97) or one relative to the baseline (max_drop in points: 1.0 = one point below)."""
    if (floor is None) == (max_drop is None):
        raise PickError("Give exactly one of an absolute floor (--floor 0.97) or a drop from the baseline (--max-drop 1.0).")
    if floor is not None:
        if not 0.0 <= floor <= 1.0:
            raise PickError(f"An accuracy floor is a fraction in [0, 1] (0.97 for 97 %), not {floor}.")
        return float(floor)
    if max_drop < 0 or max_drop > 100:
        raise PickError(f"--max-drop is in accuracy points, from 0 to 100, not {max_drop}.")
    if baseline_accuracy is None:
        raise PickError("A drop from the baseline needs the baseline point in the run.")
    return baseline_accuracy - max_drop / 100


def pick(df: pd.DataFrame, floor: float, objective: str = "size") -> Pick:
    """The best point by `objective` with accuracy >= floor; else the most accurate point, said plainly."""
    if objective not in MINIMISED:
        raise PickError(f"Pick by one of {', '.join(MINIMISED)}, not {objective!r}.")
    col, _ = OBJECTIVES[objective]
    measured = df[df["status"] == "ok"].dropna(subset=["accuracy"])
    ok = measured.dropna(subset=[col])
    if measured.empty:
        raise PickError("The run has no measured points to pick from.")
    if ok.empty:
        raise PickError(f"No point of the run has a {OBJECTIVE_NAMES[objective]} ({WHY_MISSING[objective]}); "
                        "pick by another measure.")
    above = ok[ok["accuracy"] >= floor - 1e-12]
    base = ok[ok["family"] == "baseline"]
    base_note = f" (baseline {100 * base['accuracy'].iloc[0]:.2f} %)" if len(base) else ""
    if above.empty:
        best = ok.sort_values(["accuracy", col], ascending=[False, True]).iloc[0]
        return Pick(best.to_dict(), False, floor,
                    f"No point reaches the floor of {100 * floor:.2f} %{base_note}; the closest is "
                    f"{best['label']} at {100 * best['accuracy']:.2f} %.")
    best = above.sort_values([col, "accuracy"], ascending=[True, False]).iloc[0]
    missing = len(measured) - len(ok)
    left_out = (f" Left out: {missing} point(s) with no {OBJECTIVE_NAMES[objective]} ({WHY_MISSING[objective]})."
                if missing else "")
    return Pick(best.to_dict(), True, floor,
                f"{best['label']}: {100 * best['accuracy']:.2f} % >= {100 * floor:.2f} %{base_note}, the smallest "
                f"{OBJECTIVE_NAMES[objective]} at the floor: {value_text(objective, best[col])}.{left_out}")


def baseline_accuracy(df: pd.DataFrame) -> float | None:
    base = df[(df["family"] == "baseline") & (df["status"] == "ok")]
    return float(base["accuracy"].iloc[0]) if len(base) else None


def best_per_family(df: pd.DataFrame, floor: float, objective: str = "size") -> pd.DataFrame:
    """Each family's best point by `objective` at or above `floor`, best first, with its factor against the
    baseline (above 1: that many times smaller or faster): where distillation beats pruning at this floor, and
    where not. A family with nothing at the floor comes last with its most accurate point and `met_floor` False."""
    col, _ = OBJECTIVES[objective]
    ok = df[(df["status"] == "ok")].dropna(subset=["accuracy", col])
    above = ok[ok["accuracy"] >= floor - 1e-12]
    best = above.sort_values([col, "accuracy"], ascending=[True, False]).groupby("family", sort=False).head(1)
    short = ok[~ok["family"].isin(best["family"])].sort_values("accuracy", ascending=False)
    short = short.groupby("family", sort=False).head(1)
    out = pd.concat([best.assign(met_floor=True), short.assign(met_floor=False)], ignore_index=True)
    base = ok[ok["family"] == "baseline"]
    return out.assign(factor=(float(base[col].iloc[0]) / out[col]) if len(base) else float("nan"))
