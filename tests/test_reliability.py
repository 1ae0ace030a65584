"""Crashes and concurrency on the real SQLite store: SIGKILL at random moments, two writers, interrupted exports."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from core.engine import grid, runner, sweep
from core.results import export
from core.results.store import Store

SMALL = {"model": "mlp", "axes": {"prune_ratio": [0.0, 0.3, 0.6, 0.8], "quantize": ["fp32", "w6", "w4"]},
         "measure": {"latency": False}}


def _cmd(tmp, run, db):
    cfg = tmp / f"{run}.yaml"
    cfg.write_text(yaml.safe_dump({**SMALL, "run": run}))
    return [sys.executable, "-m", "core.cli", "sweep", str(cfg), "--store", str(db)]


def _ok_points(db):
    """The finished points; none when the kill came after the file was created but before its tables were."""
    with sqlite3.connect(db) as con:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='points'").fetchone():
            return {}
        return dict(con.execute("SELECT key, metrics_json FROM points WHERE status='ok'").fetchall())


def test_sigkill_at_random_moments_loses_at_most_the_point_in_flight(tmp_path):
    db, rng = tmp_path / "s.sqlite", random.Random(7)
    env = {**os.environ, "EDGETRIM_CACHE": str(tmp_path / "cache")}
    cmd = _cmd(tmp_path, "k", db)
    total = len(grid.expand(grid.load_config({**SMALL, "run": "k"})))
    kept: dict = {}
    for _ in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 7.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = _ok_points(db) if db.exists() else {}
        assert all(now.get(k) == v for k, v in kept.items()), "a finished point was lost or changed"
        kept = now
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    final = _ok_points(db)
    assert len(final) == total and all(final[k] == v for k, v in kept.items())


def test_two_sweeps_writing_one_store_at_once(tmp_path):
    db = tmp_path / "shared.sqlite"
    env = {**os.environ, "EDGETRIM_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen(_cmd(tmp_path, run, db), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for run in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outs]
    store = Store(db)
    total = len(grid.expand(grid.load_config({**SMALL, "run": "a"})))
    for run in ("a", "b"):
        df = store.table(run)
        assert len(df) == total and (df["status"] == "ok").all() and df["accuracy"].notna().all()
    assert len(_ok_points(db)) == total  # the same points, stored once, shared by both runs


def test_an_interrupted_export_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    store = Store(tmp_path / "s.sqlite")
    cfg = grid.load_config({**SMALL, "run": "e", "axes": {"prune_ratio": [0.0, 0.5]}})
    sweep.run_sweep(cfg, store)
    point = store.points("e")[-1]
    model, data = runner.load_context(cfg.model, cfg.data)

    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(export.os, "replace", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        export.export_point(point, model, data, "onnx", out / "m.onnx")
    assert os.listdir(out) == []
