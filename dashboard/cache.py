"""The only place Streamlit caches wrap core: models as resources, tables as data."""
from __future__ import annotations

import streamlit as st

from core import data as D
from core import measure as ME
from core import models as M


@st.cache_resource(show_spinner=False)
def sample(name: str) -> M.LoadedModel:
    return M.load_sample(name)


@st.cache_resource(show_spinner=False)
def dataset(source: str = "digits") -> D.DataSet:
    return D.load_data(source)


@st.cache_data(show_spinner=False)
def baseline(name: str, source: str = "digits") -> dict:
    """The sample's metrics on `source`, measured once per session of the server."""
    return ME.measure(sample(name), dataset(source)).to_dict()


@st.cache_data(show_spinner=False)
def layers(name: str) -> list[dict]:
    return ME.layer_table(sample(name).module)
