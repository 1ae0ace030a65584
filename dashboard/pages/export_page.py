"""Export: the point chosen on Trade-offs, a format, and the verified file to download.

The chosen point lives under the app-owned key "chosen_point" and the build under
"export_result", so both survive this page's reruns and visits to other pages.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.engine import runner
from core.results import export
from core.results.store import Store
from core.runtimes import micro
from dashboard import cache, fmt, progress, state

FORMATS = list(export.FORMATS)
FORMAT_NAMES = {"onnx": "ONNX, fp32", "onnx-fp16": "ONNX, fp16 weights", "onnx-int8": "ONNX, int8 (QDQ)",
                "onnx-int4": "ONNX, 4-bit Linear weights (MatMulNBits)",
                "pte": "ExecuTorch .pte, fp32 (XNNPACK)", "pte-int8": "ExecuTorch .pte, int8 (XNNPACK)",
                "pte-int4": "ExecuTorch .pte, 8-bit activations x 4-bit Linear weights (XNNPACK)",
                "tflite": "LiteRT .tflite, fp32", "tflite-int8": "LiteRT .tflite, int8",
                "tflite-int4": "LiteRT .tflite, 8-bit activations x 4-bit Linear weights",
                "pt2": "PyTorch torch.export (.pt2)", "archive": "compact archive (.etz)"}
OWN_FILES = {"executorch": ("ExecuTorch", "ExecuTorch .pte"), "litert": ("LiteRT", "LiteRT .tflite")}  # runtimes
# with a file of their own: (runtime, file) as the metrics name them


def _build(key: str, fmt_name: str) -> None:
    on = state.device()  # read here: the job runs in the queue's thread
    try:
        st.session_state["export_result"] = progress.run(
            f"export|{key}|{fmt_name}", "Writing the file from the point's kept model, reloading and re-scoring it",
            lambda report: cache.export_point(key, fmt_name, report, on))
    except Exception as e:  # one sentence, never a traceback
        st.session_state.pop("export_result", None)
        st.error(f"The export did not complete: {fmt.one_sentence(e)}")


def main() -> None:
    st.title("Export")
    key = state.get("chosen_point")
    store = Store()
    try:
        point = store.get(key) if key else None
        runs = store.runs_of(key) if key else None
        chosen_runs = [r for r in state.get("tradeoffs.runs") or [] if r in (runs or [])]
        runs = chosen_runs + [r for r in runs or [] if r not in chosen_runs]  # the run it was picked in first
        cfg = store.run_config(runs[0]) if runs else None
    finally:
        store.close()
    if point is None or cfg is None or point.metrics is None:
        st.info("Select a point on the Trade-offs page first (or keep the recommended one).")
        return
    m = point.metrics
    st.subheader(point.spec.label)
    st.caption(f"From run {runs[0]} · model {runner.model_name(cfg['model'])} · data {cfg['data']}")
    runtime = state.get("export.runtime", "onnxruntime")  # the runtime chosen on Trade-offs
    shipped = m.file(runtime) if runtime in OWN_FILES else None  # its own file, when the point ran there
    name, file_name = OWN_FILES.get(runtime, ("ORT", "ONNX file"))
    cols = st.columns(4)
    cols[0].metric("Test accuracy", fmt.pct(shipped.accuracy if shipped else m.accuracy),
                   help=f"of the {file_name} (ONNX file: {fmt.pct(m.accuracy)})" if shipped else None)
    if shipped:
        cols[1].metric(file_name, fmt.size(shipped.bytes), help=f"ONNX file: {fmt.size(m.onnx_bytes)}")
    else:
        cols[1].metric("ONNX file", fmt.size(m.onnx_bytes))
    cols[2].metric("Compact archive", fmt.size(m.archive_bytes) if m.archive_bytes else "none",
                   help=None if m.archive_bytes else "TorchScript and torch.export models have no compact archive")
    lat = m.latency_ms(runtime, 1)
    cols[3].metric(f"{name} batch 1",
                   fmt.ms(lat) if lat is not None else "not timed",
                   help=None if lat is not None else "this point was not timed on this runtime")
    if shipped is not None and shipped.ram_bytes is not None:  # a LiteRT file: what a microcontroller needs
        fits = micro.boards_fitting(shipped.bytes, shipped.ram_bytes, shipped.ram_source)
        st.caption(f"On a microcontroller: {fmt.size(shipped.bytes)} of flash, {fmt.size(shipped.ram_bytes)} of RAM "
                   f"(tensor arena, from {shipped.ram_source}); fits on "
                   + (", ".join(fits) if fits else "none of edgetrim's boards") + ".")
    with st.expander("Spec and metrics"):
        st.json({"spec": point.spec.to_dict(full=True), "metrics": m.to_dict()})
    own = export.default_format(point.spec, runtime)
    bits = getattr(point.spec.quantize, "bits", None)
    if bits and bits <= 4 and not own.endswith("int4"):
        st.caption(f"This point's weights have {bits} bits, but its file holds them as {own.partition('-')[2] or 'fp32'}"
                   f"; the {own.partition('-')[0]}-int4 format ships them as 4-bit codes a runtime executes.")
    if state.get("export.format_for") != (point.key, runtime):  # a new point or runtime: its own format first
        state.put("export.format", own)
        st.session_state["export.format_for"] = (point.key, runtime)
    fmt_name = state.widget(st.selectbox, "Format", key="export.format", default=own,
                            options=FORMATS, format_func=lambda f: FORMAT_NAMES.get(f, f),
                            help="The default is the format the point was measured as, for the runtime chosen on "
                                 "Trade-offs (ONNX Runtime: .onnx; ExecuTorch: .pte; LiteRT: .tflite).")
    if st.button("Build, reload and verify", type="primary", key="build_export",
                 help="Writes the file from the point's kept model (the measured file itself in its own format), "
                      "reloads it from disk and scores it again before offering it."):
        _build(point.key, fmt_name)
    done = st.session_state.get("export_result")
    if done and done["key"] == point.key and done["format"] == fmt_name and Path(done["path"]).exists():
        path, card = Path(done["path"]), Path(done["card"])
        made = {"kept": "from the model kept when the point was measured (nothing trained again)",
                "rebuilt": "rebuilt from its Spec: its kept files were gone"}.get(done.get("source"), "")
        st.success(f"{path.name}: reloaded from disk it scores {fmt.pct(done['accuracy'])} "
                   f"(stored point {fmt.pct(done.get('stored', m.accuracy))}); {made}.")
        c1, c2 = st.columns(2)
        c1.download_button(f"Download {path.name} ({fmt.size(path.stat().st_size)})", path.read_bytes(),
                           file_name=path.name, key="download_model", on_click="ignore")
        c2.download_button("Download the model card (JSON)", card.read_bytes(), file_name=card.name,
                           mime="application/json", key="download_card", on_click="ignore")
    st.caption(f"Run `edgetrim export {runs[0]} {point.key[:10]} --format {fmt_name} -o <path>` for the same file "
               f"from the command line.")


if __name__ == "__main__":
    main()
