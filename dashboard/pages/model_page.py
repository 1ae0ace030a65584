"""Model & data: pick a bundled sample and see its measured baseline."""
from __future__ import annotations

import streamlit as st

from core import measure as ME
from core import models as M
from dashboard import cache


def main() -> None:
    st.title("Model & data")
    names = M.sample_names()
    name = st.selectbox("Sample model", names, key="model_name",
                        index=names.index(st.session_state.get("model_name", names[0])))
    card = M.sample_card(name)
    st.caption(f"{card['arch']} · input {'x'.join(map(str, card['input_shape']))} · "
               f"trained on {card['data']} with `{card['trained_with']}`")
    with st.spinner("Measuring the baseline (accuracy, ONNX file, latency on both runtimes)…"):
        try:
            m = ME.Metrics.from_dict(cache.baseline(name))
        except ValueError as e:
            st.error(str(e))
            return
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{100 * m.accuracy:.2f} %", help=f"{m.test_samples} held-out test images")
    cols[1].metric("ONNX file", f"{m.onnx_bytes / 1024:,.1f} KB")
    cols[2].metric("ONNX Runtime, batch 1", f"{m.latency_ms('onnxruntime', 1):.3f} ms")
    cols[3].metric("PyTorch, batch 1", f"{m.latency_ms('pytorch', 1):.3f} ms")
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{m.params:,}")
    cols[1].metric("Non-zeros", f"{m.nonzero_params:,}")
    cols[2].metric("MACs", f"{m.macs / 1e6:.3f} M")
    cols[3].metric("state_dict", f"{m.state_dict_bytes / 1024:,.1f} KB")
    st.subheader("Latency")
    st.dataframe([{"runtime": l.runtime, "batch": l.batch, "median ms": l.median_ms, "p90 ms": l.p90_ms,
                   "repeats": l.repeats, "threads": l.threads} for l in m.latency], hide_index=True)
    st.subheader("Layers")
    st.dataframe(cache.layers(name), hide_index=True, width="stretch")
