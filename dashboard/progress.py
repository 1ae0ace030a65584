"""A progress bar for work that takes more than a moment: what is being done, and about how long is left.

Core reports progress as `progress(done, total, message)` per step of the work (each training
run, then each stage of measuring); the bar shows the step's message and, from the pace so
far, the time left in that step.

    with progress.bar("Training the student") as report:
        cache.explore_point(model_json, data_source, spec_json, report)

Work of the app's queue (dashboard/work.py) draws its bar with `job_bar`, or runs through `run`.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import streamlit as st


@contextlib.contextmanager
def bar(what: str) -> Iterator[Callable[[int, int, str], None]]:
    """A st.progress bar fed by core's callbacks; removed when the work is done."""
    widget = st.progress(0.0, text=f"{what}…")
    step = {"total": None, "first": 0, "last": 0, "t": time.monotonic()}

    def report(done: int, total: int, message: str) -> None:
        if total != step["total"] or done < step["last"]:  # a new step of the work: time it from here
            step.update(total=total, first=done, t=time.monotonic())
        step["last"] = done
        elapsed, moved = time.monotonic() - step["t"], done - step["first"]
        left = f" · about {elapsed / moved * (total - done):.0f} s left in this step" if moved and done < total else ""
        widget.progress(min(1.0, done / max(total, 1)), text=f"{what}: {message}{left}")

    try:
        yield report
    finally:
        widget.empty()


def job_bar(job, placeholder=None) -> None:
    """Draw a job's progress (dashboard/work.py): its stage, its place in the queue, the time left."""
    from dashboard import work

    share = 0.0 if job.state == "queued" or not job.total else min(1.0, job.done / job.total)
    (placeholder or st).progress(share, text=work.status(job))


def run(key: str, title: str, fn: Callable[..., object], slot: str = "") -> object:
    """`fn(report)` as a job of the app's queue, its bar drawn until it ends; returns its result (raises its error,
    or core.inputs.cancel.Cancelled). A page reload or another session asking for the same `key` waits on the same job."""
    from dashboard import work

    job = work.queue().submit(key, title, lambda j: fn(j.report), owner=work.session_id(), slot=slot)
    box = st.empty()
    try:
        return work.wait(job, lambda j: job_bar(j, box))
    finally:
        box.empty()
