"""Every plotly figure of the dashboard, built from plain tables (pandas DataFrames)."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from core.results import pareto
from dashboard import fmt

FAMILY_COLOURS = {"baseline": "#111827", "pruning": "#2563eb", "quantization": "#16a34a",
                  "distillation": "#d97706", "student alone": "#fbbf24", "combined": "#9333ea",
                  "per-layer": "#db2777"}
# objective -> (axis title, factor from the stored column to the axis unit)
AXES = {"size": ("ONNX file (KB, log scale)", 1 / 1024),
        "archive": ("compact archive (KB, log scale)", 1 / 1024),
        "latency": ("ONNX Runtime latency, batch 1 (ms, log scale)", 1.0),
        "torch_latency": ("PyTorch latency, batch 1 (ms, log scale)", 1.0),
        "macs": ("multiply-accumulates per input (millions, log scale)", 1e-6),
        "ram": ("RAM: a microcontroller's tensor arena (KB, log scale)", 1 / 1024)}
RUNTIME_NAMES = pareto.RUNTIME_NAMES  # one spelling of each runtime, shared with the CLI's messages
RUNTIME_COLOURS = {"onnxruntime": "#2563eb", "executorch": "#dc2626", "litert": "#d97706", "pytorch": "#6b7280",
                   "onnxruntime-cuda": "#16a34a"}
SYMBOLS = ["circle", "diamond", "square", "triangle-up", "cross", "x"]


human = pareto.value_text  # one spelling of each objective's unit, shared with the CLI's messages


# log axes labelled at 1-2-5 steps written out in full (0.1, 0.2, 0.5, 1, 2, 5, 10, ...), never plotly's bare
# "2 5" minor labels, which read as other numbers
LOG_TICKS = dict(tickvals=[m * 10.0 ** e for e in range(-4, 10) for m in (1, 2, 5)], tickformat=",~g")
# within one decade, 1-2-5 steps leave one label or none: then every 1-9 step is labelled
FINE_LOG_TICKS = dict(tickvals=[m * 10.0 ** e for e in range(-4, 10) for m in range(1, 10)], tickformat=",~g")


def log_ticks(values: pd.Series) -> dict:
    """Tick labels for a log axis over `values`: 1-2-5 steps, or every step when they span under a decade."""
    lo, hi = float(values.min()), float(values.max())
    return FINE_LOG_TICKS if lo > 0 and hi / lo < 10 else LOG_TICKS


def axis_title(objective: str, runtime: str = "onnxruntime") -> str:
    """The x axis title of `objective` on `runtime`: its file, or its latency."""
    title, _ = AXES[objective]
    if runtime == "onnxruntime" or objective not in ("size", "latency"):
        return title
    if objective == "size":
        return f"{pareto.RUNTIME_FILES[runtime]} (KB, log scale)"
    return f"{RUNTIME_NAMES[runtime]} latency, batch 1 (ms, log scale)"


BUSY_MARKER = dict(size=15, symbol="x-thin-open", color="#6b7280", line=dict(width=2))


def _busy_trace(ok: pd.DataFrame, col: str, x, y) -> go.Scatter | None:
    """A grey cross over each point whose latency in `col` was timed on a busy machine (left out of the fronts)."""
    busy = pareto.busy_mask(ok, [col])
    if not busy.any():
        return None
    return go.Scatter(x=x[busy], y=y[busy], mode="markers", marker=BUSY_MARKER, hoverinfo="skip",
                      name="latency timed on a busy machine (left out of the fronts)")


def tradeoff(df: pd.DataFrame, objective: str, floor: float | None = None, recommended: str | None = None,
             selected: str | None = None, runtime: str = "onnxruntime", x_budget: float | None = None,
             outside: set | None = None, judge: str = "test") -> go.Figure:
    """Accuracy on `judge`'s split (the one the floor is judged on: 'val' or 'test'; the test accuracy is in the
    hover) against `objective` (log x, human units) on `runtime` (a table from `pareto.on_runtime`): points
    by family (symbol by run), each family's Pareto front as a line, the floor as a dashed line, the feasible
    region (at or above the floor, within `x_budget` on the x axis) shaded, points outside a budget (`outside`
    keys) faded, latencies timed on a busy machine crossed out (and left out of the fronts), the recommended point
    in a large red ring and the selected one in a smaller teal diamond."""
    col = pareto.OBJECTIVES[objective][0]
    _, scale = AXES[objective]
    title = axis_title(objective, runtime)
    outside = outside or set()
    ok = pareto.judged(df[df["status"] == "ok"], judge).dropna(subset=[col, "judged_accuracy"]).copy()
    ok["accuracy %"] = 100 * ok["judged_accuracy"]
    ok["x"] = ok[col] * scale
    ok["x text"] = [human(objective, v) for v in ok[col]]
    ok["test text"] = "" if judge == "test" else [f" (test {100 * a:.2f} %)" for a in ok["accuracy"]]
    runs = list(dict.fromkeys(ok["run"]))
    fig = go.Figure()
    for (family, run), g in ok.groupby(["family", "run"], sort=False):
        fig.add_trace(go.Scatter(
            x=g["x"], y=g["accuracy %"], mode="markers", name=f"{family}" + (f" · {run}" if len(runs) > 1 else ""),
            legendgroup=family, customdata=g[["key", "label", "x text", "run", "test text"]].to_numpy(),
            marker=dict(color=FAMILY_COLOURS.get(family, "#6b7280"), size=9,
                        opacity=[0.25 if k in outside else 0.8 for k in g["key"]],
                        symbol=SYMBOLS[runs.index(run) % len(SYMBOLS)]),
            hovertemplate="<b>%{customdata[1]}</b><br>" + ("validation" if judge == "val" else "test")
                          + " accuracy %{y:.2f} %%{customdata[4]}<br>" + title.split(" (")[0]
                          + " %{customdata[2]}<br>run %{customdata[3]}<extra></extra>"))
    crossed = _busy_trace(ok, col, ok["x"], ok["accuracy %"])
    if crossed is not None:
        fig.add_trace(crossed)
    by = ["run", "family"] if len(runs) > 1 else ["family"]
    for _, g in ok.groupby(by, sort=False):
        fr = pareto.front(g, ["accuracy", objective], judge=judge)
        family = g["family"].iloc[0]
        if len(fr) > 1:
            fig.add_trace(go.Scatter(x=fr[col] * scale, y=100 * fr["judged_accuracy"], mode="lines", line=dict(
                color=FAMILY_COLOURS.get(family, "#6b7280"), width=1.5, shape="hv",
                dash="solid" if runs.index(g["run"].iloc[0]) == 0 else "dot"),
                name=f"front: {family}" + (f" · {g['run'].iloc[0]}" if len(runs) > 1 else ""),
                legendgroup=family, hoverinfo="skip", showlegend=False))
    if floor is not None and len(ok):
        right = x_budget * scale if x_budget is not None else float(ok["x"].max()) * 10
        top = max(100.0, float(ok["accuracy %"].max()))
        fig.add_shape(type="rect", x0=float(ok["x"].min()) / 10, x1=right, y0=100 * floor, y1=top, layer="below",
                      line=dict(width=0), fillcolor="rgba(22, 163, 74, 0.10)")
        if x_budget is not None:
            fig.add_vline(x=right, line=dict(color="#16a34a", dash="dot"),
                          annotation_text=f"budget {human(objective, x_budget)}", annotation_position="top left")
    if floor is not None:
        fig.add_hline(y=100 * floor, line=dict(color="#dc2626", dash="dash"),
                      annotation_text=f"floor {100 * floor:.1f} %", annotation_position="bottom right")
    rings = ((recommended, "recommended", dict(size=26, symbol="circle-open", color="#dc2626", line=dict(width=3))),
             (selected, "selected", dict(size=15, symbol="diamond-open", color="#0f766e", line=dict(width=3))))
    for key, label, marker in rings:
        hit = ok[ok["key"] == key]
        if key and len(hit):
            fig.add_trace(go.Scatter(x=hit["x"], y=hit["accuracy %"], mode="markers", name=label, marker=marker,
                                     hoverinfo="skip"))
    xs = ok["x"]
    fig.update_xaxes(type="log", title=title, **(log_ticks(xs) if len(ok) else LOG_TICKS),
                     **({"range": [math.log10(float(xs.min()) / 1.5), math.log10(float(xs.max()) * 1.5)]}
                        if len(ok) and xs.min() > 0 else {}))
    fig.update_yaxes(title=("validation" if judge == "val" else "test") + " accuracy (%)"
                     + ("" if runtime == "onnxruntime" else f" of the {pareto.RUNTIME_FILES[runtime]}"))
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2),
                      clickmode="event+select")
    return fig


def runtime_fronts(df: pd.DataFrame, runtimes: list[str], floor: float | None = None,
                   judge: str = "val") -> go.Figure:
    """The same points on each runtime: accuracy (of that runtime's file, on `judge`'s split where that runtime
    recorded it, else on the test split: `pareto.judged_split`) against its batch-1 latency, one colour and one
    Pareto front per runtime, so a person sees where each runtime is faster. Latencies timed on a busy machine
    are crossed out and left out of the fronts."""
    fig = go.Figure()
    splits = {}
    for runtime in runtimes:
        view = pareto.on_runtime(df, runtime)
        ok = view[view["status"] == "ok"].dropna(subset=["accuracy", "ort_b1_ms"])
        if ok.empty:
            continue
        splits[runtime], _ = pareto.judged_split(ok, judge, runtime)
        ok = pareto.judged(ok, splits[runtime])
        colour, name = RUNTIME_COLOURS.get(runtime, "#6b7280"), RUNTIME_NAMES.get(runtime, runtime)
        fig.add_trace(go.Scatter(
            x=ok["ort_b1_ms"], y=100 * ok["judged_accuracy"], mode="markers", name=name, legendgroup=runtime,
            marker=dict(color=colour, size=8, opacity=0.75), text=ok["label"],
            hovertemplate="<b>%{text}</b><br>" + name + ": %{x:.3g} ms, %{y:.2f} %<extra></extra>"))
        crossed = _busy_trace(ok, "ort_b1_ms", ok["ort_b1_ms"], 100 * ok["judged_accuracy"])
        if crossed is not None:
            fig.add_trace(crossed.update(legendgroup=runtime, showlegend=False))
        fr = pareto.front(ok, ["accuracy", "latency"], judge=splits[runtime])
        fig.add_trace(go.Scatter(x=fr["ort_b1_ms"], y=100 * fr["judged_accuracy"], mode="lines",
                                 legendgroup=runtime, line=dict(color=colour, width=1.5, shape="hv"),
                                 showlegend=False, hoverinfo="skip"))
    if floor is not None:
        fig.add_hline(y=100 * floor, line=dict(color="#dc2626", dash="dash"))
    fig.update_xaxes(type="log", title="latency, batch 1 (ms, log scale)", **LOG_TICKS)
    on_test = [RUNTIME_NAMES.get(r, r) for r, s in splits.items() if s == "test"]
    if judge == "test" or len(on_test) == len(splits):
        what = "test accuracy"
    else:
        what = "validation accuracy" + (f" (test for {', '.join(on_test)})" if on_test else "")
    fig.update_yaxes(title=f"{what} of that runtime's file (%)")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


# colour of a sensitivity cell: its accuracy change against the unpruned model, in points
DROP_SCALE = [[0.0, "#b91c1c"], [0.5, "#f97316"], [0.8, "#facc15"], [0.95, "#86efac"], [1.0, "#15803d"]]
WORST_DROP = -20.0   # this many points below the unpruned model (or worse) is full red


def sensitivity_heatmap(rows: list[dict]) -> go.Figure:
    """Validation accuracy after pruning each layer alone: equal columns per ratio ('25 %', ...),
    each cell coloured by its change against the unpruned model (a drop is red)."""
    unpruned = next((r["accuracy"] for r in rows if r["layer"] == "(none)"), None)
    df = pd.DataFrame([r for r in rows if r["layer"] != "(none)"])
    if unpruned is None:
        unpruned = float(df["accuracy"].max())
    grid = df.pivot(index="layer", columns="ratio", values="accuracy")
    grid = grid.loc[list(dict.fromkeys(df["layer"]))]
    ratios = list(grid.columns)
    labels = [f"{100 * r:g} %" for r in ratios]
    change = (grid - unpruned) * 100
    text = [[f"{100 * v:.1f} %" for v in row] for row in grid.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=change.clip(lower=WORST_DROP, upper=0).to_numpy(), x=labels, y=list(grid.index), text=text,
        texttemplate="%{text}", zmin=WORST_DROP, zmax=0, colorscale=DROP_SCALE, xgap=2, ygap=2,
        customdata=change.to_numpy(),
        hovertemplate="%{y} pruned %{x}: %{text} (%{customdata:+.1f} pt)<extra></extra>",
        colorbar=dict(title=dict(text="change vs<br>unpruned (pt)"), ticksuffix=" pt")))
    fig.update_xaxes(type="category", title=f"share of the layer's weights pruned (unpruned: {100 * unpruned:.1f} %)")
    fig.update_yaxes(type="category", title="layer", autorange="reversed")
    fig.update_layout(height=max(250, 28 * len(grid) + 120), margin=dict(l=10, r=10, t=30, b=10))
    return fig


CLIP = 3.0  # a p90 whisker is drawn up to this many medians; longer ones are clipped and counted


def latency_bars(latency: list[dict]) -> tuple[go.Figure, int]:
    """Median latency bars per runtime and batch with a p10-p90 whisker (only up to p90 for points
    stored without p10), the top clipped at CLIP x the median so a few slow calls cannot dwarf the
    bars; log scale when the medians span more than 10x. Returns the figure and how many whiskers
    were clipped."""
    df = pd.DataFrame(latency)
    if "p10_ms" not in df:
        df["p10_ms"] = None
    df["runtime name"] = df["runtime"].map(RUNTIME_NAMES).fillna(df["runtime"])
    df["top"] = df["p90_ms"].clip(upper=CLIP * df["median_ms"])
    df["bottom"] = df["p10_ms"].fillna(df["median_ms"]).clip(upper=df["median_ms"])
    clipped = int((df["p90_ms"] > CLIP * df["median_ms"]).sum())
    fig = go.Figure()
    for batch, g in df.groupby("batch", sort=True):
        fig.add_trace(go.Bar(
            x=g["runtime name"], y=g["median_ms"], name=f"batch {batch}",
            error_y=dict(type="data", symmetric=False, array=(g["top"] - g["median_ms"]).to_numpy(),
                         arrayminus=(g["median_ms"] - g["bottom"]).to_numpy()),
            text=[fmt.ms(v) for v in g["median_ms"]], textposition="inside", insidetextanchor="start", textangle=0,
            customdata=g[["p90_ms", "repeats"]].to_numpy(),
            hovertemplate="%{x}, " + f"batch {batch}" + ": median %{y:.3g} ms, p90 %{customdata[0]:.3g} ms "
                          "(%{customdata[1]} calls)<extra></extra>"))
    log = df["median_ms"].max() / max(df["median_ms"].min(), 1e-9) > 10
    fig.update_yaxes(title="median ms per call" + (" (log scale)" if log else ""), type="log" if log else "linear",
                     **(LOG_TICKS if log else {"rangemode": "tozero"}))
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.15))
    return fig, clipped
