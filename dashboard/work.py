"""Dashboard work is a job: one queue per app process, run by one worker thread, each job cancellable.

Every computation a page asks for (a baseline, an Explore point, a training run, side-by-side
timing, an export) is submitted here instead of running in the page's own script thread. The
engine is the standard library's ThreadPoolExecutor with one worker (torch already uses every
core for one job, and torch.export must not run twice at once); a job records its stage, its
progress and the numbers measured so far, so every page (and every browser session) waiting
on it can show them. The same work asked for twice (two sessions, or a page reload) is one
job. Cancel is cooperative (core.inputs.cancel): the job stops at its next batch, within a couple of
seconds. Slider moves are latest-wins: a session's newer request supersedes its older one in
the same slot, which is dropped if it has not started; one that has started is cancelled if it
trains (minutes of work nobody waits for) and left to finish if it only measures (seconds, and
its point is stored, so moving back to it is instant); unless another session still waits on it.

    job = work.submit(key, "Computing prune 50 %", fn, owner=session_id, slot="explore")
    result = work.wait(job, show)   # show(job) draws its progress; returns fn's result
"""
from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from core.inputs import cancel
from core.results import describe

FINISHED = ("done", "failed", "cancelled")
KEEP_FINISHED = 64      # finished jobs remembered (a page reload finds its result or error)


@dataclass
class Job:
    id: int
    key: str                        # what is computed (the same key is the same job)
    title: str                      # 'Computing prune 50 % of weights …'
    owners: set = field(default_factory=set)   # (session, slot) pairs still waiting on it
    state: str = "queued"           # queued | running | done | failed | cancelled
    stage: str = ""                 # the work's own words: 'epoch 3/30: val 0.981', 'timing onnxruntime at batch 1'
    done: int = 0
    total: int = 0
    step_started: float = 0.0       # when the current step (a training run, a measurement) began
    step_first: int = 0
    submitted: float = field(default_factory=time.monotonic)
    partial: dict | None = None     # the numbers measured so far (core.runtimes.measure's partial)
    result: Any = None
    error: BaseException | None = None
    estimate_s: float | None = None  # said before it started (training)
    trains: bool = False            # superseded while running: cancelled if it trains, else left to finish
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Any = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def report(self, done: int, total: int, message: str) -> None:
        """core's progress callback: a new step when the total changes or the count goes back."""
        if total != self.total or done < self.done:
            self.step_started, self.step_first = time.monotonic(), done
        self.done, self.total, self.stage = done, total, message
        cancel.checkpoint()

    def seconds_left(self) -> float | None:
        """From the pace of the current step; before any progress, the estimate said when it was started."""
        moved, elapsed = self.done - self.step_first, time.monotonic() - self.step_started
        if moved > 0 and self.done < self.total:
            return elapsed / moved * (self.total - self.done)
        return self.estimate_s if self.state == "queued" else None


class Queue:
    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgetrim-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, key: str, title: str, fn: Callable[[Job], Any], owner: str = "", slot: str = "",
               estimate_s: float | None = None, trains: bool = False) -> Job:
        """The job computing `key`: the one already queued, running or just done, else a new one. The owner's
        older job in the same slot is superseded (see the module's docstring)."""
        with self._lock:
            if owner and slot:
                self._supersede(owner, slot, key)
            job = self._jobs.get(key)
            # a job being cancelled (its worker picked it up a moment before the cancel, or a training run
            # that stops at its next batch) is not joined: whoever asks again gets a fresh job
            if job is None or job.state in ("failed", "cancelled") or job.cancel.is_set():
                job = Job(next(self._ids), key, title, estimate_s=estimate_s, trains=trains)
                self._jobs[key] = job
                job.future = self._pool.submit(self._run, job, fn)
                self._forget_old()
            if owner:
                job.owners.add((owner, slot))
            return job

    def release(self, owner: str, slot: str, keep: str) -> None:
        """The owner now wants `keep` in this slot: its other jobs there are superseded (latest-wins)."""
        with self._lock:
            self._supersede(owner, slot, keep)

    def _supersede(self, owner: str, slot: str, key: str) -> None:
        for job in self._jobs.values():
            if job.key != key and (owner, slot) in job.owners and not job.finished:
                job.owners.discard((owner, slot))
                if not job.owners and (job.state == "queued" or job.trains):
                    self._cancel(job)

    def cancel(self, job: Job) -> None:
        with self._lock:
            self._cancel(job)

    @staticmethod
    def _cancel(job: Job) -> None:
        job.cancel.set()
        if job.future is not None and job.future.cancel():  # not started: dropped at once
            job.state = "cancelled"

    def find(self, key: str) -> Job | None:
        return self._jobs.get(key)

    def ahead(self, job: Job) -> int:
        """How many jobs run or wait before this one."""
        return sum(1 for j in list(self._jobs.values()) if not j.finished and j.id < job.id)

    def active(self) -> list[Job]:
        return [j for j in list(self._jobs.values()) if not j.finished]

    def _forget_old(self) -> None:
        done = [k for k, j in self._jobs.items() if j.finished]
        for k in done[:max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[k]

    @staticmethod
    def _run(job: Job, fn: Callable[[Job], Any]) -> None:
        if job.cancel.is_set():
            job.state = "cancelled"
            return
        job.state, job.step_started = "running", time.monotonic()
        try:
            with cancel.scope(job.cancel):
                job.result = fn(job)
            job.state = "done"
        except cancel.Cancelled:
            job.state = "cancelled"
        except BaseException as e:  # said on the page that waits on it, in one sentence
            job.error, job.state = e, "failed"


@st.cache_resource(show_spinner=False)
def queue() -> Queue:
    """The app process's one queue, shared by every session."""
    return Queue()


def session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else "no-session"


def status(job: Job) -> str:
    """One line a person reads: what the job does now, where it is in the queue, and about how long is left."""
    if job.state == "queued":
        n = queue().ahead(job)
        where = f"waiting: {n} job{'s' if n != 1 else ''} ahead of it" if n else "starting"
        return f"{job.title}: {where}" + (f" · {describe.duration(job.estimate_s)} once started"
                                           if job.estimate_s else "")
    left = job.seconds_left()
    return f"{job.title}: {job.stage or 'working'}" + (f" · {describe.duration(left)} left" if left else "")


def wait(job: Job, show: Callable[[Job], None], every_s: float = 0.2) -> Any:
    """Draw `show(job)` until the job ends, then return its result (raise its error; Cancelled if cancelled).
    A widget change in the session stops this wait (Streamlit reruns the page) but never the job."""
    last, drawn = None, 0.0
    while not job.finished:
        seen = (job.state, job.stage, job.done, job.partial is None, len((job.partial or {}).get("latency", ())))
        if seen != last or time.monotonic() - drawn > 1.0:  # at least each second: the time left moves on
            show(job)
            last, drawn = seen, time.monotonic()
        time.sleep(every_s)
    if job.state == "cancelled":
        raise cancel.Cancelled("cancelled")
    if job.error is not None:
        raise job.error
    return job.result
