"""The dashboard's job queue: one worker, the same work is one job, latest-wins per session slot, Cancel frees
the worker at the next checkpoint and the next job starts."""
import threading
import time

import pytest

from core.inputs import cancel
from dashboard.work import Queue, wait


def _until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)
    return pred()


def _looping(job):
    """Work that runs until cancelled, reporting progress like a training loop."""
    i = 0
    while True:
        i += 1
        job.report(i, 10_000, f"step {i}")
        time.sleep(0.01)


def test_the_same_work_asked_twice_is_one_job_and_a_result_comes_back():
    q = Queue()
    a = q.submit("k", "t", lambda job: 42, owner="s1", slot="x")
    b = q.submit("k", "t", lambda job: 43, owner="s2", slot="x")
    assert a is b and wait(a, lambda j: None) == 42


def test_cancel_frees_the_worker_within_two_seconds_and_the_next_job_starts():
    q = Queue()
    long = q.submit("long", "training", _looping)
    nxt = q.submit("next", "the next point", lambda job: "done")
    assert _until(lambda: long.state == "running") and nxt.state == "queued" and q.ahead(nxt) == 1
    asked = time.monotonic()
    q.cancel(long)
    assert _until(lambda: long.finished, 2.0) and long.state == "cancelled"
    assert wait(nxt, lambda j: None) == "done" and time.monotonic() - asked <= 2.0
    with pytest.raises(cancel.Cancelled):
        wait(long, lambda j: None)


def test_a_newer_request_in_a_slot_drops_the_older_one_unless_another_session_waits_on_it():
    q = Queue()
    blocker = q.submit("blocker", "b", _looping)
    old = q.submit("p=0.75", "student 0.75", lambda job: 1, owner="s1", slot="explore")
    shared = q.submit("p=0.25", "student 0.25", lambda job: 2, owner="s1", slot="other")
    q.submit("p=0.25", "student 0.25", lambda job: 2, owner="s2", slot="explore")
    new = q.submit("p=0.5", "student 0.5", lambda job: 3, owner="s1", slot="explore")
    assert old.state == "cancelled"                  # superseded before it started: dropped
    q.release("s1", "other", keep="nothing")         # s1 moves on, but s2 still waits on it
    assert shared.state == "queued"
    running = q.submit("r", "training", _looping, owner="s3", slot="explore", trains=True)
    q.cancel(blocker)
    assert _until(lambda: shared.finished) and wait(new, lambda j: None) == 3
    assert _until(lambda: running.state == "running")
    q.release("s3", "explore", keep="another")       # a running training superseded: cancelled at its next step
    assert _until(lambda: running.finished, 2.0) and running.state == "cancelled"


def test_a_running_measurement_superseded_finishes_and_its_result_is_kept():
    """Seconds from done, its point stored: moving back to it is then instant (only training is cancelled)."""
    q = Queue()
    release = threading.Event()
    measuring = q.submit("m", "measuring", lambda job: release.wait(5) and "measured", owner="s1", slot="explore")
    assert _until(lambda: measuring.state == "running")
    queued = q.submit("q", "queued", lambda job: "q", owner="s2", slot="explore")
    q.release("s1", "explore", keep="elsewhere")     # s1 moved on while it measures
    q.release("s2", "explore", keep="elsewhere")     # s2 moved on before its job started
    assert queued.state == "cancelled"
    release.set()
    assert wait(measuring, lambda j: None) == "measured" and measuring.state == "done"


def test_work_asked_for_again_while_its_job_is_being_cancelled_gets_a_fresh_job():
    """The page that asks must never wait on a job that will end 'cancelled' (it would show 'Cancelled' to a
    person who cancelled nothing, and no number ever): the cancel can land after the worker picked the job up,
    or a training run stops only at its next batch."""
    q = Queue()
    blocker = q.submit("blocker", "b", _looping)
    doomed = q.submit("p", "point", lambda job: "first", owner="s1", slot="explore")
    doomed.cancel.set()                              # cancelled as the worker took it: still 'queued' for now
    try:
        again = q.submit("p", "point", lambda job: "again", owner="s2", slot="explore")
        assert again is not doomed and q.find("p") is again
    finally:
        q.cancel(blocker)                            # a failing assert must not leave the worker looping
    assert wait(again, lambda j: None) == "again"
    assert _until(lambda: doomed.finished) and doomed.state == "cancelled"


def test_a_failed_job_says_its_error_and_can_be_asked_for_again():
    q = Queue()

    def fails(job):
        raise ValueError("no such layer")
    job = q.submit("f", "t", fails)
    with pytest.raises(ValueError, match="no such layer"):
        wait(job, lambda j: None)
    again = q.submit("f", "t", lambda job: "ok")
    assert again is not job and wait(again, lambda j: None) == "ok"


def test_time_left_is_written_for_people():
    from core.results.describe import duration

    assert duration(3968) == "about 1 h 6 min" and duration(40) == "about 40 s" and duration(600) == "about 10 min"
