import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from core import spec as S
from core import sweep
from core.prune import StructuredPrune, UnstructuredPrune
from core.quantize import Int8, WeightQuant
from core.store import Store

FAST = {"latency": False}


def config(**axes):
    return {"run": "t", "model": "mlp", "data": "digits", "axes": axes, "measure": FAST}


def test_default_sweep_file_has_at_least_sixty_points_in_canonical_order():
    cfg = sweep.load_config("sweeps/default.yaml")
    specs = sweep.expand(cfg)
    assert len(specs) >= 60 and specs[0] == S.Spec()
    assert len({s.hash for s in specs}) == len(specs)
    first_student = next(i for i, s in enumerate(specs) if s.distill is not None)
    assert all(s.distill is None for s in specs[:first_student])


def test_grid_expansion_drops_duplicates_and_builds_configs():
    cfg = sweep.load_config(config(prune=["unstructured", "structured"], prune_ratio=[0.0, 0.5],
                                   quantize=["fp32", "int8", "w4"]))
    specs = sweep.expand(cfg)
    # ratio 0 is the same for both kinds: 1 unpruned + 2 pruned, times 3 formats
    assert len(specs) == 9
    assert S.Spec(prune=StructuredPrune(0.5), quantize=Int8()) in specs
    assert S.Spec(prune=UnstructuredPrune(0.5), quantize=WeightQuant(4)) in specs


def test_the_same_sweep_as_json_yaml_and_dict(tmp_path):
    raw = config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"])
    (tmp_path / "s.json").write_text(json.dumps(raw))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    hashes = [[s.hash for s in sweep.expand(sweep.load_config(src))]
              for src in (raw, tmp_path / "s.json", tmp_path / "s.yaml")]
    assert hashes[0] == hashes[1] == hashes[2]


@pytest.mark.parametrize("raw, message", [
    ({"model": "mlp", "axes": {}, "colour": 1}, "Unknown sweep key 'colour'"),
    (config(prune_ratio=[1.0]), r"prune_ratio values must be in \[0, 1\)"),
    (config(prune_ratio=[-0.1]), r"prune_ratio values must be in \[0, 1\)"),
    (config(quantize=["w9"]), "bit widths are 2 to 8"),
    (config(quantize=["w1"]), "bit widths are 2 to 8"),
    (config(prune_ratio=[]), "Axis 'prune_ratio' is empty"),
    (config(sparsity=[0.5]), "Unknown axis 'sparsity'"),
    (config(student_width=[0]), r"student_width values must be in \(0, 1\]"),
    ({"axes": {}}, "needs a 'model'"),
])
def test_bad_sweep_files_are_refused_with_one_sentence(raw, message):
    with pytest.raises(sweep.SweepError, match=message):
        sweep.load_config(raw)


def test_sweep_stores_every_point_and_reruns_from_the_store(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    cfg = sweep.load_config(config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"]))
    seen = []
    first = sweep.run_sweep(cfg, store, progress=lambda d, t, m: seen.append((d, t)))
    assert (first.total, first.computed, first.failed) == (4, 4, 0)
    assert seen[-1] == (4, 4)
    again = sweep.run_sweep(cfg, store)
    assert (again.computed, again.reused) == (0, 4) and again.seconds < 5
    df = store.table("t")
    assert list(df["status"]) == ["ok"] * 4 and df["accuracy"].min() > 0.9


def test_a_failing_point_is_stored_as_failed_and_the_sweep_goes_on(tmp_path, monkeypatch):
    from core import quantize

    def broken(*a, **k):
        raise RuntimeError("kernel exploded")
    monkeypatch.setitem(S._METHODS, WeightQuant, broken)
    store = Store(tmp_path / "s.sqlite")
    result = sweep.run_sweep(sweep.load_config(config(quantize=["fp32", "w4", "int8"])), store)
    assert result.failed == 1 and result.total == 3
    df = store.table("t")
    failed = df[df["status"] == "failed"]
    assert len(failed) == 1 and "kernel exploded" in failed["error"].iloc[0]


def test_parallel_workers_give_the_same_points(tmp_path):
    cfg = sweep.load_config(config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"]))
    serial, parallel = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    sweep.run_sweep(cfg, serial)
    sweep.run_sweep(cfg, parallel, workers=2)
    a, b = serial.table("t"), parallel.table("t")
    assert sorted(a["key"]) == sorted(b["key"])
    assert a.set_index("key")["accuracy"].sort_index().tolist() == b.set_index("key")["accuracy"].sort_index().tolist()


def test_a_sweep_killed_with_sigkill_resumes_and_keeps_finished_points(tmp_path):
    raw = config(prune_ratio=[0.0, 0.3, 0.5, 0.7], finetune_epochs=[1], quantize=["fp32", "w4", "w3"])
    (tmp_path / "kill.yaml").write_text(yaml.safe_dump(raw))
    total = len(sweep.expand(sweep.load_config(raw)))
    db = tmp_path / "kill.sqlite"
    env = {**os.environ, "EDGETRIM_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "core.cli", "sweep", str(tmp_path / "kill.yaml"), "--store", str(db)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stored = 0
    deadline = time.time() + 120
    while time.time() < deadline and stored < 4:
        time.sleep(0.2)
        if db.exists():
            try:
                stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM points").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    before = dict(con.execute("SELECT key, created_at FROM points WHERE status='ok'").fetchall())
    assert 4 <= len(before) < total
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} from the store" in done.stdout
    after = dict(con.execute("SELECT key, created_at FROM points WHERE status='ok'").fetchall())
    assert len(after) == total
    assert all(after[k] == t for k, t in before.items()), "finished points were not recomputed"
