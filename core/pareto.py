"""Pareto fronts and the best point above an accuracy floor (and within budgets): small pure functions.

Every objective states its direction. Accuracy is maximised; size (bytes of the
deployable file, or of the compact archive) and latency (batch 1) are minimised.
Tables come from `core.store.points_frame`, in ONNX Runtime's terms; `on_runtime`
gives the same table as another runtime sees it (its file's accuracy, bytes and
latency in those columns), so every front and pick below works for any runtime.
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
# what a runtime puts in the (accuracy, size, latency) columns: its own file's accuracy and bytes, its latency
RUNTIME_COLUMNS = {
    "onnxruntime": {"accuracy": "accuracy", "onnx_bytes": "onnx_bytes", "ort_b1_ms": "ort_b1_ms"},
    "executorch": {"accuracy": "pte_accuracy", "onnx_bytes": "pte_bytes", "ort_b1_ms": "et_b1_ms"},
    "pytorch": {"accuracy": "torch_accuracy", "onnx_bytes": "state_dict_bytes", "ort_b1_ms": "torch_b1_ms"},
    "onnxruntime-cuda": {"accuracy": "accuracy", "onnx_bytes": "onnx_bytes", "ort_b1_ms": "cuda_b1_ms"},
}
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "executorch": "ExecuTorch", "pytorch": "PyTorch",
                 "onnxruntime-cuda": "ONNX Runtime (CUDA)"}
RUNTIME_FILES = {"onnxruntime": "ONNX file", "executorch": "ExecuTorch .pte file", "pytorch": "PyTorch state_dict",
                 "onnxruntime-cuda": "ONNX file"}
FAMILIES = ("baseline", "pruning", "quantization", "combined", "per-layer", "distillation", "student alone")


def value_text(objective: str, value) -> str:
    """`value` of `objective` in its unit: '76.7 KB', '0.041 ms', '1.23 M MACs', '98.06 %'."""
    from core import describe

    if objective == "macs":
        return "n/a" if value is None or value != value else f"{describe.count(value)} MACs"
    return {"accuracy": describe.pct, "size": describe.size, "archive": describe.size, "latency": describe.ms,
            "torch_latency": describe.ms}[objective](value)


def on_runtime(df: pd.DataFrame, runtime: str = "onnxruntime") -> pd.DataFrame:
    """`df` as `runtime` sees it: its file's accuracy, bytes and batch-1 latency in the 'accuracy', 'onnx_bytes'
    and 'ort_b1_ms' columns (missing where a point did not run there), so fronts and picks need no other code."""
    if runtime not in RUNTIME_COLUMNS:
        raise PickError(f"The runtime is one of {', '.join(RUNTIME_COLUMNS)}, not {runtime!r}.")
    if runtime == "onnxruntime" or df.empty:
        return df
    return df.assign(**{dst: df[src] for dst, src in RUNTIME_COLUMNS[runtime].items() if src in df})


def objective_name(objective: str, runtime: str = "onnxruntime") -> str:
    """What a person reads for `objective` on `runtime`: 'ExecuTorch .pte file size', 'executorch latency (batch 1)'."""
    if runtime == "onnxruntime" or objective not in ("size", "latency"):
        return OBJECTIVE_NAMES[objective]
    return f"{RUNTIME_FILES[runtime]} size" if objective == "size" else f"{RUNTIME_NAMES[runtime]} latency (batch 1)"


def runtimes_in(df: pd.DataFrame) -> list[str]:
    """The runtimes some measured point of `df` has a latency or a file for, ONNX Runtime first."""
    return [r for r, cols in RUNTIME_COLUMNS.items()
            if cols["ort_b1_ms"] in df and df[cols["ort_b1_ms"]].notna().any()
            or r == "executorch" and "pte_bytes" in df and df["pte_bytes"].notna().any()
            or r == "onnxruntime"]


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
    row: dict            # the chosen point (a row of the table, in the runtime's terms)
    met_floor: bool      # False: nothing reached the floor, `row` is the most accurate point
    floor: float
    message: str
    met_budget: bool = True  # False: nothing at the floor is within the budgets; `row` misses them the least
    runtime: str = "onnxruntime"


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


def _over(row, budgets: dict[str, float]) -> float:
    """How far `row` is over its worst budget, as a fraction (0.25: 25 % over); 0 within all."""
    return max([0.0] + [row[col] / limit - 1 for col, limit in budgets.items()])


def _budget_text(col: str, value: float, limit: float, runtime: str) -> str:
    if col == "ort_b1_ms":
        return f"{RUNTIME_NAMES[runtime]} latency {value:.3g} ms against a budget of {limit:.3g} ms"
    return f"{RUNTIME_FILES[runtime]} {value:,.0f} bytes against a budget of {limit:,.0f} bytes"


def measured_on(view: pd.DataFrame, runtime: str) -> pd.DataFrame:
    """The measured points of `view` (a table from `on_runtime`); PickError when `runtime` ran none of them."""
    measured = view[view["status"] == "ok"].dropna(subset=["accuracy"])
    if measured.empty:
        raise PickError("The run has no measured points to pick from." if runtime == "onnxruntime" else
                        f"No point of the run ran on {RUNTIME_NAMES[runtime]}; sweep with measure: "
                        f"{{runtimes: [{runtime}]}}.")
    return measured


def pick(df: pd.DataFrame, floor: float, objective: str = "size", max_latency_ms: float | None = None,
         max_bytes: float | None = None, runtime: str = "onnxruntime") -> Pick:
    """The best point by `objective` with accuracy >= floor and within the budgets (batch-1 latency, file bytes),
    all on `runtime` (its file's accuracy, bytes and latency). Nothing at the floor: the most accurate point, said
    plainly. Nothing at the floor within the budgets: the point at the floor that misses them least, and by how
    much."""
    if objective not in MINIMISED:
        raise PickError(f"Pick by one of {', '.join(MINIMISED)}, not {objective!r}.")
    for name, limit in (("latency", max_latency_ms), ("size", max_bytes)):
        if limit is not None and not 0 < limit < float("inf"):
            raise PickError(f"A {name} budget is a positive number, not {limit}.")
    view = on_runtime(df, runtime)
    col, _ = OBJECTIVES[objective]
    name = objective_name(objective, runtime)
    where = "" if runtime == "onnxruntime" else f" on {RUNTIME_NAMES[runtime]}"
    measured = measured_on(view, runtime)
    budgets = {c: v for c, v in (("ort_b1_ms", max_latency_ms), ("onnx_bytes", max_bytes)) if v is not None}
    ok = measured.dropna(subset=[col, *budgets])
    if ok.empty:
        missing = "a latency" if "ort_b1_ms" in budgets else f"a {name}"
        raise PickError(f"No point of the run has {missing}{where} ({WHY_MISSING.get(objective, 'not measured')}); "
                        "pick by another measure.")
    above = ok[ok["accuracy"] >= floor - 1e-12]
    base = ok[ok["family"] == "baseline"]
    base_note = f" (baseline {100 * base['accuracy'].iloc[0]:.2f} %)" if len(base) else ""
    if above.empty:
        best = ok.sort_values(["accuracy", col], ascending=[False, True]).iloc[0]
        return Pick(best.to_dict(), False, floor,
                    f"No point reaches the floor of {100 * floor:.2f} %{where}{base_note}; the closest is "
                    f"{best['label']} at {100 * best['accuracy']:.2f} %.", runtime=runtime)
    within = above[above.apply(_over, axis=1, budgets=budgets) <= 1e-12] if budgets else above
    if within.empty:
        nearest = above.assign(_over=above.apply(_over, axis=1, budgets=budgets)).sort_values(["_over", col])
        best = nearest.iloc[0]
        misses = [f"{_budget_text(c, best[c], v, runtime)}, "
                  + (f"{best[c] - v:.3g} ms" if c == "ort_b1_ms" else f"{best[c] - v:,.0f} bytes")
                  + f" ({100 * (best[c] / v - 1):.0f} %) over" for c, v in budgets.items() if best[c] > v]
        return Pick(best.drop("_over").to_dict(), True, floor,
                    f"No point at the floor of {100 * floor:.2f} %{where} meets the budget; the closest is "
                    f"{best['label']} at {100 * best['accuracy']:.2f} %: {'; '.join(misses)}.",
                    met_budget=False, runtime=runtime)
    best = within.sort_values([col, "accuracy"], ascending=[True, False]).iloc[0]
    missing = len(measured) - len(ok)
    left_out = (f" Left out: {missing} point(s) with no {name} "
                f"({WHY_MISSING.get(objective, 'not measured')})." if missing else "")
    within_note = (" within " + " and ".join(f"{v:g} ms" if c == "ort_b1_ms" else f"{v:,.0f} bytes"
                                             for c, v in budgets.items())) if budgets else ""
    return Pick(best.to_dict(), True, floor,
                f"{best['label']}: {100 * best['accuracy']:.2f} % >= {100 * floor:.2f} %{where}{base_note}, the "
                f"smallest {name}{within_note} at the floor: "
                f"{value_text(objective, best[col])}.{left_out}", runtime=runtime)


def baseline_accuracy(df: pd.DataFrame) -> float | None:
    base = df[(df["family"] == "baseline") & (df["status"] == "ok") & df["accuracy"].notna()]
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
