import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from core.engine import grid, sweep
from core.methods import spec as S
from core.methods.deploy import Int8
from core.methods.prune import StructuredPrune, UnstructuredPrune
from core.methods.quantize import WeightQuant
from core.results.store import Store

FAST = {"latency": False}


def config(**axes):
    return {"run": "t", "model": "mlp", "data": "digits", "axes": axes, "measure": FAST}


def test_default_sweep_file_has_at_least_sixty_points_in_canonical_order():
    cfg = grid.load_config("sweeps/default.yaml")
    specs = grid.expand(cfg)
    assert len(specs) >= 60 and specs[0] == S.Spec()
    assert len({s.hash for s in specs}) == len(specs)
    first_student = next(i for i, s in enumerate(specs) if s.distill is not None)
    assert all(s.distill is None for s in specs[:first_student])


def test_grid_expansion_drops_duplicates_and_builds_configs():
    cfg = grid.load_config(config(prune=["unstructured", "structured"], prune_ratio=[0.0, 0.5],
                                   quantize=["fp32", "int8", "w4"]))
    specs = grid.expand(cfg)
    # ratio 0 is the same for both kinds: 1 unpruned + 2 pruned, times 3 formats
    assert len(specs) == 9
    assert S.Spec(prune=StructuredPrune(0.5), deploy=Int8()) in specs
    assert S.Spec(prune=UnstructuredPrune(0.5), quantize=WeightQuant(4)) in specs


def test_the_same_sweep_as_json_yaml_and_dict(tmp_path):
    raw = config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"])
    (tmp_path / "s.json").write_text(json.dumps(raw))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    hashes = [[s.hash for s in grid.expand(grid.load_config(src))]
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
    with pytest.raises(grid.SweepError, match=message):
        grid.load_config(raw)


def test_sweep_stores_every_point_and_reruns_from_the_store(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    cfg = grid.load_config(config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"]))
    seen = []
    first = sweep.run_sweep(cfg, store, progress=lambda d, t, m: seen.append((d, t)))
    assert (first.total, first.computed, first.failed) == (4, 4, 0)
    assert seen[-1] == (4, 4)
    again = sweep.run_sweep(cfg, store)
    assert (again.computed, again.reused) == (0, 4) and again.seconds < 5
    df = store.table("t")
    assert list(df["status"]) == ["ok"] * 4 and df["accuracy"].min() > 0.9


def test_a_failing_point_is_stored_as_failed_and_the_sweep_goes_on(tmp_path, monkeypatch):
    from core.methods import registry

    def broken(*a, **k):
        raise RuntimeError("kernel exploded")
    monkeypatch.setitem(registry._METHODS, WeightQuant, broken)
    store = Store(tmp_path / "s.sqlite")
    result = sweep.run_sweep(grid.load_config(config(quantize=["fp32", "w4", "int8"])), store)
    assert result.failed == 1 and result.total == 3
    df = store.table("t")
    failed = df[df["status"] == "failed"]
    assert len(failed) == 1 and "kernel exploded" in failed["error"].iloc[0]
    assert result.errors == ("RuntimeError: kernel exploded",)


def test_parallel_workers_give_the_same_points(tmp_path):
    cfg = grid.load_config(config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"]))
    serial, parallel = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    sweep.run_sweep(cfg, serial)
    sweep.run_sweep(cfg, parallel, workers=2)
    a, b = serial.table("t"), parallel.table("t")
    assert sorted(a["key"]) == sorted(b["key"])
    assert a.set_index("key")["accuracy"].sort_index().tolist() == b.set_index("key")["accuracy"].sort_index().tolist()


def test_a_sweep_killed_with_sigkill_resumes_and_keeps_finished_points(tmp_path):
    raw = config(prune_ratio=[0.0, 0.3, 0.5, 0.7], finetune_epochs=[1], quantize=["fp32", "w4", "w3"])
    (tmp_path / "kill.yaml").write_text(yaml.safe_dump(raw))
    total = len(grid.expand(grid.load_config(raw)))
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


def test_measure_threads_in_a_sweep_file_is_used_not_passed_twice(tmp_path):
    for threads in (None, 1):
        cfg = grid.load_config({**config(quantize=["fp32", "w4"]), "run": f"th{threads}",
                                "measure": {"latency": True, "budget_s": 0.01, "threads": threads}})
        result = sweep.run_sweep(cfg, Store(tmp_path / f"s{threads}.sqlite"))
        assert result.failed == 0, result.errors
    lat = Store(tmp_path / "s1.sqlite").points("th1")[1].metrics.latency
    assert lat and {l.threads for l in lat} == {1}
    with pytest.raises(grid.SweepError, match="measure.threads must be a whole number of at least 1"):
        grid.load_config({**config(), "measure": {"threads": -1}})


def test_data_with_more_classes_than_the_model_is_refused_before_any_work(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((120, 1, 28, 28), dtype=np.float32), y=np.arange(120) % 12)
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="12 classes but mlp scores only 10") as e:
        sweep.run_sweep(grid.load_config({**config(prune_ratio=[0.0, 0.5]), "data": str(tmp_path / "d.npz")}), store)
    assert "\n" not in str(e.value) and store.runs().empty  # nothing was run or stored


def test_a_sweep_with_failed_points_exits_non_zero_with_one_line_per_cause(tmp_path, monkeypatch, capsys):
    import logging

    from core import cli
    from core.methods import registry

    def broken(*a, **k):
        raise RuntimeError("kernel exploded\n  at a deep frame")
    monkeypatch.setitem(registry._METHODS, WeightQuant, broken)
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(config(prune_ratio=[0.0, 0.5], quantize=["fp32", "w4"])))
    args = ["sweep", str(cfg), "--store", str(tmp_path / "s.sqlite")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("failed: RuntimeError: kernel exploded") == 1 and "2 point(s) failed" in err
    assert "Traceback" not in err and "deep frame" not in err
    store = Store(tmp_path / "s.sqlite")
    store.delete_run("t")
    assert cli.main(args + ["--verbose"]) == 1
    assert "Traceback" in capsys.readouterr().err
    logging.getLogger("edgetrim").handlers.clear()


def test_deep_compression_and_soft_sharing_tokens_take_their_settings_and_budget():
    cfg = grid.load_config({"model": "mlp", "axes": {"quantize": ["share4", "dc5", "soft4"]},
                            "settings": {"qat_epochs": 2, "quantize": {"conv_bits": 8, "tau": 0.01},
                                         "budget": {"samples_per_epoch": 500, "patience": 1}}})
    share, dc, soft = [s.quantize for s in grid.expand(cfg)[1:]]
    assert (share.bits, share.conv_bits, share.finetune_epochs, share.samples_per_epoch) == (4, 8, 0, None)
    assert (dc.bits, dc.conv_bits, dc.finetune_epochs, dc.samples_per_epoch, dc.patience) == (5, 8, 2, 500, 1)
    assert (soft.components, soft.epochs, soft.tau, soft.samples_per_epoch) == (15, 2, 0.01, 500)  # 15 + zero
    assert "centroids fine-tuned 2 ep" in dc.label and "soft weight-sharing" in soft.label
    with pytest.raises(grid.SweepError, match="Unknown quantize setting 'conv_bit'"):
        grid.load_config({"model": "mlp", "settings": {"quantize": {"conv_bit": 8}}})
    for field in ("bits", "finetune_epochs"):   # a token's own width and kind are not overridden behind its back
        with pytest.raises(grid.SweepError, match=f"'{field}' is set by each token"):
            grid.load_config({"model": "mlp", "settings": {"quantize": {field: 3}}})


@pytest.mark.parametrize("settings, message", [
    ({"quantize": {"tau": "0.05"}}, "SoftShare.tau must be a number, got '0.05'"),
    ({"prune": {"weight_decay": "1e-5"}}, "UnstructuredPrune.weight_decay must be a number"),
    ({"prune": {"scope": "sd"}}, "UnstructuredPrune.scope must be one of global, layer, std; got 'sd'"),
    ({"prune": {"weight_decy": 1e-5}}, "UnstructuredPrune has no field 'weight_decy'"),
    ({"quantize": {"conv_bits": 9}}, "conv_bits .a bit width. must be a whole number from 2 to 8"),
])
def test_a_bad_method_setting_is_one_sentence_naming_the_field(settings, message):
    with pytest.raises(grid.SweepError, match=message):
        grid.load_config({"model": "mlp", "axes": {"prune_ratio": [0.5], "quantize": ["dc4", "soft3"]},
                          "settings": settings})
