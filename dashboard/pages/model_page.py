"""Model & data: a bundled sample or your own files, and the measured baseline."""
from __future__ import annotations

import json

import streamlit as st

from core.inputs import data as D
from core.inputs import device
from core.inputs import models as M
from core.runtimes import measure as ME
from dashboard import cache, figures, fmt, progress, state

MAX_UPLOAD = 200 * 2**20
BUNDLED_DATA = {"digits": "digits (scikit-learn's 8x8 digits, bundled)",
                "mnist": "MNIST (official test split; fetched once, 20 MB)"}  # any model may use any of them


def _choose_model() -> None:
    samples = M.sample_names()
    kind = state.widget(st.radio, "Model", key="model.kind", default="Bundled sample",
                        options=["Bundled sample", "Upload my own"], horizontal=True)
    if kind == "Bundled sample":
        current = json.loads(cache.current_sources()[0])
        name = state.widget(st.selectbox, "Sample model", key="model.sample", options=samples,
                            default=current if current in samples else cache.default_sample())
        st.session_state["model_source"] = json.dumps(name)
        card = M.sample_card(name)
        if st.session_state.get("model.data_for") != name:  # a sample just chosen: the data it was trained on,
            st.session_state["model.data_for"] = name        # then whatever built-in data the person picks
            if st.session_state.get("data_source", "digits") in BUNDLED_DATA and card.get("data") in BUNDLED_DATA:
                state.put("data_source", card["data"])
        st.caption(f"{card['arch']} · input {'x'.join(map(str, card['input_shape']))} · trained on {card['data']} "
                   f"with `{card['trained_with']}`")
        return
    with st.form("upload_model"):
        file = st.file_uploader("Model file: a state_dict (.pt/.pth), TorchScript (.pt/.ts) or torch.export (.pt2)",
                                type=["pt", "pth", "ts", "pt2"], key="model_upload")
        arch = state.widget(st.text_input, "Architecture, for a state_dict only (mlp, mlp-800-800, lenet5, "
                            "lenet5_caffe, resnet18_small or tv:<torchvision name>)", key="model.arch", default="",
                            in_form=True,
                            placeholder="e.g. tv:resnet18; leave empty for TorchScript or .pt2",
                            help="A state_dict holds only weights: name the architecture that takes them. A model "
                                 "of your own architecture: save it with torch.jit.script or torch.export instead.")
        shape = state.widget(st.text_input, "Input shape C x H x W", key="model.shape", default="", in_form=True,
                             placeholder="e.g. 1x28x28 (a .pt2 knows its own; needed for TorchScript)")
        if st.form_submit_button("Load model"):
            if file is None:
                st.error("Choose a model file first.")
            else:
                _load_upload(file, arch, shape)


def _load_upload(file, arch: str, shape: str) -> None:
    """Save, load and check the uploaded model now, so that errors show here, named as the person named the file."""
    rename = {}
    try:
        path = cache.save_upload(file, MAX_UPLOAD)
        rename = {str(path): file.name, path.name: file.name}
        from core.cli.common import parse_shape

        dims = parse_shape(shape.strip()) if shape.strip() else None
        source = {"path": str(path), "arch": arch.strip() or None, **({"input_shape": list(dims)} if dims else {})}
        with st.spinner(f"Loading {file.name}…"):
            cache.model(json.dumps(source, sort_keys=True))
        st.session_state["model_source"] = json.dumps(source, sort_keys=True)
        st.success(f"Loaded {file.name}.")
    except Exception as e:  # any failure to read a user's file is said in one sentence, never as a traceback
        st.error(fmt.one_sentence(e, rename))


def _use_upload() -> None:
    """The 'Use this data' button's callback (before the page is drawn, so the data choice can change)."""
    file, path, saved = st.session_state.get("data_upload"), None, None
    if file is None:
        return
    try:
        path = saved = cache.save_upload(file, MAX_UPLOAD)
        if path.suffix == ".zip":
            path = D.safe_extract_zip(path, path.with_suffix(""))
        cache.dataset(str(path))
        st.session_state["data.names"] = {**st.session_state.get("data.names", {}), str(path): file.name}
        state.put("data_source", str(path))
    except Exception as e:  # one sentence, never a traceback
        st.session_state["data.error"] = fmt.one_sentence(e, {str(path): file.name, path.name: file.name}
                                                          if path else None)
        if saved is not None and str(path) not in st.session_state.get("data.names", {}):
            cache.drop_upload(saved)  # a refused upload leaves nothing in the cache: neither the zip nor what it held


def _choose_data() -> None:
    source = st.session_state.get("data_source", "digits")
    with st.expander(f"Evaluation data: {state.data_label(source)} (built-in digits or MNIST, or your own .npz / "
                     "zipped ImageFolder)"):
        options = list(dict.fromkeys([*BUNDLED_DATA, *st.session_state.get("data.names", {}), source]))
        state.widget(st.radio, "Data", key="data_source", default="digits", options=options,
                     format_func=lambda s: BUNDLED_DATA.get(s) or f"{state.data_label(s)} (uploaded)",
                     help="Any model can be measured on any of them: images are resized and converted between "
                          "1 and 3 channels to fit the model's input.")
        st.file_uploader("Data file", type=["npz", "zip"], key="data_upload")
        st.button("Use this data", disabled=st.session_state.get("data_upload") is None, on_click=_use_upload)
        if "data.error" in st.session_state:
            st.error(st.session_state.pop("data.error"))


def _choose_device() -> None:
    """Where this session's training and PyTorch evaluation run; deployed files are scored in their own runtimes."""
    here = device.present()
    auto = device.describe(device.resolve("auto"))
    state.widget(st.selectbox, "Training device", key="device", default="auto", options=["auto", *here],
                 format_func=lambda d: f"auto ({auto})" if d == "auto" else device.describe(device.resolve(d)),
                 help="Fine-tuning, QAT, distillation and sensitivity scans run here (mixed precision on a GPU, "
                      "for training only). Every deployed file is still scored and timed in its own runtime, and "
                      "a point is the same on any device within float tolerance.")


def main() -> None:
    st.title("Model & data")
    _choose_model()
    _choose_data()
    _choose_device()
    model_json, data_source = cache.current_sources()
    try:
        with st.spinner("Loading the model and data…"):
            lm = cache.model(model_json)
            data = cache.dataset(data_source)
    except Exception as e:  # one sentence, never a traceback
        st.error(f"The model or the data ({state.data_label(data_source)}) could not be loaded: {fmt.one_sentence(e)}")
        return
    shape = lambda s: "x".join(map(str, s))  # noqa: E731
    same = tuple(data.input_shape) == tuple(lm.input_shape)
    fitted = "" if same else f", fitted to the model's {shape(lm.input_shape)}"
    st.caption(f"Data: {state.data_label(data_source)}, {len(data.train):,} train / {len(data.val):,} val / "
               f"{len(data.test):,} test images, {data.num_classes} classes, input {shape(data.input_shape)}{fitted}. "
               "Accuracy is on the held-out test split.")
    try:
        with progress.bar("Measuring the baseline: accuracy, ONNX file, latency on both runtimes") as report:
            m = ME.Metrics.from_dict(cache.baseline(model_json, data_source, report))
    except Exception as e:  # one sentence, never a traceback
        st.error(f"The baseline could not be measured: {fmt.one_sentence(e)}")
        return
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{100 * m.accuracy:.2f} %", help=f"{m.test_samples} test images, ONNX Runtime")
    cols[1].metric("ONNX file", fmt.size(m.onnx_bytes))
    cols[2].metric("ONNX Runtime, batch 1", fmt.ms(m.latency_ms("onnxruntime", 1)))
    cols[3].metric("PyTorch, batch 1", fmt.ms(m.latency_ms("pytorch", 1)))
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{m.params:,}")
    cols[1].metric("Non-zeros", f"{m.nonzero_params:,}")
    cols[2].metric("MACs", f"{fmt.count(m.macs)}")
    cols[3].metric("Compact archive", fmt.size(m.archive_bytes) if m.archive_bytes else "n/a")
    left, right = st.columns(2)
    with left:
        st.subheader("Latency")
        if m.latency:
            fig, clipped = figures.latency_bars([l.__dict__ for l in m.latency])
            st.plotly_chart(fig, key="latency_chart")
            repeats = sorted({l.repeats for l in m.latency})
            outliers = sum(getattr(l, "outliers", 0) for l in m.latency)
            st.caption(f"Bars: median of {repeats[0]}–{repeats[-1]} timed calls per runtime and batch after a warm-up, "
                       f"{m.latency[0].threads} threads; whiskers from the 10th to the 90th percentile"
                       + (f", {clipped} clipped at {figures.CLIP:g}x the median" if clipped else "")
                       + (f"; {outliers} calls slower than {ME.OUTLIER_FACTOR:g}x the median counted as outliers "
                          "(the machine, not the model)" if outliers else "") + ".")
        else:
            st.info("Latency was not measured for this model.")
    with right:
        st.subheader("Layers")
        st.dataframe(cache.layers(model_json), hide_index=True, width="stretch", height=320)
    st.caption(f"Model: {lm.name} · {lm.arch or 'fixed graph'} · input {'x'.join(map(str, lm.input_shape))} · "
               f"{lm.num_classes} classes · weights fingerprint {lm.fingerprint}")


if __name__ == "__main__":
    main()
