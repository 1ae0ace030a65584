"""The only place Streamlit caches wrap core: models as resources, tables as data.

A model source is what a sweep file takes: a sample name, or {path, arch, input_shape}
for an uploaded file. It travels through st.session_state as JSON so every page and
every cached call agrees on it.

Work that builds, measures or exports a model (a baseline, an Explore point, a
sensitivity table, an export) runs as a job of the app's queue (dashboard/work.py),
and under one process-wide lock besides: torch.export must not run twice at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
import threading
from pathlib import Path

import streamlit as st

from core import cache_dir
from core.engine import estimate, runner
from core.inputs import data as D
from core.inputs import device
from core.inputs import models as M
from core.methods import prune
from core.methods import spec as S
from core.results import export
from core.results.store import Store, point_key
from core.runtimes import measure as ME
from dashboard import state, work

EXPLORE_RUN = "explore"
WORK_LOCK = threading.Lock()  # one model build / measurement / export at a time in this process


@contextlib.contextmanager
def exclusive(progress=None):
    """Hold WORK_LOCK; if earlier work (a choice since changed) still holds it, the bar says so while waiting."""
    if not WORK_LOCK.acquire(blocking=False):
        if progress:
            progress(0, 1, "waiting for the computation started before this one to finish")
        WORK_LOCK.acquire()
    try:
        yield
    finally:
        WORK_LOCK.release()


def default_sample() -> str:
    """The first sample trained on the bundled digits (no download needed), else the first sample."""
    names = M.sample_names()
    return next((n for n in names if M.sample_card(n).get("data") == "digits"), names[0])


def current_sources() -> tuple[str, str]:
    """(model source as JSON, data source) chosen on the Model page; a digits sample and digits by default."""
    model = st.session_state.get("model_source") or json.dumps(default_sample())
    return model, st.session_state.get("data_source", "digits")


def model_label(model_json: str) -> str:
    return runner.model_name(json.loads(model_json))


@st.cache_resource(show_spinner=False, max_entries=8)
def model(model_json: str) -> M.LoadedModel:
    return runner.open_model(json.loads(model_json))


@st.cache_resource(show_spinner=False, max_entries=4)
def dataset(source: str = "digits") -> D.DataSet:
    return D.load_data(source)


def baseline(model_json: str, data_source: str = "digits", progress=None) -> dict:
    """The model as it is: the empty Spec, measured and stored like any Explore point (a job of the app's queue,
    `progress` hearing its stage while this session waits on it)."""
    spec_json = S.Spec().to_json()
    found = stored(model_json, data_source, spec_json)
    if found is not None:
        return found
    job = point_job(model_json, data_source, spec_json, "Measuring the baseline", slot="baseline")
    return work.wait(job, lambda j: progress(j.done, j.total, j.stage or "waiting in the queue") if progress else None)


@st.cache_data(show_spinner=False, max_entries=16)
def layers(model_json: str) -> list[dict]:
    return ME.layer_table(M.unwrap(model(model_json).module))  # a .pt2's layers named as its TorchScript's


def stored(model_json: str, data_source: str, spec_json: str) -> dict | None:
    """A point's metrics if the store has it (at once, no job), else None."""
    try:
        return _stored_metrics(point_key(_fingerprint(model_json), dataset(data_source).fingerprint,
                                         S.Spec.from_json(spec_json)))
    except LookupError:
        return None


@st.cache_data(show_spinner=False, max_entries=256)
def training_seconds(model_json: str, data_source: str, spec_json: str) -> float:
    """About how long the point trains before it is measured (0: it only measures): pages start training from
    a button, never from a slider move."""
    lm, data = model(model_json), dataset(data_source)
    spec = S.Spec.from_json(spec_json)
    return estimate.seconds(lm, data, spec) if estimate.trains(lm, data, spec) else 0.0


@st.cache_data(show_spinner=False, ttl=30, max_entries=64)
def sweep_plan(config_json: str) -> tuple[int, int, float]:
    """(points to compute, points stored already, about how many seconds here) of a sweep file
    (core.engine.sweep.plan: a training step of each model that trains, timed once)."""
    from core.engine import grid, sweep

    cfg = grid.load_config(json.loads(config_json))
    store = Store()
    try:
        planned, stored = sweep.plan(cfg, store)
    finally:
        store.close()
    return len(planned), stored, sum(p.seconds for p in planned)


def point_job_key(model_json: str, data_source: str, spec_json: str) -> str:
    return f"point|{model_json}|{data_source}|{spec_json}"


def point_job(model_json: str, data_source: str, spec_json: str, title: str, slot: str = "explore",
              estimate_s: float | None = None) -> work.Job:
    """The queue's job computing this point (the one already there, or a new one), owned by this session; its
    numbers arrive in `job.partial` as they are measured."""
    on = state.device()  # the session's choice, read now: the job runs in the queue's thread

    def compute(job: work.Job) -> dict:
        with device.using(on):
            return explore_point(model_json, data_source, spec_json, job.report,
                                 partial=lambda fields: setattr(job, "partial", fields))
    return work.queue().submit(point_job_key(model_json, data_source, spec_json), title, compute,
                               owner=work.session_id(), slot=slot, estimate_s=estimate_s, trains=bool(estimate_s))


def find_point_job(model_json: str, data_source: str, spec_json: str) -> work.Job | None:
    return work.queue().find(point_job_key(model_json, data_source, spec_json))


def explore_point(model_json: str, data_source: str, spec_json: str, progress=None, partial=None) -> dict:
    """Metrics of one Spec: from the store when seen before (at once, no lock), else computed now, under the
    lock, with `progress` hearing each step and `partial` the numbers as they come, and stored in the model's
    Explore run with its kept files. The queue's jobs call this; it blocks."""
    lm, data = model(model_json), dataset(data_source)
    spec = S.Spec.from_json(spec_json)
    try:
        return _stored_metrics(point_key(_fingerprint(model_json), data.fingerprint, spec))
    except LookupError:
        pass
    reason = S.why_not_spec(lm, data, spec)  # what cannot run is said before any work, in the model's own words
    if reason:
        raise S.SpecError(reason)
    run = explore_run(model_json, data_source)
    with exclusive(progress):
        store = Store()
        try:
            store.add_run(run, {"model": json.loads(model_json), "data": data_source}, lm.name, data.name)
            # a failure here is the app's or the machine's, not the point's: raised, never stored as its result
            point = runner.run_group(store, run, json.loads(model_json), data_source, [spec], [0],
                                     {"budget_s": 0.05}, progress=progress, store_failures=False,
                                     partial=partial)[0]
        finally:
            store.close()
    return point.metrics.to_dict()


@st.cache_data(show_spinner=False, max_entries=2048)
def _stored_metrics(key: str) -> dict:
    """A stored point's metrics, kept in memory once found; LookupError (never cached) when not stored yet."""
    store = Store()
    try:
        point = store.get(key)
    finally:
        store.close()
    if point is None or point.status != "ok":
        raise LookupError(key)
    return point.metrics.to_dict()


@st.cache_data(show_spinner=False, max_entries=8)
def _fingerprint(model_json: str) -> str:
    return model(model_json).fingerprint


def kept_model(model_json: str, data_source: str, spec: S.Spec, progress=None) -> M.LoadedModel:
    """The point's compressed model from its kept archive; rebuilt from its Spec (said) only when that is gone."""
    lm, data = model(model_json), dataset(data_source)
    key = point_key(lm.fingerprint, data.fingerprint, spec)
    store = Store()
    try:
        point, kept = store.get(key), store.artefacts(key)
    finally:
        store.close()
    if point is None:
        raise ValueError("That point is no longer in the results store; move a slider to measure it again.")
    return export.compressed_model(point, lm, data, kept, progress)[0]


def compare_latency(model_json: str, data_source: str, spec_json: str, progress=None) -> list[dict]:
    """The point and the baseline timed in alternating rounds (the only latency deltas worth showing); the
    point's model comes from its kept files, so nothing trains again."""
    lm, data = model(model_json), dataset(data_source)
    spec = S.Spec.from_json(spec_json)
    with exclusive(progress):
        point = kept_model(model_json, data_source, spec, progress)
        rows = ME.compare_latency(lm, point, data, None, spec.deploy, progress=progress)
    return [{"runtime": c.runtime, "batch": c.batch, "threads": c.threads, "baseline_ms": c.a_ms, "point_ms": c.b_ms}
            for c in rows]


def explore_run(model_json: str, data_source: str) -> str:
    """The run that keeps one model's Explore points: one per model and data, so Export rebuilds each point
    on the model it was measured on."""
    digest = hashlib.sha256(f"{model_json}|{data_source}".encode()).hexdigest()[:6]
    return f"{EXPLORE_RUN} · {model_label(model_json)} · {data_source if data_source == 'digits' else Path(data_source).stem} · {digest}"


def is_explore_run(name: str) -> bool:
    return name == EXPLORE_RUN or name.startswith(f"{EXPLORE_RUN} · ")


def sensitivity(model_json: str, data_source: str, ratios: tuple[float, ...], progress=None,
                on: str = "auto") -> list[dict]:
    """Accuracy with each layer pruned alone at each ratio (scored on the device `on`); computed once per model,
    data and ratios."""
    tables, key = _sensitivity_tables(), (model_json, data_source, ratios)
    if key not in tables:
        lm, data = model(model_json), dataset(data_source)
        with exclusive(progress), device.using(on):
            tables[key] = prune.sensitivity(lm, data, ratios, progress=progress)
    return tables[key]


@st.cache_resource(show_spinner=False)
def _sensitivity_tables() -> dict:
    return {}


def export_point(key: str, fmt: str, progress=None, on: str = "auto") -> dict:
    """Rebuild the stored point `key` (training on the device `on` if its kept model is gone), write it as `fmt`,
    reload and re-score it (under the lock).
    Returns the file, its model card and the reloaded accuracy; never cached (it writes files)."""
    store = Store()
    try:
        point = store.get(key)
        kept = store.artefacts(key)
        runs = store.runs_of(key)
        cfg = store.run_config(runs[0]) if runs else None
        base = next((p.metrics for p in store.points(runs[0]) if p.spec.family == "baseline" and p.metrics),
                    None) if runs else None  # the model card records the baseline beside the point
    finally:
        store.close()
    if point is None or cfg is None:
        raise ValueError("That point is no longer in the results store; choose another on the Trade-offs page.")
    lm = model(json.dumps(cfg["model"], sort_keys=True) if isinstance(cfg["model"], dict) else json.dumps(cfg["model"]))
    data = dataset(cfg["data"])
    out = Path(tempfile.mkdtemp(prefix="edgetrim-export-"))
    with exclusive(progress), device.using(on):
        result = export.export_point(point, lm, data, fmt, out, baseline=base, progress=progress, kept=kept)
    return {"key": key, "format": fmt, "path": str(result.path), "card": str(result.card_path),
            "accuracy": result.reloaded_accuracy, "stored": result.stored_accuracy, "source": result.source}


def run_table(run: str):
    """Points of one run, always fresh from the store (sweeps write to it in the background)."""
    store = Store()
    try:
        return store.table(run)
    finally:
        store.close()


def retime_run(run: str, progress=None):
    """A run's points whose latency was timed on a busy machine, timed again from their kept files (a job of the
    app's queue: nothing else times while it does)."""
    store = Store()
    try:
        return runner.retime_run(store, run, progress=progress)
    finally:
        store.close()


def run_board(run: str) -> str | None:
    """The microcontroller board a run was swept for (`measure: {board: ...}`), or None."""
    store = Store()
    try:
        cfg = store.run_config(run)
    finally:
        store.close()
    return ((cfg or {}).get("measure") or {}).get("board")


def run_sources(run: str) -> tuple[str, str]:
    """(model source as JSON, data source) a run was measured on, spelled as current_sources() spells them."""
    store = Store()
    try:
        cfg = store.run_config(run)
    finally:
        store.close()
    return json.dumps(cfg["model"], sort_keys=True), str(cfg.get("data", "digits"))


def runs():
    store = Store()
    try:
        return store.runs()
    finally:
        store.close()


def save_upload(upload, max_bytes: int) -> Path:
    """An uploaded file saved under the cache in a folder named by its content hash, as
    uploads/<hash>/<the person's file name, reduced to letters, digits, '-', '_' and '.'>, so the
    model and data keep the names the person gave them while no typed path is ever opened."""
    blob = upload.getvalue()
    if len(blob) > max_bytes:
        raise ValueError(f"{upload.name} is larger than the {max_bytes >> 20} MB allowed.")
    suffix = "".join(Path(upload.name).suffixes[-1:]).lower()
    if suffix not in {".pt", ".pth", ".pt2", ".ts", ".npz", ".zip"}:
        raise ValueError(f"{upload.name}: edgetrim takes .pt/.pth/.ts/.pt2 models and .npz/.zip data.")
    folder = cache_dir() / "uploads" / hashlib.sha256(blob).hexdigest()[:20]
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(upload.name).stem).strip("._")[:80] or "upload"
    path = folder / f"{stem}{suffix}"
    path.write_bytes(blob)
    return path


def drop_upload(path: Path) -> None:
    """Remove a refused upload saved by `save_upload`: the file, what a zip of it was extracted into (beside it,
    named as it without the suffix) and its folder when nothing else is left in it."""
    import shutil

    if path.suffix == ".zip":
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when empty: the same bytes under another name may still be in use
