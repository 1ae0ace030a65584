"""Sweep: choose the axes, see how many points that is, run it in the background and watch it fill in."""
from __future__ import annotations

import json

import streamlit as st

from core import sweep
from dashboard import cache, jobs

QUANT_CHOICES = ["fp32", "fp16", "int8", "int8-dynamic", "w8", "w6", "w4", "w3", "w2", "qat4", "qat3", "qat2",
                 "share4", "share3"]


def _config() -> dict:
    model_json, data_source = cache.current_sources()
    c1, c2, c3 = st.columns(3)
    run = c1.text_input("Run name", f"{cache.model_label(model_json)}-sweep", key="sweep_run")
    widths = c1.multiselect("Student widths (1.0 = the model itself)", [1.0, 0.75, 0.5, 0.25], [1.0],
                            key="sweep_widths")
    kinds = c2.multiselect("Pruning", ["unstructured", "structured"], ["unstructured"], key="sweep_kinds")
    ratios = c2.multiselect("Pruning ratios", [0.0, 0.25, 0.5, 0.75, 0.9, 0.95], [0.0, 0.5, 0.75, 0.9],
                            key="sweep_ratios")
    finetune = c2.number_input("Fine-tuning epochs after pruning", 0, 50, 2, key="sweep_finetune")
    quant = c3.multiselect("Number formats", QUANT_CHOICES, ["fp32", "int8", "w4", "w2"], key="sweep_quant")
    distill_epochs = c3.number_input("Student training epochs", 1, 200, 30, key="sweep_distill_epochs")
    latency = c3.checkbox("Measure latency", True, key="sweep_latency")
    return {"run": run, "model": json.loads(model_json), "data": data_source,
            "axes": {"student_width": widths, "prune": kinds, "prune_ratio": ratios,
                     "finetune_epochs": [int(finetune)], "quantize": quant},
            "settings": {"distill": {"epochs": int(distill_epochs)}},
            "measure": {"latency": latency, "budget_s": 0.05}}


@st.fragment(run_every=1.0)
def _progress(run: str, total: int) -> None:
    running = jobs.is_running(run)
    try:
        df = cache.run_table(run)
    except ValueError:
        df = None
    done = 0 if df is None else len(df)
    st.progress(min(1.0, done / max(total, 1)), text=f"{done} of {total} points stored"
                + (" · running" if running else " · finished" if done >= total else " · stopped"))
    if running and st.button("Stop after the point in flight", key="stop_sweep"):
        jobs.stop(run)
    tail = jobs.log_tail(run, 2)
    if tail and running:
        st.caption(tail.splitlines()[-1][-160:])
    if df is not None and len(df):
        cols = ["family", "label", "status", "accuracy", "onnx_bytes", "archive_bytes", "ort_b1_ms", "torch_b1_ms"]
        st.dataframe(df[cols], hide_index=True, width="stretch", height=360)


def main() -> None:
    st.title("Sweep")
    raw = _config()
    try:
        cfg = sweep.load_config(raw)
        total = len(sweep.expand(cfg))
    except ValueError as e:
        st.error(str(e))
        return
    st.markdown(f"**{total} points** (baseline included). Points already in the store are not recomputed.")
    c1, c2 = st.columns(2)
    executor = c1.radio("Executor", ["local", "ray"], horizontal=True, key="sweep_executor",
                        help="ray: points become Ray tasks (a local Ray, or a cluster address)")
    address = c2.text_input("Ray address (empty: start a local Ray)", "", key="ray_address",
                            disabled=executor != "ray")
    if st.button("Run sweep", type="primary", key="run_sweep"):
        try:
            jobs.start(cfg.to_dict(), executor, address.strip() or None)
            st.session_state["active_run"] = jobs.safe_name(cfg.run)
            st.session_state["active_total"] = total
        except ValueError as e:
            st.error(str(e))
    run = st.session_state.get("active_run")
    if run is None and (jobs.is_running(cfg.run) or cfg.run in set(cache.runs()["run"])):
        run = cfg.run  # after a page reload: the sweep of this name, running or stored
    if run:
        _progress(run, st.session_state.get("active_total", total))
