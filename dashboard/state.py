"""Choices that outlive a page: each lives in st.session_state under a key the app owns.

Streamlit deletes a widget's state when the widget is not drawn in a run (another page
is open), so a widget never holds a choice alone. `widget` draws any Streamlit input
bound to an app-owned key: the widget starts from the key's value, and every change is
written back to it.

    sparsity = state.widget(st.slider, "Sparsity (%)", 0, 95, step=5, key="explore.sparsity", default=0)
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

_MULTI = {"multiselect"}


def widget_key(key: str) -> str:
    """The Streamlit widget key drawn for app-owned `key` (tests find widgets by it)."""
    return f"w.{key}"


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def put(key: str, value: Any) -> None:
    """Set an app-owned choice and the widget drawn for it. Call it in a callback, or before the
    widget is drawn in this run (Streamlit refuses to change a widget already on the page)."""
    st.session_state[key] = value
    st.session_state[widget_key(key)] = value


def _repair(draw: Callable, kwargs: dict, valid: Callable[[Any], bool] | None, default: Any) -> Callable[[Any], Any]:
    """A function that returns a stored value if it is still valid, else the closest valid one."""
    if valid is not None:
        return lambda v: v if valid(v) else default
    if "options" not in kwargs:
        return lambda v: v
    options = list(kwargs["options"])
    if getattr(draw, "__name__", "") in _MULTI:  # keep the choices that still exist
        return lambda v: [x for x in v if x in options] if isinstance(v, (list, tuple)) else default
    return lambda v: v if v in options else default


def widget(draw: Callable, label: str, *args, key: str, default: Any, valid: Callable[[Any], bool] | None = None,
           on_change: Callable[[], None] | None = None, in_form: bool = False, **kwargs) -> Any:
    """Draw `draw(label, *args, **kwargs)` (st.slider, c1.radio, ...) bound to the app-owned `key`.

    The first time, the choice is `default`; afterwards it is whatever the person chose last,
    on whichever page. A stored value that is no longer valid (not among `options=`, or failing
    `valid`) falls back to `default`. Pass no value/index/default of the widget's own: the
    value comes from the app-owned key. Inside an st.form pass in_form=True (forms allow no
    callbacks on their widgets; the submitted value is kept)."""
    ss = st.session_state
    wkey = widget_key(key)
    repair = _repair(draw, kwargs, valid, default)
    ss[key] = repair(ss[key]) if key in ss else default
    # Streamlit gives a widget a new identity (and its default value) when some of its parameters change,
    # e.g. a slider's range: then, as when the widget was not drawn, it starts again from the app's key.
    signature = repr((label, args, sorted((k, v) for k, v in kwargs.items() if not callable(v))))
    if wkey not in ss or (not in_form and ss.get(f"{wkey}.signature") != signature):
        ss[wkey] = ss[key]
    elif (fixed := repair(ss[wkey])) != ss[wkey]:
        ss[wkey] = fixed
    ss[f"{wkey}.signature"] = signature

    def changed() -> None:
        ss[key] = ss[wkey]
        if on_change is not None:
            on_change()

    if in_form:
        value = draw(label, *args, key=wkey, **kwargs)
    else:
        value = draw(label, *args, key=wkey, on_change=changed, **kwargs)
    ss[key] = value
    return value


def data_label(source: str) -> str:
    """The data in use as a person knows it, for any page: 'digits', 'MNIST', or the name of the file they
    uploaded (kept under 'data.names' by the Model page), never the cache folder it was saved in."""
    if source in ("digits", "mnist"):
        return "MNIST" if source == "mnist" else source
    from core.results import describe

    return st.session_state.get("data.names", {}).get(source) or describe.source_name(source)


def device() -> str:
    """Where this session's training and PyTorch evaluation run (the Model page's choice): 'auto' by default."""
    return st.session_state.get("device", "auto")
