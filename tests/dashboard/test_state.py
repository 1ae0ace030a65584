"""dashboard/state.py: a choice bound to an app-owned key outlives its widget."""
from streamlit.testing.v1 import AppTest

from dashboard.state import widget_key as W

SCRIPT = """
import streamlit as st
from dashboard import state

lo = st.session_state.get("lo", 0.0)
if st.session_state.get("show", True):
    state.widget(st.slider, "floor", lo, 100.0, step=0.1, key="t.floor", default=max(lo, 50.0),
                 valid=lambda v: lo <= v <= 100.0)
    state.widget(st.selectbox, "pick", key="t.pick", default="a", options=st.session_state.get("options", ["a", "b"]))
"""


def test_a_choice_survives_its_widget_not_being_drawn():
    at = AppTest.from_string(SCRIPT).run()
    at.slider(key=W("t.floor")).set_value(70.0)
    at.selectbox(key=W("t.pick")).select("b").run()
    at.session_state["show"] = False  # another page: Streamlit drops the widgets' state
    at.run()
    assert W("t.floor") not in at.session_state and at.session_state["t.floor"] == 70.0
    at.session_state["show"] = True
    at.run()
    assert at.slider(key=W("t.floor")).value == 70.0 and at.selectbox(key=W("t.pick")).value == "b"


def test_a_choice_survives_a_new_slider_range_and_falls_back_when_no_longer_valid():
    at = AppTest.from_string(SCRIPT).run()
    at.slider(key=W("t.floor")).set_value(70.0).run()
    at.session_state["lo"] = 10.0  # more data: the floor's range grows, Streamlit makes a new widget
    at.run()
    assert at.slider(key=W("t.floor")).value == 70.0
    at.selectbox(key=W("t.pick")).select("b").run()
    at.session_state["lo"] = 80.0  # 70 is out of range now, and "b" is gone: back to the defaults
    at.session_state["options"] = ["a", "c"]
    at.run()
    assert not at.exception
    assert at.slider(key=W("t.floor")).value == 80.0 and at.selectbox(key=W("t.pick")).value == "a"


def test_an_upload_keeps_the_name_the_person_gave_it(tmp_path, monkeypatch):
    from dashboard import cache

    class Upload:
        name = "my model (v2).pt"

        def getvalue(self):
            return b"weights"
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path))
    path = cache.save_upload(Upload(), 1000)
    assert path.name == "my_model_v2.pt" and path.parent.parent == tmp_path / "uploads"
    assert path.read_bytes() == b"weights"
