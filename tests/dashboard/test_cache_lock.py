"""While earlier work holds the dashboard's one work lock, a new computation's bar says it is waiting."""
import threading
import time

from dashboard import cache


def test_a_computation_waiting_on_earlier_work_says_so_then_runs():
    seen, done = [], threading.Event()
    with cache.exclusive():
        def later():
            with cache.exclusive(lambda d, t, msg: seen.append(msg)):
                done.set()
        t = threading.Thread(target=later)
        t.start()
        time.sleep(0.2)
        assert not done.is_set() and seen == ["waiting for the computation started before this one to finish"]
    t.join(5)
    assert done.is_set() and not cache.WORK_LOCK.locked()
