"""Model & data: a bundled sample or your own files, and the measured baseline."""
from __future__ import annotations

import json

import streamlit as st

from core import data as D
from core import measure as ME
from core import models as M
from dashboard import cache, figures

MAX_UPLOAD = 200 * 2**20


def _choose_model() -> None:
    samples = M.sample_names()
    kind = st.radio("Model", ["Bundled sample", "Upload my own"], horizontal=True, key="model_kind")
    if kind == "Bundled sample":
        current = json.loads(cache.current_sources()[0])
        name = st.selectbox("Sample model", samples, key="model_name",
                            index=samples.index(current) if current in samples else 0)
        st.session_state["model_source"] = json.dumps(name)
        card = M.sample_card(name)
        st.caption(f"{card['arch']} · input {'x'.join(map(str, card['input_shape']))} · trained on {card['data']} "
                   f"with `{card['trained_with']}`")
        return
    with st.form("upload_model"):
        file = st.file_uploader("Model file: a state_dict (.pt/.pth), TorchScript (.pt/.ts) or torch.export (.pt2)",
                                type=["pt", "pth", "ts", "pt2"])
        arch = st.text_input("Architecture of a state_dict (mlp, lenet5 or tv:<torchvision name>)", "tv:resnet18")
        shape = st.text_input("Input shape C x H x W", "3x64x64")
        if st.form_submit_button("Load model") and file is not None:
            try:
                path = cache.save_upload(file, MAX_UPLOAD)
                from core.cli import parse_shape

                source = {"path": str(path), "arch": arch.strip() or None, "input_shape": list(parse_shape(shape))}
                cache.model(json.dumps(source, sort_keys=True))  # load now, so errors show here
                st.session_state["model_source"] = json.dumps(source, sort_keys=True)
                st.success(f"Loaded {file.name}.")
            except ValueError as e:
                st.error(str(e))


def _choose_data() -> None:
    with st.expander("Evaluation data: bundled digits, or your own .npz / zipped ImageFolder"):
        file = st.file_uploader("Data file", type=["npz", "zip"], key="data_upload")
        c1, c2 = st.columns(2)
        if c1.button("Use this data", disabled=file is None):
            try:
                path = cache.save_upload(file, MAX_UPLOAD)
                if path.suffix == ".zip":
                    path = D.safe_extract_zip(path, path.with_suffix(""))
                cache.dataset(str(path))
                st.session_state["data_source"] = str(path)
            except ValueError as e:
                st.error(str(e))
        if c2.button("Back to digits"):
            st.session_state["data_source"] = "digits"


def main() -> None:
    st.title("Model & data")
    _choose_model()
    _choose_data()
    model_json, data_source = cache.current_sources()
    try:
        with st.spinner("Measuring the baseline: accuracy, ONNX file, latency on both runtimes…"):
            lm = cache.model(model_json)
            data = cache.dataset(data_source)
            m = ME.Metrics.from_dict(cache.baseline(model_json, data_source))
    except ValueError as e:
        st.error(str(e))
        return
    st.caption(f"Data: {data.describe()}. Accuracy is on the held-out test split.")
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{100 * m.accuracy:.2f} %", help=f"{m.test_samples} test images, ONNX Runtime")
    cols[1].metric("ONNX file", f"{m.onnx_bytes / 1024:,.1f} KB")
    cols[2].metric("ONNX Runtime, batch 1", f"{m.latency_ms('onnxruntime', 1):.3f} ms")
    cols[3].metric("PyTorch, batch 1", f"{m.latency_ms('pytorch', 1):.3f} ms")
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{m.params:,}")
    cols[1].metric("Non-zeros", f"{m.nonzero_params:,}")
    cols[2].metric("MACs", f"{m.macs / 1e6:.3f} M")
    cols[3].metric("Compact archive", f"{m.archive_bytes / 1024:,.1f} KB" if m.archive_bytes else "n/a")
    left, right = st.columns(2)
    with left:
        st.subheader("Latency")
        st.plotly_chart(figures.latency_bars([l.__dict__ for l in m.latency]), key="latency_chart")
        st.caption(f"{m.latency[0].threads} threads; median of repeated calls after warm-up, bars to p90.")
    with right:
        st.subheader("Layers")
        st.dataframe(cache.layers(model_json), hide_index=True, width="stretch", height=320)
    st.caption(f"Model: {lm.name} · {lm.arch or 'fixed graph'} · input {'x'.join(map(str, lm.input_shape))} · "
               f"{lm.num_classes} classes · weights fingerprint {lm.fingerprint}")
