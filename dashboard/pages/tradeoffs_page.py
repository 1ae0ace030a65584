"""Trade-offs: accuracy against size and latency, Pareto fronts per family and per run, a floor, a pick.

The floor, the fronts and the pick are judged on the validation split by default (choosing on the split
you report overstates it) and the test accuracy is reported beside it; "Judge on" switches to the test
split. A point the person chose (a click, or the selectbox) stays selected while the floor and the budget
move, under the app's own key, until they choose again or ask for the recommended point.
"""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.engine import layerwise
from core.methods import spec as S
from core.methods.prune import UnstructuredPrune
from core.results import pareto
from core.runtimes import measure as ME
from core.runtimes import micro
from dashboard import cache, figures, fmt, progress, state

# objective (core's name) -> what a person reads (size and latency are the chosen runtime's: see _x_names)
X_NAMES = {o: pareto.OBJECTIVE_NAMES[o][0].upper() + pareto.OBJECTIVE_NAMES[o][1:]
           for o in ("archive", "size", "latency", "torch_latency", "macs", "ram")}  # core's names, archive first
NO_BUDGET = "no budget"
OWN_LIMITS = "my own limits"
JUDGE_NAMES = {"val": "Validation split", "test": "Test split"}


def _x_names(runtime: str) -> dict[str, str]:
    """X_NAMES with size and latency spelled for `runtime` ('ExecuTorch .pte file size')."""
    names = {o: pareto.objective_name(o, runtime) for o in X_NAMES}
    return {o: n[0].upper() + n[1:] for o, n in names.items()}


def _budget_steps(values: pd.Series, also: list[float] = ()) -> list[float]:
    """Budgets a slider offers: 1-2-5 steps (and 1.5, 3, 4, 7) from below the least of `values` to above the
    most (latencies in ms, sizes in KB), and the values `also` names (a board's figures)."""
    lo, hi = float(values.min()), float(values.max())
    steps = [float(f"{m * 10.0 ** e:.3g}") for e in range(-4, 7) for m in (1, 1.5, 2, 3, 4, 5, 7)]
    inside = sorted({v for v in steps if lo / 1.5 <= v <= hi * 1.5} | {float(v) for v in also})
    return inside or [round(hi, 4)]
BEST = {"archive": "the smallest", "size": "the smallest", "latency": "the fastest", "torch_latency": "the fastest",
        "macs": "the least compute", "ram": "the least RAM"}
GAIN = {"archive": ("smaller", "larger"), "size": ("smaller", "larger"), "latency": ("faster", "slower"),
        "torch_latency": ("faster", "slower"), "macs": ("less compute", "more compute"), "ram": ("less RAM", "more RAM")}


def _in_sentence(name: str) -> str:
    """A title-case name inside a sentence: 'compact archive size', but 'LiteRT .tflite file size' and 'ONNX
    file size' keep a proper name's capitals."""
    first = name.split(" ")[0]
    return name if any(c.isupper() for c in first[1:]) else name[0].lower() + name[1:]


def _board_chosen() -> None:
    """A board puts its flash and RAM into the two budgets (a person can move on from them), and the chart and the
    recommendation on the .tflite file, which is what its flash holds."""
    board = micro.BOARDS.get(state.get("tradeoffs.board"))
    if board is not None:
        state.put("tradeoffs.flash_kb", float(board.flash_kb))
        state.put("tradeoffs.ram_kb", float(board.ram_kb))
        state.put("tradeoffs.x", "size")
        state.put("tradeoffs.pick_by", "size")


def _limits_moved() -> None:
    """A budget moved off the board's figures: the limits are the person's own now."""
    board = micro.BOARDS.get(state.get("tradeoffs.board"))
    if board is not None and (state.get("tradeoffs.flash_kb"), state.get("tradeoffs.ram_kb")) != \
            (board.flash_kb, board.ram_kb):
        state.put("tradeoffs.board", OWN_LIMITS)


def _device_budgets(view: pd.DataFrame, swept_for: str | None) -> tuple[float | None, float | None]:
    """A microcontroller's budgets on LiteRT: a board (at first the one the run was swept for), or flash and RAM
    limits of one's own (KB; None: none)."""
    if swept_for in micro.BOARDS and "tradeoffs.board" not in st.session_state:
        state.put("tradeoffs.board", swept_for)
        _board_chosen()
    d1, d2, d3 = st.columns([2, 1, 1])
    board_text = {n: f"{n}: {b.flash_kb:,} KB flash, {b.ram_kb:,} KB RAM ({b.chip.split(':')[0]})"
                  for n, b in micro.BOARDS.items()}
    state.widget(d1.selectbox, "Microcontroller", key="tradeoffs.board", default=OWN_LIMITS,
                 options=[OWN_LIMITS, *micro.BOARDS], format_func=lambda n: board_text.get(n, n),
                 on_change=_board_chosen,
                 help="A board's flash (the .tflite file) and RAM (the tensor arena TFLite Micro allocates) become "
                      "the budgets; the runtime's code and your application need some of each on top.")
    kb = lambda v: v if v == NO_BUDGET else f"{v:,g} KB"  # noqa: E731
    flash_steps = _budget_steps(view["onnx_bytes"].dropna() / 1024, [b.flash_kb for b in micro.BOARDS.values()])
    flash = state.widget(d2.select_slider, "Flash budget", key="tradeoffs.flash_kb", default=NO_BUDGET,
                         options=flash_steps + [NO_BUDGET], format_func=kb, on_change=_limits_moved,
                         valid=lambda v: v == NO_BUDGET or v in flash_steps,
                         help="The most flash the .tflite file may take (it is linked into flash as it is).")
    ram_steps = _budget_steps(view["ram_bytes"].dropna() / 1024, [b.ram_kb for b in micro.BOARDS.values()])
    ram = state.widget(d3.select_slider, "RAM budget", key="tradeoffs.ram_kb", default=NO_BUDGET,
                       options=ram_steps + [NO_BUDGET], format_func=kb, on_change=_limits_moved,
                       valid=lambda v: v == NO_BUDGET or v in ram_steps,
                       help="The most RAM the tensor arena may take: "
                            + ("measured by TFLite Micro's own interpreter" if micro.memory_source() == "tflite-micro"
                               else "planned from the graph (a lower bound: tflite-micro is not installed)") + ".")
    return (None if flash == NO_BUDGET else float(flash)), (None if ram == NO_BUDGET else float(ram))


def _versus(factor: float, objective: str) -> str:
    """'3.9x smaller', '1.7x larger', 'same' against the baseline."""
    if factor != factor:
        return ""
    if abs(factor - 1) < 0.05:
        return "same as the baseline"
    better, worse = GAIN[objective]
    return f"{factor:.1f}x {better}" if factor > 1 else f"{1 / factor:.1f}x {worse}"


def run_name(run: str) -> str:
    """A run as a person reads it: Explore's runs without the digest that keeps them apart."""
    return run.rsplit(" · ", 1)[0] if cache.is_explore_run(run) and run.count(" · ") >= 3 else run


def _points(runs: list[str]) -> pd.DataFrame:
    return pd.concat([cache.run_table(r) for r in runs], ignore_index=True)


def _x_changed() -> None:
    """The recommendation follows the x axis, unless the person chose another measure for it."""
    if state.get("tradeoffs.pick_follows_x", True):
        state.put("tradeoffs.pick_by", state.get("tradeoffs.x"))


def _pick_changed() -> None:
    st.session_state["tradeoffs.pick_follows_x"] = state.get("tradeoffs.pick_by") == state.get("tradeoffs.x")


def _chart_selected() -> None:
    """A click on the chart chooses that point (kept under the app's own key for the Export page)."""
    event = st.session_state.get("tradeoff_chart")
    points = event.selection.points if event is not None and event.selection else []
    keys = [p["customdata"][0] for p in points if p.get("customdata")]
    if keys:
        state.put("chosen_point", keys[0])
        _person_chose()


def _retime_button(run: str, busy: int) -> None:
    """Latencies timed on a busy machine are left out of latency fronts and budgets: offer to time them again (from
    the points' kept files, nothing rebuilt), best while the machine is quiet."""
    if not busy:
        return
    left, right = st.columns([1, 3])
    right.caption(f"{busy} point(s) of {run_name(run)} were timed while other work crowded the cores, so their "
                  "latency is left out of latency fronts and budgets until timed again.")
    if not left.button(f"Time the {busy} busy point(s) again", key="tradeoffs.retime",
                       help="Times each from the files kept when it was measured (nothing is rebuilt); on a quiet "
                            "machine the marks go."):
        return
    try:
        r = progress.run(f"retime|{run}", f"Timing the busy points of {run_name(run)} again",
                         lambda report: cache.retime_run(run, report))
    except Exception as e:  # one sentence, never a traceback
        st.error(f"The timing did not complete: {fmt.one_sentence(e)}")
        return
    st.session_state["tradeoffs.retimed"] = (
        f"Timed {r.done} point(s) again" + (f"; {r.still_busy} still on a crowded machine (still marked)"
                                            if r.still_busy else "; none is marked busy now")
        + (f"; {len(r.gone)} have no kept files and were left as they were" if r.gone else "") + ".")
    st.rerun()


def _person_chose() -> None:
    """The selected point is the person's own choice: it stays while the floor and the budget move."""
    st.session_state["tradeoffs.person_chose"] = state.get("chosen_point")


def _select_recommended() -> None:
    state.put("chosen_point", st.session_state.get("recommended_key"))
    st.session_state.pop("tradeoffs.person_chose", None)


def _selection(recommended: str, shown: set) -> str:
    """The point to select: the person's own choice while it is on the chart (whatever the floor and the budget
    recommend meanwhile, an unreachable budget included), else the recommended point when the recommendation
    changes or the selection left the chart."""
    chosen = state.get("chosen_point")
    mine = chosen is not None and st.session_state.get("tradeoffs.person_chose") == chosen and chosen in shown
    if st.session_state.get("recommended_key") != recommended:  # a new floor or measure: select its pick
        st.session_state["recommended_key"] = recommended
        if not mine:
            state.put("chosen_point", recommended)
    elif chosen not in shown:
        state.put("chosen_point", recommended)
    return state.get("chosen_point")


FLOOR_SPAN = 10.0  # accuracy points the floor slider spans below the best point: 0.1-point steps stay usable


def _floor_range(ok: pd.DataFrame) -> tuple[float, float]:
    """From a bit below the least accurate point, but at most FLOOR_SPAN points below the best, to the best, in %
    (of the judged accuracy: `pareto.judged`)."""
    accs = 100 * ok["judged_accuracy"].dropna()
    lo = max(0.0, math.floor(float(accs.min())) - 1.0, math.floor(float(accs.max())) - FLOOR_SPAN)
    hi = min(100.0, math.ceil(float(accs.max()) * 10) / 10)
    return float(lo), float(max(hi, lo + 0.1))


def _ms(v: float) -> str:
    """Three significant digits: a budget of 0.005 ms and a point at 0.0054 ms read as different numbers."""
    return f"{v:.3g} ms"


def _accuracy(row: dict, split: str) -> str:
    """'98.91 % on validation, 98.85 % on the test split': the judged accuracy, then the reported one."""
    judged = f"{fmt.pct(row['judged_accuracy'])} on {pareto.SPLIT_NAMES[split]}"
    return judged if split == "test" else f"{judged}, {fmt.pct(row['accuracy'])} on the test split"


def _message(choice: pareto.Pick, run: str, pick_by: str, base_acc: float | None, budget: float | None,
             device: str = "") -> str:
    row, floor, runtime, split = choice.row, choice.floor, choice.runtime, choice.judge
    base = f", baseline {fmt.pct(base_acc)}" if base_acc is not None else ""
    on = "" if runtime == "onnxruntime" else f" on {figures.RUNTIME_NAMES[runtime]}"
    busy = (f" Left out: {choice.busy_left_out} point(s) whose latency was timed on a busy machine."
            if choice.busy_left_out else "")
    if not choice.met_floor:
        return (f"No point of {run_name(run)} reaches the floor of {100 * floor:.1f} % on "
                f"{pareto.SPLIT_NAMES[split]}{on}{base}; the closest is {row['label']} at {_accuracy(row, split)}."
                f"{busy}")
    if not choice.met_budget and (device or budget is None):
        return choice.message  # core's sentence: the closest point, and by how much it misses flash or RAM
    if not choice.met_budget:
        over = row["ort_b1_ms"] - budget
        return (f"No point of {run_name(run)} at the floor of {100 * floor:.1f} % runs within {_ms(budget)}"
                f"{on}. The closest is **{row['label']}** at {_ms(row['ort_b1_ms'])}, {_ms(over)} "
                f"({100 * over / budget:.0f} %) over the budget, {_accuracy(row, split)}.{busy}")
    value = figures.human(pick_by, row[pareto.OBJECTIVES[pick_by][0]])
    within = ", within " + " and ".join(([_ms(budget)] if budget is not None else []) + ([device] if device else [])) \
        if budget is not None or device else ""
    return (f"Recommended in {run_name(run)}{on}: **{row['label']}**, {fmt.pct(row['judged_accuracy'])} on "
            f"{pareto.SPLIT_NAMES[split]} (floor {100 * floor:.1f} %{base}{within})"
            + ("" if split == "test" else f", {fmt.pct(row['accuracy'])} on the test split")
            + f"; {_in_sentence(_x_names(runtime)[pick_by])} {value}, {BEST[pick_by]} at or above the floor.{busy}")


def _accuracy_columns(df: pd.DataFrame, split: str) -> dict:
    """The accuracy columns of a table: the judged one (validation) beside the reported one (test)."""
    cols = {} if split == "test" else {"Validation accuracy": [fmt.pct(a) for a in df["judged_accuracy"]]}
    return {**cols, "Test accuracy": [fmt.pct(a) for a in df["accuracy"]]}


def _human_marked(objective: str, df: pd.DataFrame) -> list[str]:
    """`objective`'s values in its unit, a latency timed on a busy machine marked so."""
    col = pareto.OBJECTIVES[objective][0]
    busy = pareto.busy_mask(df, [col])
    return [figures.human(objective, v) + (" (busy machine)" if b else "") for v, b in zip(df[col], busy)]


def _front_table(ok: pd.DataFrame, objective: str, runtime: str, split: str) -> pd.DataFrame:
    fr = pareto.front(ok, ["accuracy", objective], by="family", judge=split)
    fits = {} if fr["ram_bytes"].isna().all() else {"Fits on": [
        ", ".join(micro.boards_fitting(f, r, s)) or
        ("none of the boards" if micro.runs_in_tflm(s) else "none: TFLite Micro cannot run it")
        for f, r, s in zip(fr["onnx_bytes"], fr["ram_bytes"], fr["tflite_ram_source"])]}
    return pd.DataFrame({"Run": fr["run"].map(run_name), "Family": fr["family"], "Point": fr["label"],
                         **_accuracy_columns(fr, split),
                         _x_names(runtime)[objective]: _human_marked(objective, fr), **fits,
                         "Notes": fr["notes"]})


def _families_at_floor(df: pd.DataFrame, floor: float, pick_by: str, run: str, runtime: str, split: str,
                       limits: dict[str, float | None]) -> None:
    """Each family's best point at the floor and within the budgets, side by side: where students beat pruning,
    and where not."""
    best = pareto.best_per_family(df, floor, pick_by, judge=split, budgets=limits)
    nothing = "nothing at the floor" + (" within the budgets" if any(v is not None for v in limits.values()) else "")
    if best["family"].nunique() < 2:
        return
    col = pareto.OBJECTIVES[pick_by][0]
    name = _x_names(runtime)[pick_by]
    st.markdown(f"**Each family's best at the floor** ({run_name(run)}, by {_in_sentence(name)})")
    st.dataframe(pd.DataFrame({
        "Family": best["family"],
        "Point": [p if met else f"{nothing}; most accurate: {p}" for p, met in zip(best["label"], best["met_floor"])],
        **_accuracy_columns(best, split),
        name: [figures.human(pick_by, v) for v in best[col]],
        "vs baseline": [_versus(f, pick_by) if met else "" for f, met in zip(best["factor"], best["met_floor"])]}),
        hide_index=True, width="stretch")


def _runtimes_side_by_side(df: pd.DataFrame, runtimes: list[str], floor: float, chosen: str | None,
                           split: str) -> None:
    """The selected point on every runtime it ran on, and each runtime's front for the first run."""
    row = df[df["key"] == chosen]
    if len(row):
        r = row.iloc[0]
        lines = []
        for runtime in runtimes:
            v = pareto.on_runtime(row, runtime).iloc[0]
            if v["accuracy"] != v["accuracy"] or v["accuracy"] is None:
                continue
            val = v["val_accuracy"]
            timed = v["ort_b1_ms"] == v["ort_b1_ms"] and v["ort_b1_ms"] is not None
            lines.append({"Runtime": figures.RUNTIME_NAMES[runtime], "File": pareto.RUNTIME_FILES[runtime],
                          "File size": fmt.size(v["onnx_bytes"]),
                          "Validation accuracy": "not recorded" if val is None or val != val else fmt.pct(val),
                          "Test accuracy": fmt.pct(v["accuracy"]),
                          "Batch 1": (fmt.ms(v["ort_b1_ms"]) + (" (busy machine)" if v["ort_b1_busy"] in (True,)
                                                                else "")) if timed else "not timed"})
        st.markdown(f"**{r['label']}** on each runtime (threads: {r['threads'] if r['threads'] == r['threads'] else '?'})")
        st.dataframe(pd.DataFrame(lines), hide_index=True, width="stretch")
    st.plotly_chart(figures.runtime_fronts(df, runtimes, floor, judge=split), key="runtime_chart")


def main() -> None:
    st.title("Trade-offs")
    retimed = st.session_state.pop("tradeoffs.retimed", None)
    if retimed:
        st.success(retimed)
    all_runs = cache.runs()
    if all_runs.empty:
        st.info("No runs yet: start one on the Sweep page (or `edgetrim sweep sweeps/default.yaml`).")
        return
    names = list(all_runs["run"])
    sweeps = [n for n in names if not cache.is_explore_run(n)] or names
    default = [st.session_state.get("active_run")] if st.session_state.get("active_run") in names else sweeps[-1:]
    runs = state.widget(st.multiselect, "Runs (several overlay their fronts: method against method, run against run, "
                        "model against model)", key="tradeoffs.runs", default=default, options=names,
                        format_func=run_name, valid=lambda v: bool(v) and all(r in names for r in v))
    if not runs:
        st.info("Choose at least one run.")
        return
    df = _points(runs)
    ok = df[df["status"] == "ok"]
    if ok.empty:
        st.warning("These runs have no measured points yet.")
        return
    available = pareto.runtimes_in(ok)
    r1, rj, r2 = st.columns([1, 1, 2])
    runtime = state.widget(r1.selectbox, "Runtime", key="tradeoffs.runtime", default="onnxruntime",
                           options=available, format_func=figures.RUNTIME_NAMES.get,
                           help="Where the model will run: accuracy, file size and latency become that runtime's "
                                "own file's. A sweep adds runtimes under Runtimes on the Sweep page.")
    judge = state.widget(rj.selectbox, "Judge the floor on", key="tradeoffs.judge", default="val",
                         options=list(JUDGE_NAMES), format_func=JUDGE_NAMES.get,
                         help="The split the floor, the fronts and the recommendation compare. Validation by "
                              "default: choosing on the split you report overstates it. The test accuracy is "
                              "reported beside it either way.")
    view = pareto.on_runtime(ok, runtime).dropna(subset=["accuracy"])
    if view.empty:
        st.warning(f"No point of these runs ran on {figures.RUNTIME_NAMES[runtime]}; add it under Runtimes on the "
                   "Sweep page.")
        return
    split, why = pareto.judged_split(view, judge, runtime)  # one split for every run on the page
    view = pareto.judged(view, split)
    if why:
        st.caption(why)
    x_names = _x_names(runtime)
    latencies = view["ort_b1_ms"].dropna()
    budget = None
    if len(latencies):
        steps = _budget_steps(latencies)
        choice_ms = state.widget(r2.select_slider, f"Latency budget on {figures.RUNTIME_NAMES[runtime]} "
                                 "(batch 1)", key="tradeoffs.budget", default=NO_BUDGET, options=steps + [NO_BUDGET],
                                 format_func=lambda v: v if v == NO_BUDGET else f"{v:g} ms",
                                 valid=lambda v: v == NO_BUDGET or v in steps,
                                 help="The most time one input may take. The recommendation is the best point at "
                                      "or above the floor that runs within it; the green region is where such "
                                      "points lie.")
        budget = None if choice_ms == NO_BUDGET else float(choice_ms)
    else:
        r2.caption(f"No point was timed on {figures.RUNTIME_NAMES[runtime]}: no latency budget.")
    has_ram = view["ram_bytes"].notna().any()  # LiteRT files, whose flash and RAM a microcontroller judges
    flash_kb, ram_kb = _device_budgets(view, cache.run_board(runs[0])) if has_ram else (None, None)
    device = " and ".join(t for t in (flash_kb and f"{flash_kb:,g} KB of flash", ram_kb and f"{ram_kb:,g} KB of RAM")
                          if t)
    x_options = [o for o in X_NAMES if view[pareto.OBJECTIVES[o][0]].notna().any()] or ["size"]  # with values
    c1, c2, c3 = st.columns(3)
    # the compact archive, where points spread most; a run of TorchScript / .pt2 graphs has none: its file instead
    default_x = "archive" if view["archive_bytes"].notna().any() else "size"
    objective = state.widget(c1.selectbox, "x axis", key="tradeoffs.x", default=default_x, options=x_options,
                             format_func=x_names.get, on_change=_x_changed,
                             help="What each point costs. The compact archive is the smallest file a point can be "
                                  "shipped as (packed low-bit codes, sparse masks); the runtime's file is what it "
                                  "loads.")
    base_acc = pareto.baseline_accuracy(view[view["run"] == runs[0]], split, runtime)
    lo, hi = _floor_range(view)
    default_floor = min(hi, max(lo, round(100 * base_acc - 1, 1))) if base_acc else lo
    floor_pct = state.widget(c2.slider, "Accuracy floor (%)", lo, hi, step=0.1, key="tradeoffs.floor",
                             default=float(default_floor), valid=lambda v: isinstance(v, float) and lo <= v <= hi,
                             help=f"The least accuracy on the {JUDGE_NAMES[split].lower()} you accept (Judge the "
                                  "floor on). The recommendation is the best point at or above it; the default is "
                                  "one point below the baseline. The range spans the measured points, at most "
                                  f"{FLOOR_SPAN:.0f} points below the best one.")
    pick_by = state.widget(c3.selectbox, "Recommend the best by", key="tradeoffs.pick_by", default=objective,
                           options=x_options, format_func=x_names.get, on_change=_pick_changed,
                           help="Among the points at or above the floor, the recommended one is the smallest or "
                                "fastest by this measure. It follows the x axis unless you choose another here.")
    floor = floor_pct / 100
    first = ok[ok["run"] == runs[0]]
    _retime_button(runs[0], pareto.busy_count(pareto.on_runtime(first, runtime), ["latency"]))
    try:
        choice = pareto.pick(first, floor, pick_by, max_latency_ms=budget, runtime=runtime, judge=split,
                             max_bytes=flash_kb and flash_kb * 1024, max_ram_bytes=ram_kb and ram_kb * 1024)
    except ValueError as e:
        where = f" from {run_name(runs[0])}, the first run chosen" if len(runs) > 1 else ""
        st.warning(f"No recommendation{where} by {_in_sentence(x_names[pick_by])}: {fmt.one_sentence(e)}")
        return
    (st.success if choice.met_floor and choice.met_budget else st.warning)(
        _message(choice, runs[0], pick_by, base_acc, budget, device))
    state.put("export.runtime", runtime if runtime in ("onnxruntime", "executorch", "litert") else "onnxruntime")
    recommended = choice.row["key"]
    accs = (lambda r: fmt.pct(r["accuracy"])) if split == "test" else \
        (lambda r: f"val {fmt.pct(r['judged_accuracy'])}, test {fmt.pct(r['accuracy'])}")
    labels = {r["key"]: f"{r['label']} · {accs(r)} · "
                        f"{figures.human(objective, r[pareto.OBJECTIVES[objective][0]])} · {run_name(r['run'])}"
              for r in view.to_dict("records")}
    chosen = _selection(recommended, set(labels))
    limits = {"ort_b1_ms": budget, "onnx_bytes": flash_kb and flash_kb * 1024, "ram_bytes": ram_kb and ram_kb * 1024}
    outside = {k for col, limit in limits.items() if limit is not None
               for k in view.loc[view[col] > limit, "key"]}
    x_budget = {"latency": budget, "size": limits["onnx_bytes"], "ram": limits["ram_bytes"]}.get(objective)
    fig = figures.tradeoff(view.assign(run=view["run"].map(run_name)), objective, floor, recommended, chosen,
                           runtime=runtime, x_budget=x_budget, outside=outside, judge=split)
    st.plotly_chart(fig, key="tradeoff_chart", on_select=_chart_selected, selection_mode="points")
    over = " and ".join(([f"the {_ms(budget)} latency budget"] if budget else []) + ([device] if device else []))
    x_limit = (_ms(x_budget) if objective == "latency" else f"{x_budget / 1024:,g} KB") if x_budget else ""
    ring = "the recommended point" if choice.met_budget else "the closest point, which misses the budget"
    st.caption(("The green region: at or above the floor" +
                (f" and within {x_limit}" if x_budget else "") +
                (f". Faded points are over {over}. " if over else ". ")) +
               (f"The selected point is {ring} (red ring, teal diamond)." if chosen == recommended else
                f"Red ring: {ring}. Teal diamond: the selected point, which the Export page exports."))
    s1, s2 = st.columns([4, 1])
    state.widget(s1.selectbox, "Selected point (click one on the chart, or choose here); the Export page exports "
                 "it", key="chosen_point", default=recommended, options=list(labels), format_func=labels.get,
                 on_change=_person_chose)
    s2.button("Select the recommended point", key="tradeoffs.select_recommended", on_click=_select_recommended,
              disabled=chosen == recommended,
              help="Your own choice stays selected while the floor and the budget move; this selects the "
                   "recommendation again (and lets the selection follow it).")
    _families_at_floor(pareto.on_runtime(first, runtime), floor, pick_by, runs[0], runtime, split, limits)
    busy = pareto.busy_count(view, ["accuracy", objective])
    with st.expander("Pareto front table"):
        if busy:
            st.caption(f"Left out of the fronts: {busy} point(s) whose latency was timed on a busy machine "
                       "(crossed out on the chart).")
        st.dataframe(_front_table(view, objective, runtime, split), hide_index=True, width="stretch")
    if len(available) > 1:
        with st.expander("Runtimes side by side"):
            _runtimes_side_by_side(first, available, floor, chosen, split)
    model_json, data_source = cache.run_sources(runs[0])  # the model whose points are on the chart
    with st.expander(f"Per-layer pruning sensitivity of {cache.model_label(model_json)} on "
                     f"{state.data_label(data_source)} "
                     "(validation accuracy, each layer pruned alone)"):
        if st.button("Compute sensitivity", key="sensitivity"):
            st.session_state["show_sensitivity"] = True
        if st.session_state.get("show_sensitivity"):
            try:
                on = state.device()  # read here: the job runs in the queue's thread
                rows = progress.run(f"sensitivity|{model_json}|{data_source}",
                                    "Pruning each layer alone at 25 / 50 / 75 / 90 %",
                                    lambda report: cache.sensitivity(model_json, data_source, (0.25, 0.5, 0.75, 0.9),
                                                                     report, on))
            except Exception as e:  # one sentence, never a traceback
                st.error(f"The sensitivity could not be computed: {fmt.one_sentence(e)}")
                return
            st.plotly_chart(figures.sensitivity_heatmap(rows), key="sensitivity_chart")
            st.caption("Each cell: validation accuracy with only that layer pruned; the colour is the change against "
                       "the unpruned model (red: a drop of 20 points or more).")
            _per_layer_point(rows, model_json, data_source)


LAYER_RATIOS = [0, 25, 50, 75, 90, 95]  # % of a layer's weights, offered per layer
TOLERANCES = [0.2, 0.5, 1.0, 2.0, 5.0]  # points of validation accuracy a layer may lose alone


def _seed_layers(rows: list[dict], layers: list[str]) -> None:
    """Every layer's ratio set to the most it loses no more than the chosen tolerance at (the heatmap's reading)."""
    for n, ratio in layerwise.ratios_within(rows, layers, state.get("tradeoffs.tolerance", 0.5) / 100).items():
        state.put(f"tradeoffs.layer.{n}", round(100 * ratio))  # the heatmap's ratios are among LAYER_RATIOS


def _per_layer_point(rows: list[dict], model_json: str, data_source: str) -> None:
    """A per-layer point by hand: a ratio per layer (seeded from the heatmap), measured beside the uniform
    pruning of the same share of all weights."""
    st.markdown("**A per-layer point**: each layer at its own ratio, beside one ratio for all at the same sparsity")
    layers = list(dict.fromkeys(r["layer"] for r in rows if r["layer"] != "(none)"))
    if f"tradeoffs.layer.{layers[0]}" not in st.session_state:
        _seed_layers(rows, layers)
    state.widget(st.select_slider, "Seed every layer from the heatmap: the most it can lose alone (points)",
                 key="tradeoffs.tolerance", default=0.5, options=TOLERANCES, format_func=lambda v: f"{v:g} pt",
                 on_change=lambda: _seed_layers(rows, layers),
                 help="Each layer is set to the largest ratio whose cell above stays within this many points of the "
                      "unpruned model. Then change any layer by hand.")
    cols = st.columns(min(4, len(layers)))
    ratios = {n: state.widget(cols[i % len(cols)].select_slider, f"{n} (%)", key=f"tradeoffs.layer.{n}", default=0,
                              options=LAYER_RATIOS) / 100 for i, n in enumerate(layers)}
    lm = cache.model(model_json)
    overall = layerwise.overall_ratio(lm.module, ratios)
    per_layer = layerwise.layer_spec(ratios, {})
    uniform = S.Spec(prune=UnstructuredPrune(round(overall, 4))) if overall > 0 else S.Spec()
    st.caption(f"{100 * overall:.1f} % of all weights pruned. Measured points are stored in this model's Explore run "
               "(choose it under Runs to see them on the chart).")
    if st.button("Measure the per-layer point and the uniform one", key="measure_per_layer", disabled=overall == 0):
        try:
            measured = [ME.Metrics.from_dict(progress.run(
                f"point|{model_json}|{data_source}|{spec.to_json()}", f"Measuring {spec.label}",
                lambda report, spec=spec: cache.explore_point(model_json, data_source, spec.to_json(), report)))
                for spec in (S.Spec(), per_layer, uniform)]
        except Exception as e:  # one sentence, never a traceback
            st.error(f"The points could not be measured: {fmt.one_sentence(e)}")
            return
        how = {"baseline": "as trained", "per layer": ", ".join(f"{n} {100 * r:g} %" for n, r in ratios.items()),
               "uniform (global)": f"{100 * overall:.1f} % of all weights, smallest first"}
        table = [{"point": name, "pruned": how[name], "test accuracy": fmt.pct(m.accuracy),
                  "against the baseline": fmt.points_delta(m.accuracy, measured[0].accuracy) or "",
                  "compact archive": fmt.size(m.archive_bytes) if m.archive_bytes else "n/a",
                  "non-zeros": f"{m.nonzero_params:,}"}
                 for name, m in zip(how, measured)]
        gap = 100 * (measured[1].accuracy - measured[2].accuracy)
        verdict = (f"At the same sparsity the per-layer point is {abs(gap):.2f} points "
                   f"{'more' if gap >= 0 else 'less'} accurate than the uniform one.")
        st.session_state["tradeoffs.per_layer_result"] = per_layer.to_json(), table, verdict
    shown, result, verdict = st.session_state.get("tradeoffs.per_layer_result", (None, None, None))
    if shown == per_layer.to_json():  # only for the ratios on the page now (a plain table: all text)
        st.table(pd.DataFrame(result).set_index("point"))
        st.markdown(verdict)
        st.caption("Each layer's ratio was chosen from its cell alone; pruned together, the layers' losses add up, "
                   "so a generous tolerance costs more than it shows in any one cell.")


if __name__ == "__main__":
    main()
