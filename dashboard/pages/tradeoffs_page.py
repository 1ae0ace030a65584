"""Trade-offs: accuracy against size and latency, Pareto fronts per family and per run, a floor, a pick."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import pareto
from dashboard import cache, figures

X_CHOICES = {"ONNX file size": "size", "compact archive size": "archive", "ONNX Runtime latency": "latency",
             "PyTorch latency": "torch_latency", "MACs": "macs"}


def _points(runs: list[str]) -> pd.DataFrame:
    return pd.concat([cache.run_table(r) for r in runs], ignore_index=True)


def main() -> None:
    st.title("Trade-offs")
    all_runs = cache.runs()
    if all_runs.empty:
        st.info("No runs yet: start one on the Sweep page (or `edgetrim sweep sweeps/default.yaml`).")
        return
    names = list(all_runs["run"])
    sweeps = [n for n in names if n != cache.EXPLORE_RUN] or names
    default = [st.session_state.get("active_run")] if st.session_state.get("active_run") in names else sweeps[-1:]
    runs = st.multiselect("Runs (several overlay their fronts: method against method, run against run, "
                          "model against model)", names, default, key="tradeoff_runs")
    if not runs:
        st.info("Choose at least one run.")
        return
    df = _points(runs)
    ok = df[df["status"] == "ok"]
    if ok.empty:
        st.warning("These runs have no measured points yet.")
        return
    c1, c2, c3 = st.columns(3)
    x_label = c1.selectbox("x axis", list(X_CHOICES), key="tradeoff_x")
    objective = X_CHOICES[x_label]
    base_acc = pareto.baseline_accuracy(ok[ok["run"] == runs[0]])
    default_floor = round(100 * (base_acc - 0.01), 1) if base_acc else 90.0
    floor_pct = c2.slider("Accuracy floor (%)", 0.0, 100.0, max(0.0, default_floor), 0.1, key="floor")
    pick_by = c3.selectbox("Recommend the best by", ["size", "archive", "latency", "torch_latency"], key="pick_by")
    floor = floor_pct / 100
    first = ok[ok["run"] == runs[0]]
    choice = pareto.pick(first, floor, pick_by)
    (st.success if choice.met_floor else st.warning)(f"Recommended ({runs[0]}): {choice.message}")
    st.session_state.setdefault("selected_key", choice.row["key"])
    if st.session_state.get("recommended_key") != choice.row["key"]:
        st.session_state["recommended_key"] = choice.row["key"]
        st.session_state["selected_key"] = choice.row["key"]
    fig = figures.tradeoff(ok, objective, floor, choice.row["key"], st.session_state.get("selected_key"))
    event = st.plotly_chart(fig, key="tradeoff_chart", on_select="rerun", selection_mode="points")
    clicked = [p.get("customdata", [None])[0] for p in (event.selection.points if event else [])
               if p.get("customdata")]
    if clicked and clicked[0] != st.session_state.get("selected_key"):
        st.session_state["selected_key"] = clicked[0]
        st.rerun()
    labels = {r["key"]: f"{r['label']} · {100 * r['accuracy']:.2f} % · {r['run']}" for r in ok.to_dict("records")}
    keys = list(labels)
    if st.session_state.get("selected_key") not in labels:
        st.session_state["selected_key"] = choice.row["key"]
    st.selectbox("Selected point (click one on the chart, or choose here); the Export page exports it", keys,
                 format_func=labels.get, key="selected_key")
    with st.expander("Pareto front table"):
        fr = pareto.front(ok, ["accuracy", objective], by="family")
        st.dataframe(fr[["run", "family", "label", "accuracy", pareto.OBJECTIVES[objective][0], "notes"]],
                     hide_index=True, width="stretch")
    with st.expander("Per-layer pruning sensitivity (validation accuracy, each layer pruned alone)"):
        if st.button("Compute sensitivity", key="sensitivity"):
            st.session_state["show_sensitivity"] = True
        if st.session_state.get("show_sensitivity"):
            model_json, data_source = cache.current_sources()
            with st.spinner("Pruning each layer alone at 25 / 50 / 75 / 90 %…"):
                rows = cache.sensitivity(model_json, data_source, (0.25, 0.5, 0.75, 0.9))
            st.plotly_chart(figures.sensitivity_heatmap(rows), key="sensitivity_chart")
