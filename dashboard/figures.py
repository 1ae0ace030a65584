"""Every plotly figure of the dashboard, built from plain tables (pandas DataFrames)."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core import pareto

FAMILY_COLOURS = {"baseline": "#111827", "pruning": "#2563eb", "quantization": "#16a34a",
                  "distillation": "#d97706", "combined": "#9333ea"}
AXIS_TITLES = {"onnx_bytes": "ONNX file (bytes, log)", "archive_bytes": "compact archive (bytes, log)",
               "ort_b1_ms": "ONNX Runtime latency, batch 1 (ms, log)",
               "torch_b1_ms": "PyTorch latency, batch 1 (ms, log)", "macs": "MACs (log)"}
SYMBOLS = ["circle", "diamond", "square", "triangle-up", "cross", "x"]


def tradeoff(df: pd.DataFrame, objective: str, floor: float | None = None, recommended: str | None = None,
             selected: str | None = None) -> go.Figure:
    """Accuracy against `objective` (log x): points by family (symbol by run), each family's Pareto front
    as a line, the floor as a horizontal line, the recommended point ringed."""
    col = pareto.OBJECTIVES[objective][0]
    ok = df[df["status"] == "ok"].dropna(subset=[col, "accuracy"]).copy()
    ok["accuracy %"] = 100 * ok["accuracy"]
    runs = list(dict.fromkeys(ok["run"]))
    fig = go.Figure()
    for (family, run), g in ok.groupby(["family", "run"], sort=False):
        fig.add_trace(go.Scatter(
            x=g[col], y=g["accuracy %"], mode="markers", name=f"{family}" + (f" · {run}" if len(runs) > 1 else ""),
            legendgroup=family, customdata=g[["key", "label"]].to_numpy(),
            marker=dict(color=FAMILY_COLOURS.get(family, "#6b7280"), size=9, opacity=0.8,
                        symbol=SYMBOLS[runs.index(run) % len(SYMBOLS)]),
            hovertemplate="%{customdata[1]}<br>accuracy %{y:.2f} %<br>" + col + " %{x:,.4g}<extra>%{customdata[0]}</extra>"))
    by = ["run", "family"] if len(runs) > 1 else ["family"]
    for keys, g in ok.groupby(by, sort=False):
        fr = pareto.front(g, ["accuracy", objective])
        family = g["family"].iloc[0]
        if len(fr) > 1:
            fig.add_trace(go.Scatter(x=fr[col], y=100 * fr["accuracy"], mode="lines", line=dict(
                color=FAMILY_COLOURS.get(family, "#6b7280"), width=1.5, shape="hv",
                dash="solid" if runs.index(g["run"].iloc[0]) == 0 else "dot"),
                name=f"front: {family}" + (f" · {g['run'].iloc[0]}" if len(runs) > 1 else ""),
                legendgroup=family, hoverinfo="skip", showlegend=False))
    if floor is not None:
        fig.add_hline(y=100 * floor, line=dict(color="#dc2626", dash="dash"),
                      annotation_text=f"floor {100 * floor:.2f} %", annotation_position="bottom right")
    for key, colour, label in ((recommended, "#dc2626", "recommended"), (selected, "#0f766e", "selected")):
        hit = ok[ok["key"] == key]
        if key and len(hit):
            fig.add_trace(go.Scatter(x=hit[col], y=hit["accuracy %"], mode="markers", name=label,
                                     marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(color=colour, width=3)),
                                     hoverinfo="skip"))
    fig.update_xaxes(type="log", title=AXIS_TITLES.get(col, col))
    fig.update_yaxes(title="test accuracy (%)")
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2),
                      clickmode="event+select")
    return fig


def sensitivity_heatmap(rows: list[dict]) -> go.Figure:
    df = pd.DataFrame([r for r in rows if r["layer"] != "(none)"])
    grid = df.pivot(index="layer", columns="ratio", values="accuracy") * 100
    grid = grid.loc[list(dict.fromkeys(df["layer"]))]
    fig = px.imshow(grid, text_auto=".1f", aspect="auto", color_continuous_scale="RdYlGn", zmin=0, zmax=100,
                    labels=dict(x="fraction of the layer's weights pruned", y="layer", color="val. accuracy %"))
    fig.update_layout(height=max(250, 28 * len(grid) + 120), margin=dict(l=10, r=10, t=30, b=10))
    return fig


def latency_bars(latency: list[dict]) -> go.Figure:
    df = pd.DataFrame(latency)
    df["batch"] = "batch " + df["batch"].astype(str)
    fig = px.bar(df, x="runtime", y="median_ms", color="batch", barmode="group", error_y=df["p90_ms"] - df["median_ms"],
                 labels=dict(median_ms="median ms (bar: p90)"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10))
    return fig
