"""Every page through Streamlit's AppTest: renders, reacts to its widgets, never shows a traceback."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 180


def page(name: str, **state) -> AppTest:
    at = AppTest.from_string(f"from dashboard.pages import {name}\n{name}.main()\n", default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_app_starts_on_the_model_page_and_switches_samples(ui_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert metric(at, "Test accuracy").endswith("%")
    at.selectbox(key="model_name").select("mlp").run()
    assert not at.exception and metric(at, "Parameters") == "266,610"


def test_explore_sparsity_slider_changes_the_nonzero_count(ui_env):
    at = page("explore_page")
    assert not at.exception and not at.error
    before = metric(at, "Non-zeros")
    at.slider(key="sparsity").set_value(50).run()
    assert not at.exception
    after = metric(at, "Non-zeros")
    assert after != before and int(after.replace(",", "")) < int(before.replace(",", ""))
    at.select_slider(key="bits").set_value("4").run()
    assert not at.exception and "WeightQuant(bits=4)" in at.markdown[-1].value or any(
        "WeightQuant(bits=4)" in m.value for m in at.markdown)
    assert any("dense CPU kernels" in i.value for i in at.info)


def test_sweep_page_estimates_points_and_refuses_an_empty_axis(ui_env):
    at = page("sweep_page")
    assert not at.exception
    assert any("points" in m.value for m in at.markdown)
    at.multiselect(key="sweep_quant").set_value([]).run()
    assert not at.exception and "is empty" in at.error[0].value


def test_tradeoffs_floor_changes_the_recommended_point(ui_env):
    at = page("tradeoffs_page", tradeoff_runs=["ui"])
    assert not at.exception
    assert at.get("plotly_chart")
    first = at.session_state["recommended_key"]
    at.slider(key="floor").set_value(5.0).run()
    assert not at.exception
    assert at.session_state["recommended_key"] != first
    assert at.session_state["selected_key"] == at.session_state["recommended_key"]


def test_export_page_builds_a_downloadable_verified_file(ui_env):
    at = page("tradeoffs_page", tradeoff_runs=["ui"])
    key = at.session_state["selected_key"]
    at = page("export_page", selected_key=key)
    assert not at.exception
    at.button(key="build_export").click().run()
    assert not at.exception and not at.error
    assert "reloaded from disk it scores" in at.success[0].value
    assert len(at.get("download_button")) == 2


def test_export_page_without_a_selection_says_what_to_do(ui_env):
    at = page("export_page")
    assert not at.exception and "Select a point" in at.info[0].value


def test_sweep_page_runs_a_sweep_in_the_background_into_the_store(ui_env):
    import time

    from core.store import Store
    from dashboard import jobs

    at = page("sweep_page")
    at.text_input(key="sweep_run").set_value("ui-background")
    at.multiselect(key="sweep_ratios").set_value([0.0, 0.5])
    at.multiselect(key="sweep_quant").set_value(["fp32", "w4"])
    at.checkbox(key="sweep_latency").uncheck().run()
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
