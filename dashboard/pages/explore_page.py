"""Explore: slide sparsity, bit width, pruning kind and student width; see the point beside the baseline."""
from __future__ import annotations

import streamlit as st

from core import measure as ME
from core import spec as S
from core.distill import Distill
from core.prune import StructuredPrune, UnstructuredPrune
from core.quantize import Float16, Int8, WeightQuant
from dashboard import cache

FORMATS = ["2", "3", "4", "5", "6", "7", "8", "fp32"]
EXTRA_FORMATS = {"int8 (ONNX Runtime)": Int8(), "fp16 (ONNX Runtime)": Float16()}


def build_spec() -> S.Spec:
    """The Spec the widgets describe (widget keys keep the choices across pages)."""
    c1, c2 = st.columns(2)
    sparsity = c1.slider("Sparsity (%)", 0, 95, 0, 5, key="sparsity")
    kind = c1.radio("Pruning", ["unstructured", "structured"], horizontal=True, key="prune_kind",
                    help="unstructured zeroes single weights; structured removes whole channels and neurons")
    finetune = c1.number_input("Fine-tuning epochs after pruning", 0, 20, 0, key="finetune_epochs")
    bits = c2.select_slider("Weight bits", FORMATS, value="fp32", key="bits")
    runtime_format = c2.radio("Number format", ["as the bits say", *EXTRA_FORMATS], horizontal=True,
                              key="runtime_format", help="int8 and fp16 are real ONNX Runtime files")
    width = c2.select_slider("Student width (distillation)", [0.25, 0.5, 0.75, 1.0], value=1.0, key="student_width",
                             help="below 1.0 a narrower student is trained on the model's soft labels (slow once)")
    prune = None
    if sparsity:
        make = UnstructuredPrune if kind == "unstructured" else StructuredPrune
        prune = make(ratio=sparsity / 100, finetune_epochs=int(finetune))
    quant = EXTRA_FORMATS.get(runtime_format) or (None if bits == "fp32" else WeightQuant(int(bits)))
    return S.Spec(distill=None if width == 1.0 else Distill(width=width), prune=prune, quantize=quant)


def _delta(new, old, fmt: str, scale: float = 1.0) -> str | None:
    """The change as text, or None (no arrow) when there is none to show."""
    return None if new is None or old is None or new == old else fmt.format((new - old) * scale)


def main() -> None:
    st.title("Explore")
    model_json, data_source = cache.current_sources()
    st.caption(f"Model {cache.model_label(model_json)} on {data_source}; each point is computed once, then comes "
               "from the results store.")
    spec = build_spec()
    try:
        base = ME.Metrics.from_dict(cache.baseline(model_json, data_source))
        with st.spinner(f"Computing {spec.label}…"):
            m = ME.Metrics.from_dict(cache.explore_point(model_json, data_source, spec.to_json()))
    except ValueError as e:
        st.error(str(e))
        return
    st.session_state["explore_spec"] = spec.to_json()
    st.markdown(f"**{spec.label}** · `{spec.hash}`")
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{100 * m.accuracy:.2f} %", _delta(m.accuracy, base.accuracy, "{:+.2f} pt", 100))
    cols[1].metric("ONNX file", f"{m.onnx_bytes / 1024:,.1f} KB",
                   _delta(m.onnx_bytes, base.onnx_bytes, "{:+,.1f} KB", 1 / 1024), delta_color="inverse")
    cols[2].metric("Compact archive", f"{m.archive_bytes / 1024:,.1f} KB" if m.archive_bytes else "n/a",
                   _delta(m.archive_bytes, base.archive_bytes, "{:+,.1f} KB", 1 / 1024), delta_color="inverse")
    cols[3].metric("Non-zeros", f"{m.nonzero_params:,}", _delta(m.nonzero_params, base.nonzero_params, "{:+,}"),
                   delta_color="inverse")
    cols = st.columns(4)
    for col, (runtime, batch) in zip(cols, [("onnxruntime", 1), ("onnxruntime", 32), ("pytorch", 1), ("pytorch", 32)]):
        new, old = m.latency_ms(runtime, batch), base.latency_ms(runtime, batch)
        col.metric(f"{'ORT' if runtime == 'onnxruntime' else 'PyTorch'} batch {batch}",
                   "n/a" if new is None else f"{new:.3f} ms", _delta(new, old, "{:+.3f} ms"), delta_color="inverse")
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{m.params:,}", _delta(m.params, base.params, "{:+,}"), delta_color="inverse")
    cols[1].metric("MACs", f"{m.macs / 1e6:.3f} M", _delta(m.macs, base.macs, "{:+.3f} M", 1e-6), delta_color="inverse")
    cols[2].metric("Baseline accuracy", f"{100 * base.accuracy:.2f} %")
    cols[3].metric("Baseline ONNX file", f"{base.onnx_bytes / 1024:,.1f} KB")
    for note in m.notes:
        st.info(note)
    if m.latency and base.latency and m.params == base.params and m.nonzero_params < base.nonzero_params:
        st.caption("Same shapes as the baseline: any latency difference here is measurement noise.")
