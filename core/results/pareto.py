"""Pareto fronts and the best point above an accuracy floor (and within budgets): small pure functions.

Every objective states its direction. Accuracy is maximised; size (bytes of the
deployable file, or of the compact archive) and latency (batch 1) are minimised.
Tables come from `core.results.store.points_frame`, in ONNX Runtime's terms; `on_runtime`
gives the same table as another runtime sees it (its file's accuracy, bytes and
latency in those columns), so every front and pick below works for any runtime.

Floors, fronts and picks JUDGE on the validation split (`val_accuracy`) and REPORT the
test split (`accuracy`): choosing on the split you report overstates it. `judge="test"`
judges on the test split; a table with points stored before validation accuracy was
recorded is judged on the test split whole, and `judged_split` says why. A latency timed
on a busy machine (`*_b1_busy`) is left out of latency fronts, picks and budgets.
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
    "ram": ("ram_bytes", "min"),
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
    "ram": "RAM (the tensor arena of a microcontroller)",
}
# why a point may have no value for an objective
WHY_MISSING = {
    "size": "it was not measured", "macs": "it was not measured",
    "archive": "TorchScript and torch.export models have no compact archive",
    "latency": "latency is not timed in a sweep with measure: {latency: false}",
    "torch_latency": "not timed, or an int8 / fp16 file, which runs in ONNX Runtime only",
    "ram": "RAM is measured for LiteRT files, what a microcontroller runs: sweep with measure: {runtimes: [litert]} "
           "and pick with --runtime litert",
}
# what a runtime puts in the (accuracy, size, latency) columns: its own file's accuracy and bytes, its latency,
# its file's validation accuracy (None: not recorded for that runtime) and whether its latency was timed busy
RUNTIME_COLUMNS = {
    "onnxruntime": {"accuracy": "accuracy", "onnx_bytes": "onnx_bytes", "ort_b1_ms": "ort_b1_ms",
                    "val_accuracy": "val_accuracy", "ort_b1_busy": "ort_b1_busy", "ram_bytes": None},
    "executorch": {"accuracy": "pte_accuracy", "onnx_bytes": "pte_bytes", "ort_b1_ms": "et_b1_ms",
                   "val_accuracy": "pte_val_accuracy", "ort_b1_busy": "et_b1_busy", "ram_bytes": None},
    "litert": {"accuracy": "tflite_accuracy", "onnx_bytes": "tflite_bytes", "ort_b1_ms": "lrt_b1_ms",
               "val_accuracy": "tflite_val_accuracy", "ort_b1_busy": "lrt_b1_busy", "ram_bytes": "tflite_ram_bytes"},
    "pytorch": {"accuracy": "torch_accuracy", "onnx_bytes": "state_dict_bytes", "ort_b1_ms": "torch_b1_ms",
                "val_accuracy": None, "ort_b1_busy": "torch_b1_busy", "ram_bytes": None},
    "onnxruntime-cuda": {"accuracy": "accuracy", "onnx_bytes": "onnx_bytes", "ort_b1_ms": "cuda_b1_ms",
                         "val_accuracy": "val_accuracy", "ort_b1_busy": "cuda_b1_busy", "ram_bytes": None},
}
# the split a floor is judged on -> its accuracy column, and what a person reads for it
JUDGES = ("val", "test")
JUDGE_COLUMNS = {"val": "val_accuracy", "test": "accuracy"}
SPLIT_NAMES = {"val": "validation", "test": "the test split"}
# a latency column -> the column that flags it as timed on a busy machine (left out of latency fronts and picks)
BUSY_COLUMNS = {"ort_b1_ms": "ort_b1_busy", "torch_b1_ms": "torch_b1_busy"}
RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "executorch": "ExecuTorch", "litert": "LiteRT", "pytorch": "PyTorch",
                 "onnxruntime-cuda": "ONNX Runtime (CUDA)"}
RUNTIME_FILES = {"onnxruntime": "ONNX file", "executorch": "ExecuTorch .pte file", "litert": "LiteRT .tflite file",
                 "pytorch": "PyTorch state_dict",
                 "onnxruntime-cuda": "ONNX file"}
FAMILIES = ("baseline", "pruning", "quantization", "combined", "per-layer", "distillation", "student alone")


def value_text(objective: str, value) -> str:
    """`value` of `objective` in its unit: '76.7 KB', '0.041 ms', '1.23 M MACs', '98.06 %'."""
    from core.results import describe

    if objective == "macs":
        return "n/a" if value is None or value != value else f"{describe.count(value)} MACs"
    return {"accuracy": describe.pct, "size": describe.size, "archive": describe.size, "latency": describe.ms,
            "torch_latency": describe.ms, "ram": describe.size}[objective](value)


def on_runtime(df: pd.DataFrame, runtime: str = "onnxruntime") -> pd.DataFrame:
    """`df` as `runtime` sees it: its file's accuracy, bytes and batch-1 latency in the 'accuracy', 'onnx_bytes'
    and 'ort_b1_ms' columns (missing where a point did not run there), so fronts and picks need no other code."""
    if runtime not in RUNTIME_COLUMNS:
        raise PickError(f"The runtime is one of {', '.join(RUNTIME_COLUMNS)}, not {runtime!r}.")
    if df.empty:
        return df
    if runtime == "onnxruntime":  # its own columns; no RAM figure (a microcontroller runs LiteRT files)
        return df if "ram_bytes" in df else df.assign(ram_bytes=None)
    unrecorded = {"val_accuracy": None, "ort_b1_busy": False, "ram_bytes": None}  # never another's in their place
    return df.assign(**{**unrecorded, **{dst: df[src] for dst, src in RUNTIME_COLUMNS[runtime].items() if src in df}})


def judged_split(df: pd.DataFrame, judge: str = "val", runtime: str = "onnxruntime") -> tuple[str, str]:
    """(the split floors and picks on `df` judge on, why it is not `judge`, or ''). Validation, unless asked for
    test or some measured point has no validation accuracy (stored before it was recorded, or PyTorch's, which is
    not): then every point is judged on the test split, never a mixture."""
    if judge not in JUDGES:
        raise PickError(f"Judge on val (the validation split) or test, not {judge!r}.")
    if judge == "test":
        return "test", ""
    measured = df[df["status"] == "ok"] if "status" in df else df
    measured = measured[measured["accuracy"].notna()] if "accuracy" in measured else measured
    missing = len(measured) if "val_accuracy" not in measured else int(measured["val_accuracy"].isna().sum())
    if not missing:
        return "val", ""
    if runtime == "pytorch":
        why = "PyTorch's accuracy is recorded on the test split only"
    else:
        why = (f"{missing} of {len(measured)} measured point(s) have no validation accuracy "
               "(stored before edgetrim recorded it)")
    return "test", f"Judged on the test split, not on validation: {why}."


def judged(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """`df` with the 'judged_accuracy' column: the accuracy floors and fronts compare (`split`: val or test)."""
    return df.assign(judged_accuracy=df[JUDGE_COLUMNS[split]] if JUDGE_COLUMNS[split] in df else float("nan"))


def busy_mask(df: pd.DataFrame, columns) -> pd.Series:
    """Rows whose latency in any of `columns` was timed on a busy machine."""
    out = pd.Series(False, index=df.index)
    for c in columns:
        flag = BUSY_COLUMNS.get(c)
        if flag in df:
            out |= df[flag].eq(True)  # None (not timed) and NaN are not busy
    return out


def busy_count(df: pd.DataFrame, objectives: Sequence[str]) -> int:
    """How many measured points with a value for every objective `front` leaves out: a latency among the
    objectives timed on a busy machine."""
    cols, _ = _columns(objectives)
    ok = df[(df["status"] == "ok")].dropna(subset=cols) if "status" in df else df.dropna(subset=cols)
    return int(busy_mask(ok, cols).sum())


def objective_name(objective: str, runtime: str = "onnxruntime") -> str:
    """What a person reads for `objective` on `runtime`: 'ExecuTorch .pte file size', 'executorch latency (batch 1)'."""
    if runtime == "onnxruntime" or objective not in ("size", "latency"):
        return OBJECTIVE_NAMES[objective]
    return f"{RUNTIME_FILES[runtime]} size" if objective == "size" else f"{RUNTIME_NAMES[runtime]} latency (batch 1)"


def runtimes_in(df: pd.DataFrame) -> list[str]:
    """The runtimes some measured point of `df` has a latency or a file for, ONNX Runtime first."""
    return [r for r, cols in RUNTIME_COLUMNS.items()
            if cols["ort_b1_ms"] in df and df[cols["ort_b1_ms"]].notna().any()
            or cols["onnx_bytes"] in ("pte_bytes", "tflite_bytes") and cols["onnx_bytes"] in df
            and df[cols["onnx_bytes"]].notna().any()
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


def front(df: pd.DataFrame, objectives: Sequence[str] = ("accuracy", "size"), by: str | None = None,
          judge: str = "val") -> pd.DataFrame:
    """The Pareto-optimal rows of `df` over `objectives`, per group of column `by` (e.g. 'family' or 'run')
    if given, sorted by the second objective. Accuracy is judged on `judge`'s split (see `judged_split`: the
    whole table's, even per group), in the 'judged_accuracy' column; latencies timed on a busy machine are left
    out (`busy_count` says how many)."""
    cols, dirs = _columns(objectives)
    split, _ = judged_split(df, judge)
    df = judged(df, split)
    cols = ["judged_accuracy" if c == "accuracy" else c for c in cols]
    ok = df[(df["status"] == "ok")].dropna(subset=cols) if "status" in df else df.dropna(subset=cols)
    ok = ok[~busy_mask(ok, cols)]
    groups = [ok] if by is None else [g for _, g in ok.groupby(by, sort=False)]
    parts = []
    for g in groups:
        idx = front_indices(g[cols].to_numpy().tolist(), dirs)
        parts.append(g.iloc[idx])
    out = pd.concat(parts) if parts else ok.iloc[:0]
    return out.sort_values(cols[1:] + cols[:1] if len(cols) > 1 else cols)


@dataclass(frozen=True)
class Pick:
    row: dict            # the chosen point (a row of the table, in the runtime's terms, with 'judged_accuracy')
    met_floor: bool      # False: nothing reached the floor, `row` is the most accurate point
    floor: float
    message: str
    met_budget: bool = True  # False: nothing at the floor is within the budgets; `row` misses them the least
    runtime: str = "onnxruntime"
    judge: str = "val"   # the split the floor was judged on ('test' when asked, or when validation is missing)
    judge_note: str = ""  # why it is not the split asked for, said once ('' when it is)
    busy_left_out: int = 0  # points left out because their latency was timed on a busy machine


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
    """'LiteRT latency 0.21 ms against a budget of 0.1 ms, 0.11 ms (110 %) over'."""
    over = f"({100 * (value / limit - 1):,.0f} %) over"
    if col == "ort_b1_ms":
        return f"{RUNTIME_NAMES[runtime]} latency {value:.3g} ms against a budget of {limit:.3g} ms, " \
               f"{value - limit:.3g} ms {over}"
    if col == "ram_bytes":
        return f"RAM (tensor arena) {value / 1024:,.1f} KB against {limit / 1024:,.0f} KB, " \
               f"{(value - limit) / 1024:,.1f} KB {over}"
    if runtime == "litert":  # a microcontroller's flash: said in KB, as its budget is given
        return f"{RUNTIME_FILES[runtime]} (flash) {value / 1024:,.1f} KB against {limit / 1024:,.0f} KB, " \
               f"{(value - limit) / 1024:,.1f} KB {over}"
    return f"{RUNTIME_FILES[runtime]} {value:,.0f} bytes against a budget of {limit:,.0f} bytes, " \
           f"{value - limit:,.0f} bytes {over}"


def _within_text(col: str, limit: float, runtime: str) -> str:
    """'2 ms', '256 KB of RAM', '1,024 KB of flash' (a LiteRT file is what a microcontroller's flash holds)."""
    if col == "onnx_bytes":
        return f"{limit / 1024:,.0f} KB of flash" if runtime == "litert" else f"{limit:,.0f} bytes"
    return f"{limit:g} ms" if col == "ort_b1_ms" else f"{limit / 1024:,.0f} KB of RAM"


def measured_on(view: pd.DataFrame, runtime: str) -> pd.DataFrame:
    """The measured points of `view` (a table from `on_runtime`); PickError when `runtime` ran none of them."""
    measured = view[view["status"] == "ok"].dropna(subset=["accuracy"])
    if measured.empty:
        raise PickError("The run has no measured points to pick from." if runtime == "onnxruntime" else
                        f"No point of the run ran on {RUNTIME_NAMES[runtime]}; sweep with measure: "
                        f"{{runtimes: [{runtime}]}}.")
    return measured


def _accuracies(row, split: str) -> str:
    """'98.91 % on validation (98.85 % on the test split)': the judged accuracy, then the reported one."""
    judged_text = f"{100 * row['judged_accuracy']:.2f} % on {SPLIT_NAMES[split]}"
    return judged_text if split == "test" else f"{judged_text} ({100 * row['accuracy']:.2f} % on the test split)"


def _refused_by_tflm(df: pd.DataFrame) -> pd.Series:
    """Rows whose .tflite TFLite Micro refused when its RAM was measured: no microcontroller budget takes them."""
    from core.runtimes import micro

    if "tflite_ram_source" not in df:
        return pd.Series(False, index=df.index)
    return ~df["tflite_ram_source"].map(micro.runs_in_tflm).astype(bool)


def pick(df: pd.DataFrame, floor: float, objective: str = "size", max_latency_ms: float | None = None,
         max_bytes: float | None = None, runtime: str = "onnxruntime", judge: str = "val",
         max_ram_bytes: float | None = None) -> Pick:
    """The best point by `objective` with accuracy >= floor and within the budgets (batch-1 latency, file bytes
    (a microcontroller's flash, on LiteRT), RAM (LiteRT's tensor arena)), all on `runtime` (its file's accuracy,
    bytes and latency). The floor is judged on `judge`'s split (validation
    by default: see `judged_split`); the test accuracy is reported beside it. Latencies timed on a busy machine
    are left out of latency picks and budgets, and counted. Nothing at the floor: the most accurate point, said
    plainly. Nothing at the floor within the budgets: the point at the floor that misses them least, and by how
    much."""
    if objective not in MINIMISED:
        raise PickError(f"Pick by one of {', '.join(MINIMISED)}, not {objective!r}.")
    for name, limit in (("latency", max_latency_ms), ("size", max_bytes), ("RAM", max_ram_bytes)):
        if limit is not None and not 0 < limit < float("inf"):
            raise PickError(f"A {name} budget is a positive number, not {limit}.")
    if (max_ram_bytes is not None or objective == "ram") and RUNTIME_COLUMNS.get(runtime, {}).get("ram_bytes") is None:
        raise PickError(f"{WHY_MISSING['ram']}.")
    view = on_runtime(df, runtime)
    col, _ = OBJECTIVES[objective]
    name = objective_name(objective, runtime)
    where = "" if runtime == "onnxruntime" else f" on {RUNTIME_NAMES[runtime]}"
    measured = measured_on(view, runtime)
    split, note = judged_split(measured, judge, runtime)
    measured = judged(measured, split)
    on = f" on {SPLIT_NAMES[split]}"  # what a floor is compared with
    budgets = {c: v for c, v in (("ort_b1_ms", max_latency_ms), ("onnx_bytes", max_bytes), ("ram_bytes", max_ram_bytes))
               if v is not None}
    ok = measured.dropna(subset=[col, *budgets])
    if ok.empty:
        if "ram_bytes" in budgets and objective != "ram" and measured["ram_bytes"].isna().all():
            raise PickError(f"No point of the run has a RAM figure{where} (LiteRT files measured before edgetrim "
                            "recorded it, or not measured on LiteRT): sweep again with measure: {runtimes: [litert]}.")
        missing = "a latency" if "ort_b1_ms" in budgets else f"a {name}"
        raise PickError(f"No point of the run has {missing}{where} ({WHY_MISSING.get(objective, 'not measured')}); "
                        "pick by another measure.")
    busy = busy_mask(ok, [col, *budgets])
    if busy.all():
        raise PickError(f"Every point's latency{where} was timed on a busy machine; time them again on a quiet "
                        "one (or pick by another measure).")
    at_floor_busy = int((busy & (ok["judged_accuracy"] >= floor - 1e-12)).sum())
    ok, n_busy = ok[~busy], int(busy.sum())
    if at_floor_busy and not (ok["judged_accuracy"] >= floor - 1e-12).any():
        raise PickError(f"Every point at the floor of {100 * floor:.2f} % ({at_floor_busy}) had its latency{where} "
                        "timed on a busy machine; time them again on a quiet one (edgetrim retime RUN), or pick by "
                        "another measure.")
    refused = _refused_by_tflm(ok) if "ram_bytes" in budgets or objective == "ram" else pd.Series(False, ok.index)
    if refused.all():
        raise PickError("TFLite Micro cannot run any of these files (LiteRT's 4-bit files); sweep with deploy: "
                        "[fp32, int8] for a microcontroller.")
    ok, n_refused = ok[~refused], int(refused.sum())
    made = dict(runtime=runtime, judge=split, judge_note=note, busy_left_out=n_busy)
    above = ok[ok["judged_accuracy"] >= floor - 1e-12]
    base = ok[ok["family"] == "baseline"]
    base_acc = f"baseline {100 * base['judged_accuracy'].iloc[0]:.2f} %" if len(base) else ""
    base_note = f" ({base_acc})" if base_acc else ""
    if above.empty:
        best = ok.sort_values(["judged_accuracy", col], ascending=[False, True]).iloc[0]
        return Pick(best.to_dict(), False, floor,
                    f"No point{where} reaches the floor of {100 * floor:.2f} %{on}{base_note}; the closest is "
                    f"{best['label']} at {_accuracies(best, split)}.", **made)
    within = above[above.apply(_over, axis=1, budgets=budgets) <= 1e-12] if budgets else above
    if within.empty:
        nearest = above.assign(_over=above.apply(_over, axis=1, budgets=budgets)).sort_values(["_over", col])
        best = nearest.iloc[0]
        misses = [_budget_text(c, best[c], v, runtime) for c, v in budgets.items() if best[c] > v]
        return Pick(best.drop("_over").to_dict(), True, floor,
                    f"No point{where} at the floor of {100 * floor:.2f} %{on} meets the budget; the closest is "
                    f"{best['label']} at {_accuracies(best, split)}: {'; '.join(misses)}.",
                    met_budget=False, **made)
    # of equal cost, a point scored on the whole splits before one seen on a subset (core.results.subset): it needs
    # no settling, and the two differ only within the subset's interval
    whole_first = within.assign(_subset=within["eval_subset"].notna() if "eval_subset" in within else False)
    best = whole_first.sort_values([col, "_subset", "judged_accuracy"], ascending=[True, True, False]).iloc[0]
    best = best.drop("_subset")
    missing = len(measured) - len(ok) - n_busy - n_refused
    left_out = (f" Left out: {missing} point(s) with no {name} "
                f"({WHY_MISSING.get(objective, 'not measured')})." if missing else "")
    if n_refused:
        left_out += f" Left out: {n_refused} point(s) whose file TFLite Micro cannot run (LiteRT's 4-bit files)."
    if n_busy:
        left_out += f" Left out: {n_busy} point(s) whose latency{where} was timed on a busy machine."
    within_note = (" within " + " and ".join(_within_text(c, v, runtime) for c, v in budgets.items())) if budgets else ""
    reported = "" if split == "test" else f", {100 * best['accuracy']:.2f} % on the test split"
    return Pick(best.to_dict(), True, floor,
                f"{best['label']}{where}: {100 * best['judged_accuracy']:.2f} % on {SPLIT_NAMES[split]} (floor "
                f"{100 * floor:.2f} %{', ' + base_acc if base_acc else ''}){reported}; the smallest {name}"
                f"{within_note} at the floor: {value_text(objective, best[col])}.{left_out}", **made)


def baseline_accuracy(df: pd.DataFrame, judge: str = "val", runtime: str = "onnxruntime") -> float | None:
    """The baseline's accuracy on the split `df` is judged on (`judged_split`): what a drop from it starts at."""
    split, _ = judged_split(df, judge, runtime)
    col = JUDGE_COLUMNS[split]
    if col not in df:
        return None
    base = df[(df["family"] == "baseline") & (df["status"] == "ok") & df[col].notna()]
    return float(base[col].iloc[0]) if len(base) else None


def best_per_family(df: pd.DataFrame, floor: float, objective: str = "size", judge: str = "val",
                    budgets: dict[str, float] | None = None) -> pd.DataFrame:
    """Each family's best point by `objective` at or above `floor` (judged on `judge`'s split, the
    'judged_accuracy' column; latencies timed on a busy machine left out) and within `budgets` (column -> limit,
    as `pick` takes them), best first, with its factor against the baseline (above 1: that many times smaller or
    faster): where distillation beats pruning at this floor, and where not. A family with nothing at the floor
    within the budgets comes last with its most accurate point and `met_floor` False."""
    col, _ = OBJECTIVES[objective]
    budgets = {c: v for c, v in (budgets or {}).items() if v is not None}
    split, _ = judged_split(df, judge)
    ok = judged(df[(df["status"] == "ok")], split).dropna(subset=["judged_accuracy", col])
    ok = ok[~busy_mask(ok, [col, *budgets])]
    above = ok[ok["judged_accuracy"] >= floor - 1e-12]
    for c, limit in budgets.items():
        above = above[above[c] <= limit]  # a missing value is not within a budget
    best = above.sort_values([col, "judged_accuracy"], ascending=[True, False]).groupby("family", sort=False).head(1)
    short = ok[~ok["family"].isin(best["family"])].sort_values("judged_accuracy", ascending=False)
    short = short.groupby("family", sort=False).head(1)
    out = pd.concat([best.assign(met_floor=True), short.assign(met_floor=False)], ignore_index=True)
    base = ok[ok["family"] == "baseline"]
    return out.assign(factor=(float(base[col].iloc[0]) / out[col]) if len(base) else float("nan"))
