"""Every page through Streamlit's AppTest: renders, reacts to its widgets, never shows a traceback.

`page(name)` runs one page alone; `app()` runs the real dashboard/app.py and `goto(at, name)`
switches pages inside ONE session, as a person does (Streamlit then drops the state of
widgets that are not drawn, which is what the app-owned keys in dashboard/state.py survive).
"""
import json
import re
import threading
import time
from pathlib import Path

import pytest
from google.protobuf.message import Message
from streamlit.testing.v1 import AppTest

from dashboard.state import widget_key as W

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["model_page", "explore_page", "sweep_page", "tradeoffs_page", "export_page"]
TIMEOUT = 180


def page(name: str, **state) -> AppTest:
    at = AppTest.from_string(f"from dashboard.pages import {name}\n{name}.main()\n", default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def goto(at: AppTest, name: str) -> AppTest:
    return at.switch_page(f"pages/{name}.py").run()


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def texts(at: AppTest) -> list[str]:
    """Every string anywhere in the rendered page (all proto fields of all elements)."""
    out: list[str] = []

    def walk(msg: Message) -> None:
        for field, value in msg.ListFields():
            repeated = getattr(field, "is_repeated", None)
            repeated = repeated if repeated is not None else field.label == field.LABEL_REPEATED
            values = value if repeated else [value]
            for v in values:
                if isinstance(v, Message):
                    walk(v)
                elif isinstance(v, str):
                    out.append(v)

    def visit(node) -> None:
        if getattr(node, "proto", None) is not None and isinstance(node.proto, Message):
            walk(node.proto)
        for child in getattr(node, "children", {}).values():
            visit(child)

    visit(at._tree)
    return out


def assert_clean(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.message for e in at.exception]}"
    bad = [t for t in texts(at) if "Traceback" in t or "\x1b[" in t]
    assert not bad, f"{where} shows a traceback or ANSI codes: {bad[:2]}"


# ---- pages one by one --------------------------------------------------------------------

def test_the_app_starts_on_the_model_page_and_switches_samples(ui_env):
    from core.inputs import models as M

    at = app()
    assert not at.exception
    assert metric(at, "Test accuracy").value.endswith("%")
    first = at.selectbox(key=W("model.sample")).value
    assert M.sample_card(first)["data"] == "digits", "the default sample needs no download"
    at.selectbox(key=W("model.sample")).select("mlp").run()
    assert not at.exception and metric(at, "Parameters").value == "266,610"


def test_explore_sparsity_slider_changes_the_nonzero_count(ui_env):
    at = page("explore_page")
    assert not at.exception and not at.error
    before = metric(at, "Non-zeros").value
    at.slider(key=W("explore.sparsity")).set_value(50).run()
    assert not at.exception
    after = metric(at, "Non-zeros").value
    assert after != before and int(after.replace(",", "")) < int(before.replace(",", ""))
    assert re.fullmatch(r"-\d+(\.\d+)? k \(-\d+ %\)", metric(at, "Non-zeros").delta), metric(at, "Non-zeros").delta
    at.select_slider(key=W("explore.bits")).set_value("4").run()
    assert not at.exception and any("4-bit" in m.value for m in at.markdown), [m.value for m in at.markdown]
    assert any("dense CPU kernels" in i.value for i in at.info)
    for label in ("ONNX file", "Compact archive"):
        assert re.fullmatch(r"[-+][\d.]+ (B|KB|MB)( \([-+]\d+ %\))?", metric(at, label).delta or "+0 B"), label
    assert at.slider(key=W("explore.sparsity")).help and at.select_slider(key=W("explore.bits")).help
    assert at.number_input(key=W("explore.finetune_epochs")).help
    archive_kb = metric(at, "Compact archive").value
    at.radio(key=W("explore.weight_method")).set_value("share").run()     # k-means sharing: 16 values per layer
    assert not at.exception and any("16 values per layer" in m.value for m in at.markdown)
    assert metric(at, "Compact archive").value != archive_kb
    assert "Deep Compression" in at.radio(key=W("explore.weight_method")).help


def test_explore_trains_a_student_of_another_architecture_and_the_same_one_alone(ui_env):
    at = page("explore_page")
    at.number_input(key=W("explore.distill_epochs")).set_value(3)
    at.number_input(key=W("explore.distill_shift")).set_value(0)
    at.selectbox(key=W("explore.student")).select("mlp").run()
    assert_clean(at, "Explore with an mlp student")
    assert any("student mlp (distilled, T=4, 3 ep)" in m.value for m in at.markdown), [m.value for m in at.markdown]
    # a choice that trains starts nothing: the page says how long it would take and waits for Train
    assert not any(m.label == "Parameters" for m in at.metric), "a student started training from a widget change"
    assert any("trains before it is measured" in i.value and "about" in i.value for i in at.info)
    at.button(key="explore.train").click().run()
    assert_clean(at, "Explore after Train")
    assert metric(at, "Parameters").value == "266,610"          # LeNet-300-100, not the lenet5 teacher
    distilled = metric(at, "Test accuracy").value
    at.checkbox(key=W("explore.alone")).check().run()
    at.button(key="explore.train").click().run()
    assert_clean(at, "Explore with the student alone")
    assert any("student mlp (trained alone, no teacher, 3 ep)" in m.value for m in at.markdown)
    assert metric(at, "Test accuracy").value != distilled or metric(at, "Test accuracy").delta
    assert at.selectbox(key=W("explore.student")).help and at.number_input(key=W("explore.distill_shift")).help


def test_explore_shows_no_latency_delta_for_the_baseline_against_itself(ui_env):
    at = page("explore_page")
    assert not at.exception
    for label in ("ORT batch 1", "ORT batch 32", "PyTorch batch 1", "PyTorch batch 32"):
        assert not metric(at, label).delta, f"{label}: the baseline against itself is noise, not a delta"


def test_a_latency_delta_comes_only_from_timing_side_by_side(ui_env):
    """No latency change from two separate measurements; after 'Time against the baseline' the change is the
    median over alternating rounds, with its range."""
    at = page("explore_page")
    at.slider(key=W("explore.sparsity")).set_value(50)
    at.radio(key=W("explore.prune_kind")).set_value("structured").run()
    assert not at.exception
    assert all(not metric(at, l).delta for l in ("ORT batch 1", "PyTorch batch 32")), "a delta from separate runs"
    at.button(key="explore.compare").click().run()
    assert not at.exception and not at.error
    delta = metric(at, "ORT batch 1").delta
    assert re.fullmatch(r"[-+]\d+ % \([-+]\d+ % to [-+]\d+ %\)", delta), delta
    assert any("alternating rounds" in c.value for c in at.caption)


def test_sweep_page_estimates_points_and_refuses_an_empty_axis(ui_env):
    at = page("sweep_page")
    assert not at.exception
    assert any("points" in m.value for m in at.markdown)
    ratios = at.multiselect(key=W("sweep.ratios"))
    assert all(o.endswith(" %") for o in ratios.options), ratios.options  # percent, as on Explore
    assert "qat3" in at.multiselect(key=W("sweep.quant")).help and "share3" in at.multiselect(key=W("sweep.quant")).help
    weights = at.multiselect(key=W("sweep.quant"))
    assert {"vd4 (sparse variational dropout, 16 values)", "bayes (Bayesian compression, widths from the posterior)"} \
        <= set(weights.options) and "sparse variational dropout" in weights.help
    weights.set_value(["fp32", "vd4", "bayes"]).run()   # the research methods, chosen like any weight format
    at.number_input(key=W("sweep.weight_epochs")).set_value(12).run()   # their training epochs: qat_epochs
    assert not at.exception and not at.error and any("points" in m.value for m in at.markdown)
    at.multiselect(key=W("sweep.kinds")).set_value(["unstructured", "lottery"]).run()
    at.number_input(key=W("sweep.layer_trials")).set_value(20).run()
    assert not at.exception and any("then **20 per-layer trials**" in m.value for m in at.markdown)
    assert "rewound" in at.multiselect(key=W("sweep.kinds")).help
    at.multiselect(key=W("sweep.quant")).set_value([]).run()
    assert not at.exception and "is empty" in at.error[0].value


def test_tradeoffs_floor_changes_the_recommended_point(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui"]})
    assert not at.exception
    assert at.get("plotly_chart")
    first = at.session_state["recommended_key"]
    floor = at.slider(key=W("tradeoffs.floor"))
    floor.set_value(floor.max).run()  # only the most accurate points qualify
    assert not at.exception
    assert at.session_state["recommended_key"] != first
    assert at.session_state["chosen_point"] == at.session_state["recommended_key"]


def test_tradeoffs_reads_like_a_person_wrote_it(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui"]})
    assert not at.exception
    x, pick_by = at.selectbox(key=W("tradeoffs.x")), at.selectbox(key=W("tradeoffs.pick_by"))
    assert x.value == "archive" and pick_by.value == "archive", "the default axis is where points spread"
    floor = at.slider(key=W("tradeoffs.floor"))
    assert floor.min > 0 and floor.max <= 100 and floor.step == 0.1 and floor.help and pick_by.help
    assert floor.max - floor.min <= 11, "the floor spans at most ten points below the best, in 0.1 steps"
    message = (at.success or at.warning)[0].value
    assert re.search(r"\d (B|KB|MB)\b", message), message
    words = " ".join(texts(at))
    for raw in ("onnx_bytes", "archive_bytes", "torch_latency", "ort_b1_ms", "e+0", "customdata[0]"):
        assert raw not in words, raw
    assert not re.search(r"\b[0-9a-f]{16,}\b", message)
    spec = at.get("plotly_chart")[0].proto.spec
    assert '"recommended"' in spec and '"selected"' in spec and '"lines"' in spec  # both rings, and fronts
    # the recommendation follows the x axis, until the person chooses another measure for it
    x.select("size").run()
    assert at.selectbox(key=W("tradeoffs.pick_by")).value == "size"
    at.selectbox(key=W("tradeoffs.pick_by")).select("latency").run()
    at.selectbox(key=W("tradeoffs.x")).select("archive").run()
    assert at.selectbox(key=W("tradeoffs.pick_by")).value == "latency"
    assert not at.exception


def test_tradeoffs_picks_under_a_floor_and_a_latency_budget_on_a_runtime(ui_env):
    from core.runtimes import executorch_io

    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui-runtimes"], "tradeoffs.x": "latency",
                                   "tradeoffs.pick_by": "size"})
    assert_clean(at, "Trade-offs with runtimes")
    runtime = at.selectbox(key=W("tradeoffs.runtime"))
    expected = ["onnxruntime", "executorch", "pytorch"] if not executorch_io.why_unavailable() else \
        ["onnxruntime", "pytorch"]
    assert runtime.options == [{"onnxruntime": "ONNX Runtime", "executorch": "ExecuTorch",
                                "pytorch": "PyTorch"}[r] for r in expected]
    on = "executorch" if "executorch" in expected else "onnxruntime"
    runtime.select(on).run()
    budget = at.select_slider(key=W("tradeoffs.budget"))
    assert budget.value == "no budget"
    ms = lambda option: float(option.split()[0])  # the slider shows '0.03 ms'
    budget.set_value(ms(budget.options[0])).run()  # below the fastest point: unreachable, and said by how much
    assert_clean(at, "an unreachable budget")
    assert at.warning and "over the budget" in at.warning[0].value and "The closest is" in at.warning[0].value
    steps = at.select_slider(key=W("tradeoffs.budget")).options
    at.select_slider(key=W("tradeoffs.budget")).set_value(ms(steps[-2])).run()  # above the slowest: all fit
    assert_clean(at, "a budget every point meets")
    assert at.success and "within" in at.success[0].value
    spec = at.get("plotly_chart")[0].proto.spec
    assert '"rect"' in spec and "budget" in spec  # the feasible region shaded, the budget drawn
    if on == "executorch":
        assert "ExecuTorch" in spec and ".pte" in " ".join(texts(at))
    assert at.session_state["export.runtime"] == on


def test_tradeoffs_shows_students_as_their_own_family_beside_pruning(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui-students"]})
    assert_clean(at, "Trade-offs with students")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in spec["data"]}
    assert {"pruning", "distillation", "student alone"} <= names, names
    floor = at.slider(key=W("tradeoffs.floor"))
    floor.set_value(floor.min).run()  # every point qualifies: each family's best side by side
    table = at.dataframe[0].value
    assert {"baseline", "pruning", "distillation", "student alone"} <= set(table["Family"])
    assert all(v.endswith(("x smaller", "x larger", "same as the baseline")) for v in table["vs baseline"])
    floor.set_value(floor.max).run()  # only the best qualify: the other families say so, with their best try
    table = at.dataframe[0].value
    assert {"pruning", "distillation", "student alone"} <= set(table["Family"])
    assert any(p.startswith("nothing at the floor; most accurate:") for p in table["Point"])
    assert "student mlp x0.5" in " ".join(table["Point"])


def test_tradeoffs_opens_on_a_stored_run_when_the_chosen_one_is_not_stored_yet(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["a-sweep-just-started"]})
    assert not at.exception and at.multiselect(key=W("tradeoffs.runs")).value and at.get("plotly_chart")


def test_export_page_builds_a_downloadable_verified_file(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui"]})
    key = at.session_state["chosen_point"]
    at = page("export_page", chosen_point=key)
    assert not at.exception
    at.button(key="build_export").click().run()
    assert not at.exception and not at.error
    assert "reloaded from disk it scores" in at.success[0].value
    assert len(at.get("download_button")) == 2


def test_export_page_without_a_selection_says_what_to_do(ui_env):
    at = page("export_page")
    assert not at.exception and "Select a point" in at.info[0].value


# ---- one session across pages -------------------------------------------------------------

def test_a_point_chosen_on_tradeoffs_is_exported_and_downloadable_in_one_session(ui_env):
    at = app(**{"tradeoffs.runs": ["ui"]})
    goto(at, "tradeoffs_page")
    assert not at.exception
    from dashboard import cache

    ok = cache.run_table("ui").query("status == 'ok'")
    other = next(k for k in ok["key"] if k != at.session_state["recommended_key"])  # not the recommended point
    at.selectbox(key=W("chosen_point")).select(other).run()
    chosen = at.session_state["chosen_point"]
    assert chosen != at.session_state["recommended_key"]
    goto(at, "export_page")
    assert not at.exception and not at.info, [i.value for i in at.info]
    at.button(key="build_export").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("download_button")) == 2
    at.run()  # any rerun (a download click reruns nothing, a widget elsewhere does)
    assert len(at.get("download_button")) == 2
    goto(at, "model_page")
    goto(at, "export_page")
    assert len(at.get("download_button")) == 2 and at.session_state["chosen_point"] == chosen
    goto(at, "tradeoffs_page")
    assert at.selectbox(key=W("chosen_point")).value == chosen


def test_choices_survive_visits_to_other_pages(ui_env):
    at = app(**{"tradeoffs.runs": ["ui"]})
    goto(at, "explore_page")
    at.slider(key=W("explore.sparsity")).set_value(50)
    at.radio(key=W("explore.prune_kind")).set_value("structured")
    at.select_slider(key=W("explore.bits")).set_value("4").run()
    assert not at.exception
    goto(at, "model_page")
    goto(at, "explore_page")
    assert at.slider(key=W("explore.sparsity")).value == 50
    assert at.radio(key=W("explore.prune_kind")).value == "structured"
    assert at.select_slider(key=W("explore.bits")).value == "4"

    goto(at, "tradeoffs_page")
    at.selectbox(key=W("tradeoffs.x")).select("latency").run()
    floor = at.slider(key=W("tradeoffs.floor"))
    target = round(floor.min + 2.3, 1)
    floor.set_value(target).run()
    at.selectbox(key=W("tradeoffs.pick_by")).select("size").run()
    goto(at, "export_page")
    goto(at, "tradeoffs_page")
    assert at.selectbox(key=W("tradeoffs.x")).value == "latency"
    assert at.slider(key=W("tradeoffs.floor")).value == pytest.approx(target)
    assert at.selectbox(key=W("tradeoffs.pick_by")).value == "size"
    assert at.multiselect(key=W("tradeoffs.runs")).value == ["ui"]

    goto(at, "sweep_page")
    at.text_input(key=W("sweep.run")).set_value("kept-name")
    at.multiselect(key=W("sweep.ratios")).set_value([0, 25]).run()
    goto(at, "explore_page")
    goto(at, "sweep_page")
    assert at.text_input(key=W("sweep.run")).value == "kept-name"
    assert at.multiselect(key=W("sweep.ratios")).value == [0, 25]
    assert not at.exception


def test_every_page_renders_without_exception_traceback_or_ansi(ui_env):
    at = app(**{"tradeoffs.runs": ["ui"]})
    assert_clean(at, "model_page")
    for name in PAGES:
        goto(at, name)
        assert_clean(at, name)


def test_an_error_from_core_is_one_sentence_without_colour_codes(ui_env, monkeypatch):
    from dashboard import cache

    def fails(*args, **kwargs):
        raise RuntimeError("\x1b[31mTorchExportError: ProxyTorchDispatchMode slot already occupied\x1b[0m. "
                           "While executing %x.\nTraceback (most recent call last):\n  File \"x.py\", line 1")

    monkeypatch.setattr(cache, "explore_point", fails)
    at = page("explore_page", **{"explore.sparsity": 35})  # a point not stored yet: it is computed, and fails
    assert_clean(at, "explore_page")
    assert at.error and at.error[0].value.count(". ") <= 1
    assert "slot already occupied" in at.error[0].value


def test_model_and_data_work_runs_one_at_a_time(ui_env, monkeypatch):
    """Overlapping reruns (threads of one process) never build or export models at once."""
    from core.results.store import Store
    from dashboard import cache

    store = Store()
    point = store.get(cache.run_table("ui")["key"].iloc[0])
    store.close()
    active, most, calls = [0], [0], []
    lock = threading.Lock()

    def slow(*args, **kwargs):
        calls.append(1)
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return [point]

    monkeypatch.setattr(cache.runner, "run_group", slow)
    model_json = '"lenet5"'
    cache.model(model_json), cache.dataset("digits")
    threads = [threading.Thread(target=cache.explore_point, args=(model_json, "digits", f'{{"x": {i}}}'))
               for i in range(3)]
    from core.methods.prune import UnstructuredPrune

    unseen = lambda s: cache.S.Spec(prune=UnstructuredPrune(0.31 + json.loads(s)["x"] / 100))  # noqa: E731
    monkeypatch.setattr(cache.S.Spec, "from_json", staticmethod(unseen))  # points not in the store: computed
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and len(calls) == 3


def test_uploads_name_the_person_s_file_and_ask_for_one_when_missing(ui_env):
    at = page("model_page")
    at.radio(key=W("model.kind")).set_value("Upload my own").run()
    load = lambda: next(b for b in at.button if b.label == "Load model")  # noqa: E731
    load().click().run()  # no file chosen
    assert not at.exception and at.error[0].value == "Choose a model file first."
    at.file_uploader(key="model_upload").upload("my-notes.pt", b"these are notes, not a model\n" * 3)
    load().click().run()
    assert not at.exception
    message = at.error[0].value
    assert "my-notes.pt" in message, message
    assert not re.search(r"[0-9a-f]{20}", message) and not re.search(r"\(\d+\)", message), message


def test_a_stopped_sweep_shows_the_end_of_its_log_not_where_the_log_is(ui_env):
    import yaml

    from core import cache_dir
    from dashboard import jobs

    run = "ui-stopped"
    (jobs.folder() / f"{run}.yaml").write_text(yaml.safe_dump({
        "run": run, "model": "lenet5", "axes": {"prune_ratio": [0.0, 0.3]}, "measure": {"latency": False}}))
    (jobs.folder() / f"{run}.pid").write_text("999999999")  # no such process: the job ended
    (jobs.folder() / f"{run}.log").write_text(f"2 points to compute\nedgetrim: error: No model at "
                                              f"{cache_dir()}/uploads/0123456789abcdef0123/mine.pt.\n")
    at = page("sweep_page", active_run=run)
    assert not at.exception and any("ended before all its points" in c.value for c in at.caption)
    assert at.code[-1].value.endswith("edgetrim: error: No model at …/uploads/0123456789abcdef0123/mine.pt.")
    assert not [t for t in texts(at) if str(cache_dir()) in t or str(jobs.folder()) in t]


def _mnist_or_skip():
    from core.inputs import data as D
    from core.inputs import mnist

    try:
        D.load_data("mnist")
    except mnist.MnistError as e:
        pytest.skip(f"SKIPPED LOUDLY: MNIST could not be fetched here ({e})")


def _data_shown(at: AppTest) -> tuple[str, str]:
    """(the expander's title, the page's 'Data: ...' line)."""
    return at.expander[0].label, next(c.value for c in at.caption if c.value.startswith("Data: "))


def test_a_sample_keeps_the_built_in_data_chosen_and_the_data_line_follows_it(ui_env):
    _mnist_or_skip()
    at = page("model_page", **{"model.sample": "lenet5"})
    assert _data_shown(at)[0].startswith("Evaluation data: digits") and _data_shown(at)[1].startswith("Data: digits")
    at.radio(key=W("data_source")).set_value("mnist").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    title, line = _data_shown(at)
    assert title.startswith("Evaluation data: MNIST") and line.startswith("Data: MNIST, 50,000 train"), (title, line)
    at.run()  # the sample's own data (digits) is its default, not a rule: MNIST stays
    assert at.session_state["data_source"] == "mnist" and _data_shown(at)[1].startswith("Data: MNIST")
    at.selectbox(key=W("model.sample")).select("lenet5_mnist").run()  # another sample: its own data
    assert at.session_state["data_source"] == "mnist"
    at.selectbox(key=W("model.sample")).select("mlp").run()
    assert at.session_state["data_source"] == "digits" and _data_shown(at)[1].startswith("Data: digits")


def test_an_uploaded_model_pairs_with_mnist_and_an_uploaded_file_shows_its_name_not_its_cache_path(ui_env):
    """An uploaded state_dict measured on MNIST (not only digits); then an uploaded .npz: the expander, the data
    line and the choices name the person's file, and no string on the page holds the upload folder."""
    import hashlib
    import io

    import numpy as np

    from core import cache_dir
    from core.inputs import models as M

    _mnist_or_skip()
    at = page("model_page")
    at.radio(key=W("model.kind")).set_value("Upload my own").run()
    model_bytes = (M.SAMPLES_DIR / "lenet5_mnist.pt").read_bytes()
    at.file_uploader(key="model_upload").upload("my lenet.pt", model_bytes)
    at.text_input(key=W("model.arch")).set_value("lenet5")
    next(b for b in at.button if b.label == "Load model").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.radio(key=W("data_source")).set_value("mnist").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _data_shown(at)[1].startswith("Data: MNIST") and float(metric(at, "Test accuracy").value[:-2]) > 99
    rng = np.random.default_rng(0)
    blob = io.BytesIO()
    np.savez(blob, x=rng.integers(0, 255, (120, 28, 28), dtype=np.uint8), y=np.arange(120) % 10)
    at.file_uploader(key="data_upload").upload("my digits.npz", blob.getvalue())
    at.run()
    next(b for b in at.button if b.label == "Use this data").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    title, line = _data_shown(at)
    assert title.startswith("Evaluation data: my digits.npz") and line.startswith("Data: my digits.npz, "), (title,
                                                                                                              line)
    assert at.radio(key=W("data_source")).options == [
        "digits (scikit-learn's 8x8 digits, bundled)", "MNIST (official test split; fetched once, 20 MB)",
        "my digits.npz (uploaded)"]
    folders = [hashlib.sha256(b).hexdigest()[:20] for b in (blob.getvalue(), model_bytes)]  # uploads/<hash>/
    leaked = lambda at: [t for t in texts(at) if "uploads" in t or str(cache_dir()) in t  # noqa: E731
                         or any(f in t for f in folders)]
    assert not leaked(at), leaked(at)
    explore = page("explore_page", **{k: at.session_state[k] for k in ("model_source", "data_source", "data.names")})
    assert not explore.exception and any("on my digits.npz" in c.value for c in explore.caption)
    assert not leaked(explore), leaked(explore)


# ---- the background sweep and its record -------------------------------------------------

def test_sweep_page_runs_a_sweep_in_the_background_into_the_store(ui_env):
    from core.results.store import Store
    from dashboard import jobs

    at = page("sweep_page")
    at.text_input(key=W("sweep.run")).set_value("ui-background")
    at.multiselect(key=W("sweep.ratios")).set_value([0, 50])
    at.multiselect(key=W("sweep.quant")).set_value(["fp32", "w4"])
    at.multiselect(key=W("sweep.deploy")).set_value(["fp32"])
    at.checkbox(key=W("sweep.latency")).uncheck().run()
    assert any("**4 points**" in m.value for m in at.markdown)
    at.button(key="run_sweep").click().run()
    assert not at.exception and not at.error
    deadline, done = time.time() + 180, 0
    while time.time() < deadline and (done < 4 or jobs.is_running("ui-background")):
        time.sleep(1)
        store = Store()
        try:
            done = len(store.table("ui-background")) if "ui-background" in set(store.runs()["run"]) else 0
        finally:
            store.close()
    assert done == 4, jobs.log_tail("ui-background", 20)

    # a page reload is a new session: the form, the total and the progress come from the job's record
    at = page("sweep_page")
    assert not at.exception
    assert at.text_input(key=W("sweep.run")).value == "ui-background"
    assert at.multiselect(key=W("sweep.ratios")).value == [0, 50]
    assert at.multiselect(key=W("sweep.quant")).value == ["fp32", "w4"]
    bar = at.get("progress")[0]
    assert "4 of 4 points stored · finished" in bar.text and bar.value == 100, bar.text
    table = at.dataframe[0].value
    assert "Accuracy (%)" in table.columns and table["Accuracy (%)"].max() > 1  # percent, not a fraction


def test_tradeoffs_opens_on_the_file_size_for_a_run_of_graphs_with_no_archive(ui_env, tmp_path):
    """A TorchScript model has no compact archive: the page opens on its file's size, with a chart."""
    import torch

    from core.engine import grid, sweep
    from core.inputs import models as M
    from core.results.store import Store

    path = tmp_path / "lenet5_ts.pt"
    module = M.load_sample("lenet5").copy_module().eval()
    with torch.no_grad():  # other weights than the sample's, so none of its stored points (with archives) is reused
        next(module.parameters()).mul_(0.999)
    torch.jit.script(module).save(str(path))
    store = Store()
    sweep.run_sweep(grid.load_config({"run": "ui-graph", "model": {"path": str(path), "input_shape": [1, 28, 28]},
                                      "axes": {"deploy": ["fp32", "int8"]}, "measure": {"latency": False}}), store)
    store.close()
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui-graph"]})
    assert_clean(at, "Trade-offs of a TorchScript run")
    assert at.selectbox(key=W("tradeoffs.x")).value == "size" and at.get("plotly_chart") and at.success


def test_tradeoffs_measures_a_per_layer_point_seeded_from_the_heatmap_beside_the_uniform_one(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui"]})
    at.button(key="sensitivity").click().run()
    assert_clean(at, "sensitivity")
    layer_keys = [s.key for s in at.select_slider if s.key and s.key.startswith(W("tradeoffs.layer."))]
    assert len(layer_keys) >= 3
    seeded = {k: at.select_slider(key=k).value for k in layer_keys}
    at.select_slider(key=W("tradeoffs.tolerance")).set_value(5.0).run()  # a looser tolerance: no layer prunes less
    looser = {k: at.select_slider(key=k).value for k in layer_keys}
    assert all(looser[k] >= seeded[k] for k in layer_keys) and looser != {k: 0 for k in layer_keys}
    at.select_slider(key=layer_keys[0]).set_value(90).run()  # then one layer by hand
    at.button(key="measure_per_layer").click().run()
    assert_clean(at, "per-layer point")
    table = at.table[-1].value
    assert list(table.index) == ["baseline", "per layer", "uniform (global)"]
    assert table["pruned"].iloc[1].startswith(layer_keys[0].removeprefix(W("tradeoffs.layer.")) + " 90 %")
    assert "smallest first" in table["pruned"].iloc[2]
    assert any(re.match(r"At the same sparsity the per-layer point is [\d.]+ points (more|less) accurate", m.value)
               for m in at.markdown)
    nonzeros = [int(v.replace(",", "")) for v in table["non-zeros"]][1:]
    assert abs(nonzeros[0] - nonzeros[1]) <= 0.01 * nonzeros[1]  # the same share of all weights pruned
    assert any("of all weights pruned" in c.value for c in at.caption)
    at.select_slider(key=W("tradeoffs.tolerance")).set_value(0.2).run()  # re-seeding after a measurement
    assert_clean(at, "re-seeded after measuring")


def test_explore_prunes_by_taylor_importance(ui_env):
    at = page("explore_page")
    at.slider(key=W("explore.sparsity")).set_value(50).run()
    at.radio(key=W("explore.importance")).set_value("taylor").run()
    assert_clean(at, "taylor")
    assert any("Taylor" in m.value for m in at.markdown)
    assert "hessian" not in at.radio(key=W("explore.importance")).options  # structured only
    at.radio(key=W("explore.prune_kind")).set_value("structured").run()
    assert "hessian" in at.radio(key=W("explore.importance")).options


def test_a_point_the_person_chose_stays_selected_while_the_budget_passes_through_an_unreachable_value(ui_env):
    from dashboard import cache

    # a click on the chart, as Streamlit delivers it: the chart's selection, then its on_select callback
    at = AppTest.from_string(
        "import streamlit as st\nfrom types import SimpleNamespace as N\nfrom dashboard.pages import tradeoffs_page\n"
        "if st.session_state.get('click'):\n"
        "    st.session_state['tradeoff_chart'] = N(selection=N(points=[{'customdata': [st.session_state.click]}]))\n"
        "    tradeoffs_page._chart_selected()\n"
        "    del st.session_state['tradeoff_chart'], st.session_state['click']\n"
        "tradeoffs_page.main()\n", default_timeout=TIMEOUT)
    at.session_state["tradeoffs.runs"] = ["ui"]
    at.run()
    assert_clean(at, "Trade-offs")
    recommended = at.session_state["recommended_key"]
    ok = cache.run_table("ui").query("status == 'ok'")
    mine = next(k for k in ok.sort_values("ort_b1_ms", ascending=False)["key"] if k != recommended)  # a slow one
    at.session_state["click"] = mine
    at.run()
    assert_clean(at, "a click")
    assert at.session_state["chosen_point"] == mine and at.session_state["tradeoffs.person_chose"] == mine
    budget = at.select_slider(key=W("tradeoffs.budget"))
    budget.set_value(float(budget.options[0].split()[0])).run()  # below the fastest point: nothing meets it
    assert_clean(at, "an unreachable budget")
    assert "over the budget" in at.warning[0].value
    closest = ok.set_index("key").loc[at.session_state["recommended_key"]]  # the recommendation: the closest point
    assert closest["label"] in at.warning[0].value
    assert closest["ort_b1_ms"] <= ok.set_index("key").loc[recommended, "ort_b1_ms"]  # (it may be the same point)
    assert at.session_state["chosen_point"] == mine and at.selectbox(key=W("chosen_point")).value == mine
    at.select_slider(key=W("tradeoffs.budget")).set_value("no budget").run()  # and back
    assert at.session_state["recommended_key"] == recommended
    assert at.session_state["chosen_point"] == mine and at.selectbox(key=W("chosen_point")).value == mine
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any(t.get("name") == "selected" for t in spec["data"])
    at.button(key="tradeoffs.select_recommended").click().run()  # the recommendation again, and it follows
    assert at.session_state["chosen_point"] == recommended
    floor = at.slider(key=W("tradeoffs.floor"))
    floor.set_value(floor.max).run()
    assert at.session_state["chosen_point"] == at.session_state["recommended_key"] != recommended


def test_tradeoffs_judges_on_validation_and_reports_the_test_split(ui_env):
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui"]})
    assert_clean(at, "Trade-offs on validation")
    judge = at.selectbox(key=W("tradeoffs.judge"))
    assert judge.value == "val" and judge.help
    message = at.success[0].value
    assert re.search(r"\d % on validation \(floor [\d.]+ %, baseline [\d.]+ % *\), [\d.]+ % on the test split",
                     message), message
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"].startswith("validation accuracy")
    at.selectbox(key=W("tradeoffs.judge")).select("test").run()
    assert_clean(at, "Trade-offs on the test split")
    message = at.success[0].value
    assert "% on the test split (floor" in message and "validation" not in message, message
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"].startswith("test accuracy")


def test_busy_latencies_are_timed_again_from_a_button_on_trade_offs(ui_env, monkeypatch):
    """A point timed on a crowded machine is left out of latency fronts; the button times it again from its kept
    files and the mark goes (here the machine counts as quiet)."""
    import dataclasses

    from core.results.store import Store
    from core.runtimes import measure as ME

    monkeypatch.setattr(ME, "oversubscribed", lambda threads: False)
    monkeypatch.setattr(ME, "looks_busy", lambda latency: False)
    store = Store()
    point = next(p for p in store.points("ui") if p.spec.family != "baseline" and p.status == "ok")
    marked = tuple(dataclasses.replace(l, busy=True) for l in point.metrics.latency)
    store.put(dataclasses.replace(point, metrics=dataclasses.replace(point.metrics, latency=marked)))
    at = page("tradeoffs_page", **{"tradeoffs.runs": ["ui"]})
    assert_clean(at, "busy point")
    at.button(key="tradeoffs.retime").click().run()
    assert_clean(at, "re-timed")
    assert any("Timed 1 point(s) again; none is marked busy now" in m.value for m in at.success)
    assert not any(l.busy for l in store.get(point.key).metrics.latency)
    assert not any(b.key == "tradeoffs.retime" for b in at.button)
    store.close()
