"""The Ray executor on a local Ray (2 CPUs, loopback only): same points as the local executor, and a
worker killed mid-sweep does not lose a point."""
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from core.engine import grid, sweep
from core.results.store import Store

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'edgetrim[ray]')")

GRID = {"model": "mlp", "axes": {"prune_ratio": [0.0, 0.5, 0.8], "quantize": ["fp32", "w4", "int8"]},
        "measure": {"latency": False}}


def test_ray_gives_the_same_points_as_the_local_executor(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    cfg = grid.load_config({**GRID, "run": "same"})
    local, remote = Store(tmp_path / "local.sqlite"), Store(tmp_path / "ray.sqlite")
    sweep.run_sweep(cfg, local)
    result = sweep.run_sweep(cfg, remote, executor="ray")
    assert result.computed == len(grid.expand(cfg)) and result.failed == 0
    a = local.table("same").set_index("key")
    b = remote.table("same").set_index("key")
    assert sorted(a.index) == sorted(b.index)
    assert (a.loc[b.index, "accuracy"].values == b["accuracy"].values).all()
    assert (a.loc[b.index, "archive_bytes"].values == b["archive_bytes"].values).all()


def _ray_task_pids(name: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if name in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def test_a_killed_ray_worker_is_retried_and_every_point_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    cfg = grid.load_config({**GRID, "run": "kill", "axes": {**GRID["axes"], "prune_ratio": [0.0, 0.5, 0.8, 0.9],
                                                             "finetune_epochs": [4]}})
    killed = []

    def killer():
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            pids = _ray_task_pids("ray::measure_task")
            if pids:
                time.sleep(0.3)  # let it get into its work
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.2)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    store = Store(tmp_path / "kill.sqlite")
    result = sweep.run_sweep(cfg, store, executor="ray")
    t.join(timeout=1)
    assert killed, "no Ray worker was seen running a task"
    df = store.table("kill")
    assert len(df) == len(grid.expand(cfg)) and (df["status"] == "ok").all(), df[["label", "status", "error"]]
    assert result.failed == 0
