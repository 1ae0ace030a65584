"""Explore: slide sparsity, bit width, pruning kind and the student (architecture, width); see the point beside
the baseline."""
from __future__ import annotations

import time

import streamlit as st

from core.inputs.cancel import Cancelled
from core.methods import deploy, quantize
from core.methods import spec as S
from core.methods.distill import Distill
from core.methods.prune import StructuredPrune, UnstructuredPrune
from core.results import describe
from core.runtimes import measure as ME
from dashboard import cache, fmt, progress, state, work

FORMATS = ["2", "3", "4", "5", "6", "7", "8", "fp32"]
WEIGHT_METHODS = {"w": "rounding", "share": "shared values (k-means)",
                  "dc": "shared values, trained (Deep Compression)", "soft": "soft weight-sharing"}  # token prefixes
FILE_FORMATS = ["fp32", "int8", "fp16", "int4", "w4a8"]  # tokens of core.methods.deploy.TOKENS
STUDENTS = {"copy": "a narrower copy of this model", "mlp": "mlp (LeNet-300-100)", "lenet5": "lenet5 (61k weights)",
            "lenet5_caffe": "lenet5_caffe (431k weights)", "resnet18_small": "resnet18_small (ResNet-18, small stem)",
            "tv:mobilenet_v3_small": "tv:mobilenet_v3_small"}


def build_spec() -> S.Spec:
    """The Spec the widgets describe (each choice kept under an app-owned key, see dashboard/state.py)."""
    c1, c2 = st.columns(2)
    sparsity = state.widget(c1.slider, "Sparsity (%)", 0, 95, step=5, key="explore.sparsity", default=0,
                            help="Share of the weights set to zero (unstructured) or of the channels and neurons "
                                 "removed (structured), smallest magnitudes first. 0 = no pruning.")
    kind = state.widget(c1.radio, "Pruning", key="explore.prune_kind", default="unstructured",
                        options=["unstructured", "structured"], horizontal=True,
                        help="unstructured zeroes single weights (smaller archive, same dense shapes); "
                             "structured removes whole channels and neurons (a smaller, faster model)")
    importance = state.widget(c1.radio, "What is pruned first", key="explore.importance", default="magnitude",
                              options=["magnitude", "taylor"] + (["hessian"] if kind == "structured" else []),
                              horizontal=True,
                              help="magnitude: the smallest weights (or channel norms); taylor: the least use to the "
                                   "loss, |w × dL/dw| over 16 training batches; hessian (structured): Torch-Pruning's "
                                   "second-order score.")
    finetune = state.widget(c1.number_input, "Fine-tuning epochs after pruning", min_value=0, max_value=20, step=1,
                            key="explore.finetune_epochs", default=0,
                            help="Passes over the training split after pruning to win back accuracy; "
                                 "0 = prune only. Each epoch adds a few seconds to a new point.")
    bits = state.widget(c2.select_slider, "Weight bits", key="explore.bits", default="fp32", options=FORMATS,
                        help="Bits per weight after quantization (one scale per output channel); fp32 = no "
                             "quantization. Fewer bits make the compact archive smaller and may cost accuracy.")
    method = state.widget(c2.radio, "How weights get their bits", key="explore.weight_method", default="w",
                          options=list(WEIGHT_METHODS), format_func=WEIGHT_METHODS.get, horizontal=True,
                          help="rounding: " + quantize.TOKEN_HELP["w4"] + "; k-means: " + quantize.TOKEN_HELP["share3"]
                               + "; trained: " + quantize.TOKEN_HELP["dc5"] + "; soft: " + quantize.TOKEN_HELP["soft4"])
    file_format = state.widget(c2.radio, "File format", key="explore.file_format", default="fp32",
                               options=FILE_FORMATS, horizontal=True, format_func=lambda t: f"{t} ONNX",
                               help="The file the point ships as, run in ONNX Runtime: " + "; ".join(
                                   f"{t}: {deploy.TOKEN_HELP[t]}" for t in FILE_FORMATS)
                               + ". It combines with the weight bits: 4-bit weights in an int4 file ship as 4-bit "
                                 "codes.")
    arch = state.widget(c2.selectbox, "Student (distillation)", key="explore.student", default="copy",
                        options=list(STUDENTS), format_func=STUDENTS.get,
                        help="Another model trained on this model's soft labels (Hinton et al. 2015): a narrower "
                             "copy of it, or another architecture at the width below; another architecture may be "
                             "larger than this model: its size shows beside the baseline's.")
    width = state.widget(c2.select_slider, "Student width (distillation)", key="explore.student_width", default=1.0,
                         options=[0.25, 0.5, 0.75, 1.0],
                         help="A copy below 1.0, or any other architecture, is a student trained on the model's "
                              "soft labels (slow once, then stored); 1.0 with 'a narrower copy' = no student.")
    training = _student_training()
    distill = None
    if arch != "copy" or width != 1.0:
        distill = Distill(width=width, student=None if arch == "copy" else arch, **training)
    elif training["alone"]:
        st.caption("'Train alone' applies to a student: choose a width below 1.0 or another architecture.")
    prune = None
    if sparsity:
        make = UnstructuredPrune if kind == "unstructured" else StructuredPrune
        how = {} if importance == "magnitude" else {"importance": importance}
        prune = make(ratio=sparsity / 100, finetune_epochs=int(finetune), **how)
    return S.Spec(distill=distill, prune=prune,
                  quantize=quantize.from_token("fp32" if bits == "fp32" else f"{method}{bits}"),
                  deploy=deploy.from_token(file_format))


def _student_training() -> dict:
    """The student's training knobs, in an expander: the defaults are Distill's own."""
    d = Distill()
    with st.expander("Student training"):
        c1, c2 = st.columns(2)
        epochs = state.widget(c1.number_input, "Epochs", min_value=1, max_value=200, step=1,
                              key="explore.distill_epochs", default=d.epochs,
                              help="Passes over the training split (keeping the epoch that scores best on "
                                   "validation).")
        temperature = state.widget(c1.number_input, "Temperature", min_value=1.0, max_value=50.0, step=1.0,
                                   key="explore.temperature", default=d.temperature,
                                   help="Softens the teacher's outputs; Hinton et al. used 20 on MNIST.")
        shift = state.widget(c2.number_input, "Shift images by up to (pixels)", min_value=0, max_value=4, step=1,
                             key="explore.distill_shift", default=d.augment_shift,
                             help="Random translations while training. With a big teacher each shifted batch "
                                  "costs a teacher pass; 0 reuses one stored pass over the training images.")
        alone = state.widget(c2.checkbox, "Train alone, without the teacher (the baseline)", key="explore.alone",
                             default=False, help="The same student on hard labels only: what distillation is "
                                                 "compared with.")
    return dict(epochs=int(epochs), temperature=float(temperature), augment_shift=int(shift), alone=bool(alone))


def _side_by_side_delta(rows: list[dict] | None, runtime: str, batch: int) -> str | None:
    """'-37 % (-41 % to -30 %)': the point against the baseline, timed in alternating rounds; None when not timed so."""
    row = next((r for r in rows or [] if r["runtime"] == runtime and r["batch"] == batch), None)
    if row is None:
        return None
    changes = sorted(100 * (p / b - 1) for p, b in zip(row["point_ms"], row["baseline_ms"]))
    mid = changes[len(changes) // 2]
    return f"{mid:+.0f} % ({changes[0]:+.0f} % to {changes[-1]:+.0f} %)"


def _numbers(box, m: dict, base: ME.Metrics) -> None:
    """The point beside the baseline, drawn into `box` with whatever is measured so far: the accuracy comes
    first, then the sizes, then each latency ('…' for a number still being measured)."""
    def get(name):
        return m.get(name)

    wait = "…"
    with box.container():
        cols = st.columns(4)
        acc = get("accuracy")
        cols[0].metric("Test accuracy", fmt.pct(acc) if acc is not None else wait, fmt.points_delta(acc, base.accuracy),
                       help=None if get("val_accuracy") is None else
                       f"validation split: {fmt.pct(get('val_accuracy'))} (what floors and picks judge)")
        cols[1].metric("ONNX file", fmt.size(get("onnx_bytes")) if get("onnx_bytes") else wait,
                       fmt.size_delta(get("onnx_bytes"), base.onnx_bytes), delta_color="inverse")
        sized = "state_dict_bytes" in m
        cols[2].metric("Compact archive", fmt.size(get("archive_bytes")) if get("archive_bytes") else
                       ("n/a" if sized else wait), fmt.size_delta(get("archive_bytes"), base.archive_bytes),
                       delta_color="inverse")
        cols[3].metric("Non-zeros", f"{get('nonzero_params'):,}" if get("nonzero_params") is not None else wait,
                       fmt.count_delta(get("nonzero_params"), base.nonzero_params), delta_color="inverse")
        complete = m.get("_complete", False)  # every number is in: a runtime not timed is 'n/a', not '…'
        compared = st.session_state.get("explore.compared", {}).get(m.get("_spec"))
        timed = {(l["runtime"], l["batch"]): l for l in m.get("latency", ())}
        cols = st.columns(4)
        for col, (runtime, batch) in zip(cols, [("onnxruntime", 1), ("onnxruntime", 32), ("pytorch", 1),
                                                ("pytorch", 32)]):
            new = timed.get((runtime, batch))
            shown = fmt.ms(new["median_ms"]) if new else ("n/a" if complete else wait)
            delta = _side_by_side_delta(compared, runtime, batch)
            busy = bool(new and new.get("busy")) and delta is None
            col.metric(f"{'ORT' if runtime == 'onnxruntime' else 'PyTorch'} batch {batch}", shown,
                       "busy machine" if busy else delta, delta_color="off" if busy else "inverse",
                       delta_arrow="off" if busy else "auto",
                       help=None if new is None else f"median of {new['repeats']} calls; p90 {fmt.ms(new['p90_ms'])}"
                       + ("; timed while other work crowded the cores, even when timed again: kept out of latency "
                          "fronts until re-timed" if new.get("busy") else ""))
        cols = st.columns(4)
        cols[0].metric("Parameters", f"{get('params'):,}" if get("params") is not None else wait,
                       fmt.count_delta(get("params"), base.params), delta_color="inverse")
        cols[1].metric("MACs", fmt.count(get("macs")) if get("macs") is not None else wait,
                       fmt.count_delta(get("macs"), base.macs), delta_color="inverse")
        cols[2].metric("Baseline accuracy", fmt.pct(base.accuracy))
        cols[3].metric("Baseline ONNX file", fmt.size(base.onnx_bytes))


def _measured(model_json: str, data_source: str, spec: S.Spec, title: str, slot: str, show=None) -> dict | None:
    """A point's metrics: from the store at once; else from the app's job queue, `show(fields)` hearing its
    numbers as they come. A point that trains starts only from the Train button (None until then, and after a
    Cancel)."""
    spec_json = spec.to_json()
    found = cache.stored(model_json, data_source, spec_json)
    if found is not None:
        return found
    job = cache.find_point_job(model_json, data_source, spec_json)
    if job is None or job.finished:
        seconds = cache.training_seconds(model_json, data_source, spec_json)
        if seconds:
            ask = st.empty()
            with ask.container():
                if job is not None and job.state == "cancelled":
                    st.info("Training was cancelled; nothing of it was stored.")
                elif job is not None and job.state == "failed":
                    st.error(f"This point could not be computed: {fmt.one_sentence(job.error)}")
                st.info(f"This point trains before it is measured: {describe.duration(seconds)} on this machine. "
                        "Nothing trains until you press Train; the result is stored, so it is computed once.")
                pressed = st.button("Train", key="explore.train", type="primary",
                                    help="Starts the training as a job: it keeps running if you open another page, "
                                         "and Cancel stops it at the next batch.")
            if not pressed:
                return None
            ask.empty()
        job = cache.point_job(model_json, data_source, spec_json, title, slot=slot, estimate_s=seconds or None)
    bar, stop = st.empty(), st.empty()
    if stop.button("Cancel", key=f"explore.cancel.{slot}", help="Stops this computation at its next batch; "
                   "nothing of it is stored."):
        work.queue().cancel(job)
        deadline = time.monotonic() + 5
        while not job.finished and time.monotonic() < deadline:
            time.sleep(0.1)
        st.rerun()  # drawn again: the point if it finished first, else Train with 'cancelled' above it

    def draw(j) -> None:
        progress.job_bar(j, bar)
        if show is not None and j.partial:
            show(j.partial)

    try:
        return work.wait(job, draw)
    except Cancelled:
        st.info("Cancelled; nothing of it was stored.")
        return None
    finally:
        bar.empty()
        stop.empty()


def main() -> None:
    st.title("Explore")
    model_json, data_source = cache.current_sources()
    st.caption(f"Model {cache.model_label(model_json)} on {state.data_label(data_source)}; each point is computed "
               "once, then comes from the results store. Points that train start from a button; every computation "
               "can be cancelled.")
    spec = build_spec()
    work.queue().release(work.session_id(), "explore", keep=cache.point_job_key(model_json, data_source, spec.to_json()))
    try:
        base_dict = _measured(model_json, data_source, S.Spec(), "Measuring the baseline", "baseline")
        if base_dict is None:
            return
        base = ME.Metrics.from_dict(base_dict)
        st.markdown(f"**{spec.label}**")
        box = st.empty()
        found = _measured(model_json, data_source, spec, f"Computing {spec.label}", "explore",
                          show=lambda fields: _numbers(box, fields, base))
        if found is None:
            return
        m = ME.Metrics.from_dict(found)
    except S.SpecError as e:  # the model cannot do this (a fixed graph, too many classes): say so, no retry
        st.warning(f"{fmt.one_sentence(e)} Choose another setting.")
        return
    except Exception as e:  # one sentence, never a traceback or colour codes
        st.error(f"This point could not be computed: {fmt.one_sentence(e)} Change a setting, or try again.")
        return
    st.session_state["explore_spec"] = spec.to_json()
    _numbers(box, {**m.to_dict(), "_complete": True, "_spec": spec.to_json()}, base)
    compared = st.session_state.get("explore.compared", {}).get(spec.to_json())
    if spec.family != "baseline":
        _compare_button(model_json, data_source, spec, compared)
    for note in describe.notes(m):
        st.info(note)


def _compare_button(model_json: str, data_source: str, spec: S.Spec, compared) -> None:
    """Latency deltas only from the point and the baseline timed side by side, never from two separate runs."""
    if compared:
        threads = compared[0]["threads"]
        st.caption(f"Latency changes: the point against the baseline, timed in {len(compared[0]['point_ms'])} "
                   f"alternating rounds on {threads} threads (median change, and the range over the rounds).")
        return
    left, right = st.columns([1, 3])
    if left.button("Time against the baseline", key="explore.compare",
                   help="Times this point and the baseline in alternating rounds, so both see the same machine; "
                        "only then is a latency change shown. Takes a few seconds."):
        try:
            rows = progress.run(f"compare|{model_json}|{data_source}|{spec.to_json()}",
                                "Timing the point and the baseline side by side",
                                lambda report: cache.compare_latency(model_json, data_source, spec.to_json(), report))
            st.session_state.setdefault("explore.compared", {})[spec.to_json()] = rows
            st.rerun()
        except Exception as e:  # one sentence, never a traceback
            st.error(f"The timing did not complete: {fmt.one_sentence(e)}")
    right.caption("Latencies above are each measured on their own, so their difference is noise-prone; no change "
                  "is shown until the two are timed side by side.")


if __name__ == "__main__":
    main()
