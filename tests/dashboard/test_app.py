from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def test_model_page_shows_the_measured_baseline_and_switches_samples():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    first = [m.value for m in at.metric]
    assert first[0].endswith("%") and len(first) == 8
    at.selectbox(key="model_name").select("mlp").run()
    assert not at.exception
    assert at.metric[4].value == "266,610"
