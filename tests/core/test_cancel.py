"""Cooperative cancellation: training stops at its next batch once its job is cancelled, and nothing is stored."""
import threading
import time

from core.engine import runner
from core.inputs import cancel
from core.methods import spec as S
from core.methods.distill import Distill
from core.results.store import Store


def test_checkpoint_is_a_no_op_outside_a_job():
    cancel.checkpoint()


def test_a_cancelled_training_stops_within_two_seconds_and_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    store = Store(tmp_path / "s.sqlite")
    spec = S.Spec(distill=Distill(width=0.5, epochs=200))     # minutes of training if nothing stopped it
    event, outcome = threading.Event(), {}

    def work():
        with cancel.scope(event):
            try:
                runner.run_group(store, "c", "lenet5", "digits", [spec], [0], {"latency": False})
            except cancel.Cancelled:
                outcome["cancelled"] = time.monotonic()
    store.add_run("c", {"model": "lenet5", "data": "digits"}, "lenet5", "digits")
    t = threading.Thread(target=work)
    t.start()
    time.sleep(2.0)                                           # well into the first epochs
    asked = time.monotonic()
    event.set()
    t.join(timeout=10)
    assert "cancelled" in outcome and outcome["cancelled"] - asked <= 2.0
    assert store.points("c") == []                            # a cancelled point is not a failed point
