import json
import re
import subprocess
import sys

import pytest

from core import cli


def test_models_lists_every_sample_from_its_card_in_seconds():
    """The listing reads the cards (no sample is loaded or measured): under 5 s here, 15 s allowed on a busy CI."""
    import time

    from core.inputs import models as M

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "core.cli", "models"], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    assert seconds < 15, f"edgetrim models took {seconds:.1f} s"
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["model", "arch", "data", "input", "classes", "params", "test", "acc", "%", "val",
                                "acc", "%", "weights", "KB"]
    for name in M.sample_names():
        card = M.sample_card(name)
        row = next(l.split() for l in lines if l.split()[:1] == [name])
        assert row[1:5] == [card["arch"], card["data"], "x".join(map(str, card["input_shape"])),
                            str(card["num_classes"])]
        assert row[5] == f"{card['params']:,}" and float(row[6]) == round(100 * card["test_accuracy"], 2)
    assert sum("edgetrim measure --model NAME" in l for l in lines) == 1


def test_models_json_is_the_cards(capsys):
    from core.inputs import models as M

    assert cli.main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert cards == {n: M.sample_card(n) for n in M.sample_names()}


def test_measure_a_sample_on_the_data_of_its_card(capsys, monkeypatch):
    from core.inputs import data as D

    asked = []
    real = D.load_data
    monkeypatch.setattr(D, "load_data", lambda source, *a, **k: asked.append(source) or real("digits"))
    assert cli.main(["measure", "--model", "lenet5_mnist", "--no-latency", "--json"]) == 0
    assert asked == ["mnist"]  # (digits stands in for it here: this test checks the choice, not MNIST)


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
    assert cli.main(["export", "cli", "--floor", "0.999", "-o", str(tmp_path / "none.onnx"), *db]) == 1  # as pick
    assert "nothing was exported" in capsys.readouterr().err and not (tmp_path / "none.onnx").exists()
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
    from core.methods import spec as S
    from core.methods.prune import UnstructuredPrune
    from core.results.store import Point, Store
    from core.runtimes import measure as ME

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


def test_edgetrim_cache_moves_everything_edgetrim_writes(tmp_path):
    """With EDGETRIM_CACHE set (and no store named), a measure and a small sweep with a student write only there:
    the store, its kept files, the student and the libraries' caches (ONNX Runtime's device id); HOME and the
    working folder are left empty, and TMPDIR too but for ONNX Runtime's session file."""
    import os

    import yaml

    home, work, tmp, cache = (tmp_path / d for d in ("home", "work", "tmp", "cache"))
    for d in (home, work, tmp):
        d.mkdir()
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "run": "moved", "model": "mlp", "axes": {"student_width": [1.0, 0.5], "prune_ratio": [0.0, 0.5]},
        "settings": {"distill": {"epochs": 1}}, "measure": {"latency": False}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGETRIM_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(tmp), EDGETRIM_CACHE=str(cache))
    for command in (["measure", "--model", "mlp", "--no-latency"], ["sweep", str(tmp_path / "s.yaml")],
                    ["runs"]):
        out = subprocess.run([sys.executable, "-m", "core.cli", *command], cwd=work, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr
    assert f"store {cache / 'results.sqlite'}" in subprocess.run(
        [sys.executable, "-m", "core.cli", "sweep", str(tmp_path / "s.yaml")], cwd=work, env=env, capture_output=True,
        text=True, timeout=600).stdout  # the default store is in EDGETRIM_CACHE (and the run is now all reused)
    assert "moved" in out.stdout
    written = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*"))
    assert written(home) == [] and written(work) == []
    assert set(written(tmp)) <= {".ses"}  # all temporary files removed (ONNX Runtime's 51-byte .ses excepted)
    assert {"results.sqlite", "results.artefacts", "students"} <= set(os.listdir(cache))  # libraries/: if they wrote


def test_mnist_fetched_before_is_read_from_the_users_cache_but_fetched_into_edgetrim_cache(tmp_path, monkeypatch):
    import core
    from core.inputs import mnist

    monkeypatch.delenv("EDGETRIM_MNIST", raising=False)
    monkeypatch.setenv(core.USER_XDG, str(tmp_path / "xdg"))
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    assert core.cache_root() == tmp_path / "xdg" / "edgetrim"
    assert mnist.path() == tmp_path / "cache" / "mnist" / "mnist.npz"  # none anywhere: fetched into EDGETRIM_CACHE
    shared = tmp_path / "xdg" / "edgetrim" / "mnist" / "mnist.npz"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"")
    assert mnist.path() == shared  # read where it is, never copied


def test_sweep_says_its_training_up_front_and_the_point_in_flight_with_its_stage_and_epoch(tmp_path, capsys,
                                                                                         monkeypatch):
    """Not a terminal (a CI log): plain lines, the estimate counting training first, each finished point's whole
    label, and the point in flight with its stage and epoch (here at every message)."""
    import yaml

    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cli.sweep, "IN_FLIGHT_EVERY_S", 0.0)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "run": "shown", "model": "mlp", "measure": {"latency": False},
        "axes": {"student_width": [1.0, 0.5], "prune_ratio": [0.0, 0.5], "finetune_epochs": [2],
                 "quantize": ["fp32", "w4"]}, "settings": {"distill": {"epochs": 2}}}))
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--store", str(tmp_path / "s.sqlite")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("8 points to compute (0 in the store already): 2 x fine-tuning after pruning (4 epochs); "
                      "1 x the student (2 epochs)")  # a shared prefix trains once for both weight formats
    assert re.fullmatch(r"estimate: about \d+ s here \(training about \d+ s, measuring about \d+ s\)"
                        r"( \(timed while other work crowds the cores: it may be far off\))?; .*", err[1])
    assert any(re.fullmatch(r"\[\d/8 points, 0:\d\d, about \d+ s left\] in flight: student width 0\.5 .*\| "
                            r"epoch 1/2 of the student: val 0\.\d+", l) for l in err), err
    assert any(l.endswith("| epoch 2/2 of fine-tuning after pruning: val " + l[-5:]) for l in err), err
    assert any(l.endswith("] prune 50 % of weights (unstructured, global, 2 ep fine-tuning) → 4-bit weights "
                          "(per-channel) -> ok") for l in err), err


def test_sweep_line_on_a_terminal_cuts_labels_at_their_end(monkeypatch):
    import io

    from core.engine.estimate import Training
    from core.engine.sweep import Planned
    from core.methods import spec as S
    from core.methods.prune import UnstructuredPrune
    from core.methods.quantize import WeightQuant

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "72")
    spec = S.Spec(prune=UnstructuredPrune(0.9, finetune_epochs=3), quantize=WeightQuant(4, qat_epochs=2))
    planned = [Planned(spec, (Training("fine-tuning after pruning", 3, 1000), Training("quantization-aware training",
                                                                                    2, 1000)), 50.0, 2.0)]
    out = Terminal()
    shown = cli.SweepProgress(planned, stream=out)
    shown.in_flight(spec, 3, 3, "epoch 3/3: val 0.981")
    shown.in_flight(spec, 1, 2, "epoch 1/2: val 0.975")
    shown.bar.refresh()
    line = out.getvalue().split("\r")[-1].rstrip()
    assert len(line) <= 72 and re.match(r"0/\?, 0:00, about \d+ s left · prune 90 % of w… \| epoch 1/2 of quant",
                                        line), line  # the label keeps its start, the stage and epoch show
    assert shown.credit == pytest.approx(50.0 * (3 + 0.5 * 2) / 5)  # the plan's training seconds done so far
    shown.point(1, 1, f"{spec.label} -> ok")
    shown.bar.refresh()
    line = out.getvalue().split("\r")[-1].rstrip()
    assert len(line) <= 72 and "· done: prune 90 % of weights (unstructured" in line and line.endswith("…"), line
    assert cli.cut("prune 90 % of weights", 10) == "prune 90 …"
    shown.close()


def test_sweep_time_left_follows_the_pace_and_the_training_in_flight():
    import io

    from core.engine.estimate import Training
    from core.engine.sweep import Planned
    from core.methods import spec as S
    from core.methods.prune import UnstructuredPrune

    quick, slow = S.Spec(), S.Spec(prune=UnstructuredPrune(0.5, finetune_epochs=10))
    planned = [Planned(quick, (), 0.0, 2.0), Planned(slow, (Training("fine-tuning after pruning", 10, 100),), 8.0, 2.0)]
    now = [0.0]
    shown = cli.SweepProgress(planned, stream=io.StringIO(), clock=lambda: now[0], every=10)  # in-flight lines
    assert shown.seconds_left() == pytest.approx(12.0)  # the plan, before anything ran
    now[0] = 5.0  # the quick point took 5 s where 2 were planned: the rest goes at (5 + 3) / (2 + 3) of the plan
    shown.point(1, 2, f"{quick.label} -> ok")
    assert shown.seconds_left() == pytest.approx(10.0 * 8 / 5)
    now[0] = 25.0  # the slow point's first epoch of ten took 20 s: nine more of them, then its measuring
    shown.in_flight(slow, 1, 10, "epoch 1/10: val 0.9")
    assert shown.seconds_left() == pytest.approx(9 * 20 + 2.0 * 8 / 5)
    assert "[1/2 points, 0:25, about 3 min left] in flight: " in shown.stream.getvalue()
