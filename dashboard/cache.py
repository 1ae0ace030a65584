"""The only place Streamlit caches wrap core: models as resources, tables as data.

A model source is what a sweep file takes: a sample name, or {path, arch, input_shape}
for an uploaded file. It travels through st.session_state as JSON so every page and
every cached call agrees on it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import streamlit as st

from core import data as D
from core import measure as ME
from core import models as M
from core import prune
from core import spec as S
from core import sweep
from core import cache_dir
from core.store import Store, default_path

EXPLORE_RUN = "explore"


def current_sources() -> tuple[str, str]:
    """(model source as JSON, data source) chosen on the Model page; the first sample and digits by default."""
    model = st.session_state.get("model_source") or json.dumps(M.sample_names()[0])
    return model, st.session_state.get("data_source", "digits")


def model_label(model_json: str) -> str:
    return sweep.model_name(json.loads(model_json))


@st.cache_resource(show_spinner=False, max_entries=8)
def model(model_json: str) -> M.LoadedModel:
    return sweep.open_model(json.loads(model_json))


@st.cache_resource(show_spinner=False, max_entries=4)
def dataset(source: str = "digits") -> D.DataSet:
    return D.load_data(source)


@st.cache_data(show_spinner=False, max_entries=16)
def baseline(model_json: str, data_source: str = "digits") -> dict:
    return ME.measure(model(model_json), dataset(data_source), budget_s=0.1).to_dict()


@st.cache_data(show_spinner=False, max_entries=16)
def layers(model_json: str) -> list[dict]:
    return ME.layer_table(model(model_json).module)


@st.cache_data(show_spinner=False, max_entries=512)
def explore_point(model_json: str, data_source: str, spec_json: str) -> dict:
    """Metrics of one Spec: from the store when seen before, else computed now and stored (run 'explore')."""
    lm, data = model(model_json), dataset(data_source)
    spec = S.Spec.from_json(spec_json)
    store = Store()
    try:
        store.add_run(EXPLORE_RUN, {"model": json.loads(model_json), "data": data_source}, lm.name, data.name)
        key = sweep.run_points(json.loads(model_json), data_source, [spec], [0], EXPLORE_RUN, str(default_path()),
                               {"budget_s": 0.05})[0]
        point = store.get(key)
    finally:
        store.close()
    if point.status != "ok":
        raise ValueError(f"{spec.label} could not be computed: {point.error}")
    return point.metrics.to_dict()


@st.cache_data(show_spinner=False, max_entries=8)
def sensitivity(model_json: str, data_source: str, ratios: tuple[float, ...]) -> list[dict]:
    return prune.sensitivity(model(model_json), dataset(data_source), ratios)


def run_table(run: str):
    """Points of one run, always fresh from the store (sweeps write to it in the background)."""
    store = Store()
    try:
        return store.table(run)
    finally:
        store.close()


def runs():
    store = Store()
    try:
        return store.runs()
    finally:
        store.close()


def save_upload(upload, max_bytes: int) -> Path:
    """An uploaded file saved under the cache by content hash (the name is never used as a path)."""
    blob = upload.getvalue()
    if len(blob) > max_bytes:
        raise ValueError(f"{upload.name} is larger than the {max_bytes >> 20} MB allowed.")
    suffix = "".join(Path(upload.name).suffixes[-1:]).lower()
    if suffix not in {".pt", ".pth", ".pt2", ".ts", ".npz", ".zip"}:
        raise ValueError(f"{upload.name}: edgetrim takes .pt/.pth/.ts/.pt2 models and .npz/.zip data.")
    folder = cache_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(blob).hexdigest()[:20]}{suffix}"
    path.write_bytes(blob)
    return path
