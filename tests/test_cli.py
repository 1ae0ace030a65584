import json
import subprocess
import sys

import pytest

from core import cli


def test_models_lists_every_sample_with_metrics_measured_now(capsys):
    assert cli.main(["models", "--no-latency", "--data", "digits"]) == 0  # digits: seconds, not minutes, for ResNet-18
    out = capsys.readouterr().out
    for name in ("mlp", "lenet5", "mobilenet_v3_small"):
        assert name in out
    assert "onnx KB" in out


def test_measure_prints_json_with_latency_on_both_runtimes(capsys):
    assert cli.main(["measure", "--model", "mlp", "--json", "--threads", "1"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {l["runtime"] for l in m["latency"]} == {"onnxruntime", "pytorch"}
    assert all(l["threads"] == 1 for l in m["latency"])


def test_errors_are_one_sentence_and_exit_non_zero(capsys):
    assert cli.main(["measure", "--model", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetrim: error: No sample model named 'nosuch'") and "Traceback" not in err
    assert cli.main(["measure", "--model", "mlp", "--data", "missing.npz"]) == 2
    assert "No data at 'missing.npz'" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "core.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "measure" in out.stdout


def test_sweep_runs_front_pick_export_table_delete(tmp_path, capsys, monkeypatch):
    import yaml

    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "run": "cli", "model": "mlp", "axes": {"prune_ratio": [0.0, 0.5], "quantize": ["fp32", "w4"]},
        "measure": {"latency": False}}))
    db = ["--store", str(tmp_path / "s.sqlite")]
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), *db]) == 0
    assert "4 points, 4 measured now" in capsys.readouterr().out
    assert cli.main(["runs", *db]) == 0
    assert "cli" in capsys.readouterr().out
    assert cli.main(["front", "cli", *db]) == 0
    assert "on the (accuracy, size) front" in capsys.readouterr().out
    assert cli.main(["front", "cli", "--by", "family", *db]) == 0
    assert "family = " in capsys.readouterr().out
    assert cli.main(["pick", "cli", "--max-drop", "1", *db]) == 0
    out = capsys.readouterr().out
    assert "% on validation (floor" in out and "% on the test split" in out  # judged on val, reported on test
    assert cli.main(["pick", "cli", "--floor", "0.999", *db]) == 1
    assert "No point reaches the floor" in capsys.readouterr().out
    assert cli.main(["export", "cli", "--max-drop", "1", "-o", str(tmp_path / "best.onnx"), *db]) == 0
    assert (tmp_path / "best.onnx").exists() and (tmp_path / "best.onnx.json").exists()
    capsys.readouterr()
    assert cli.main(["table", "cli", "--csv", str(tmp_path / "t.csv"), *db]) == 0
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 5
    assert cli.main(["export", "cli", "zzzz", "-o", str(tmp_path), *db]) == 2
    assert "No point of run 'cli' has a key starting 'zzzz'" in capsys.readouterr().err
    assert cli.main(["pick", "cli", "--floor", "1.5", *db]) == 2
    assert cli.main(["delete", "cli", *db]) == 0
    assert cli.main(["front", "cli", *db]) == 2
    assert "No run named 'cli'" in capsys.readouterr().err


@pytest.mark.parametrize("threads", ["-1", "0", "two"])
def test_threads_below_one_are_refused_when_the_arguments_are_parsed(threads, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["measure", "--model", "mlp", "--threads", threads])
    err = capsys.readouterr().err.splitlines()[-1]
    assert exit_.value.code == 2 and err.endswith(f"argument --threads: must be a whole number of threads, 1 or more, "
                                                  f"not {threads!r}")


@pytest.mark.parametrize("command", [["runs"], ["front", "r"], ["pick", "r", "--max-drop", "1"], ["table", "r"],
                                     ["export", "r", "abc", "-o", "out.onnx"]])
def test_read_only_commands_never_create_or_change_a_store(command, tmp_path, capsys):
    empty, missing = tmp_path / "empty.sqlite", tmp_path / "missing.sqlite"
    empty.write_bytes(b"")
    assert cli.main([*command, "--store", str(empty)]) == 2
    assert capsys.readouterr().err == (f"edgetrim: error: {empty} is not an edgetrim store (it holds no edgetrim "
                                       "tables); give the --store a sweep wrote to.\n")
    assert cli.main([*command, "--store", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"edgetrim: error: No edgetrim store at {missing}; run `edgetrim sweep`")
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


def test_pick_below_the_floor_offers_no_export(tmp_path, capsys, monkeypatch):
    import yaml

    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"run": "p", "model": "mlp", "measure": {"latency": False},
                                   "axes": {"quantize": ["fp32", "w4"]}}))
    store = str(tmp_path / "s.sqlite")
    assert cli.main(["sweep", str(cfg), "--store", store]) == 0
    capsys.readouterr()
    assert cli.main(["pick", "p", "--store", store, "--floor", "0.999"]) == 1
    out = capsys.readouterr().out
    assert "No point reaches the floor" in out and "export it" not in out

def _judged_run(path, points, run="judge"):
    """A store holding `points` (prune ratio, validation accuracy or None, test accuracy, file bytes), no sweep."""
    from core import measure as ME
    from core import spec as S
    from core.prune import UnstructuredPrune
    from core.store import Point, Store

    store = Store(path)
    store.add_run(run, {"model": "m", "data": "d"}, "m", "d")
    for i, (ratio, val, test, size) in enumerate(points):
        spec = S.Spec(prune=UnstructuredPrune(ratio)) if ratio else S.Spec()
        m = ME.Metrics(test, None, 100, size, size, None, 10, 10, 10, val_accuracy=val)
        store.put(Point(spec.hash, "m", "f", "d", "g", spec, "ok", m), run, i)
    store.close()
    return ["--store", str(path)]


def test_pick_judges_on_validation_prints_both_splits_and_judges_on_test_when_asked(tmp_path, capsys):
    # 50 %: within the floor on validation only; 90 %: on the test split only (and smaller); 75 %: on the test
    # split's front, dominated by 90 % on validation
    db = _judged_run(tmp_path / "s.sqlite", [(0, 0.99, 0.99, 1000), (0.5, 0.985, 0.96, 600),
                                              (0.75, 0.94, 0.99, 500), (0.9, 0.95, 0.985, 300)])
    assert cli.main(["pick", "judge", "--floor", "0.98", *db]) == 0
    out = capsys.readouterr().out
    assert "prune 50 %" in out.splitlines()[0], out
    assert "98.50 % on validation (floor 98.00 %, baseline 99.00 %), 96.00 % on the test split" in out
    assert "val acc %" in out and "note:" not in out
    assert cli.main(["pick", "judge", "--floor", "0.98", "--judge-on", "test", *db]) == 0
    out = capsys.readouterr().out
    assert "prune 90 %" in out.splitlines()[0] and "98.50 % on the test split (floor 98.00 %" in out, out
    assert cli.main(["front", "judge", *db]) == 0
    out = capsys.readouterr().out
    assert "accuracy judged on validation" in out and "prune 75 %" not in out  # dominated on validation
    assert cli.main(["front", "judge", "--judge-on", "test", *db]) == 0
    assert "prune 75 %" in capsys.readouterr().out


def test_points_stored_before_validation_was_recorded_are_judged_on_test_said_once(tmp_path, capsys):
    db = _judged_run(tmp_path / "s.sqlite", [(0, None, 0.99, 1000), (0.5, 0.985, 0.96, 600),
                                              (0.9, None, 0.985, 300)])
    assert cli.main(["pick", "judge", "--max-drop", "1", *db]) == 0
    out = capsys.readouterr().out
    assert "prune 90 %" in out.splitlines()[0] and "on the test split (floor 98.00 %" in out, out
    assert out.count("note: Judged on the test split, not on validation: 2 of 3 measured point(s)") == 1

