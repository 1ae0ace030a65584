"""Cooperative cancellation: long work stops at its next batch when the job it runs for is cancelled.

The dashboard's job queue runs each job inside `scope(event)`; the training loop, scoring and
measurement call `checkpoint()` at every batch or stage, which raises `Cancelled` once the
event is set. Outside a scope (the CLI, tests, worker processes) `checkpoint()` does nothing.
`Cancelled` is a BaseException, like KeyboardInterrupt, so no `except Exception` turns a
cancelled job into a failed point.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Iterator

_EVENT: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("edgetrim_cancel", default=None)


class Cancelled(BaseException):
    """The job this work ran for was cancelled; nothing of it is stored."""


@contextlib.contextmanager
def scope(event: threading.Event) -> Iterator[None]:
    token = _EVENT.set(event)
    try:
        yield
    finally:
        _EVENT.reset(token)


def checkpoint() -> None:
    """Raise Cancelled if the current job was cancelled; a no-op outside a job."""
    event = _EVENT.get()
    if event is not None and event.is_set():
        raise Cancelled("cancelled")
