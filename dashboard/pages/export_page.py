"""Export: the selected point's card, a format, and the verified file to download."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from core import export, sweep
from core.store import Store
from dashboard import cache

FORMATS = list(export.FORMATS)


def main() -> None:
    st.title("Export")
    key = st.session_state.get("selected_key")
    store = Store()
    try:
        point = store.get(key) if key else None
        runs = store.runs_of(key) if key else None
        cfg = store.run_config(runs[0]) if runs else None
    finally:
        store.close()
    if point is None or cfg is None:
        st.info("Select a point on the Trade-offs page first (or keep the recommended one).")
        return
    m = point.metrics
    st.subheader(point.spec.label)
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{100 * m.accuracy:.2f} %")
    cols[1].metric("ONNX file", f"{m.onnx_bytes / 1024:,.1f} KB")
    cols[2].metric("Compact archive", f"{m.archive_bytes / 1024:,.1f} KB" if m.archive_bytes else "n/a")
    lat = m.latency_ms("onnxruntime", 1)
    cols[3].metric("ORT batch 1", f"{lat:.3f} ms" if lat else "n/a")
    with st.expander("Spec and metrics"):
        st.json({"spec": point.spec.to_dict(), "metrics": m.to_dict(), "key": point.key})
    fmt = st.selectbox("Format", FORMATS, index=FORMATS.index(export.default_format(point.spec)), key="export_format",
                       help="the default is the format the point was measured as")
    if st.button("Build, reload and verify", type="primary", key="build_export"):
        try:
            with st.spinner("Rebuilding the model from its spec, writing, reloading and re-scoring…"):
                lm = cache.model(json.dumps(cfg["model"], sort_keys=True) if isinstance(cfg["model"], dict)
                                 else json.dumps(cfg["model"]))
                data = cache.dataset(cfg["data"])
                out = Path(tempfile.mkdtemp(prefix="edgetrim-export-"))
                result = export.export_point(point, lm, data, fmt, out)
            st.session_state["export_result"] = (str(result.path), str(result.card_path), result.reloaded_accuracy)
        except (ValueError, RuntimeError) as e:
            st.error(str(e))
    done = st.session_state.get("export_result")
    if done and Path(done[0]).exists():
        path, card, acc = Path(done[0]), Path(done[1]), done[2]
        st.success(f"{path.name}: reloaded from disk it scores {100 * acc:.2f} % "
                   f"(stored point {100 * m.accuracy:.2f} %).")
        c1, c2 = st.columns(2)
        c1.download_button(f"Download {path.name} ({path.stat().st_size:,} bytes)", path.read_bytes(),
                           file_name=path.name, key="download_model")
        c2.download_button("Download the model card (JSON)", card.read_bytes(), file_name=card.name,
                           mime="application/json", key="download_card")
    st.caption(f"Run `edgetrim export {runs[0]} {point.key[:10]} --format {fmt} -o <path>` for the same file "
               f"from the command line ({sweep.model_name(cfg['model'])}).")
