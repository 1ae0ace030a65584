"""Points scored on a seeded subset: intervals, which points the whole splits settle, and picks made whole."""
import shutil
import sqlite3

import pandas as pd
import pytest

from core.cli.main import main as edgetrim
from core.engine import grid, runner, sweep
from core.results import pareto, subset
from core.results.store import Store

RAW = {"run": "s", "model": "mlp", "data": "digits", "measure": {"latency": False},
       "axes": {"prune_ratio": [0.0, 0.9], "quantize": ["fp32", "w4", "w2"], "deploy": ["fp32", "int8"]}}


def test_wilson_intervals_hold_the_proportion_and_stay_in_zero_one():
    low, high = subset.wilson(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = subset.wilson(1.0, 100)
    assert high == 1.0 and low == pytest.approx(0.963, abs=1e-3)
    assert subset.wilson(0.9, 10_000)[1] - subset.wilson(0.9, 10_000)[0] < 0.012


def _row(key, family, val, n, onnx, latency=1.0):
    return {"key": key, "family": family, "status": "ok", "val_accuracy": val, "eval_subset": n,
            "onnx_bytes": onnx, "ort_b1_ms": latency, "ort_b1_busy": False}


def test_a_point_is_left_on_its_subset_only_when_another_surely_beats_it_on_every_cost():
    df = pd.DataFrame([
        _row("base", "baseline", 0.99, 1000, 100),
        _row("beaten", "prune", 0.50, 1000, 200, 2.0),           # surely worse, larger and slower: never a pick
        _row("small", "prune", 0.97, 1000, 50, 3.0),             # smaller than all: a pick at a low floor
        _row("close", "prune", 0.985, 1000, 120, 0.5),           # fastest: a latency pick
        _row("whole", "quantize", 0.98, None, 90, 1.0)])
    assert set(subset.to_confirm(df)) == {"base", "small", "close"}
    judged = subset.optimistic(df).set_index("key")["val_accuracy"]
    assert judged["small"] > 0.97 and judged["whole"] == 0.98


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same grid scored whole, and on 100-image subsets of validation (270) and test (360)."""
    tmp = tmp_path_factory.mktemp("subset")
    whole, part = Store(tmp / "whole.sqlite"), Store(tmp / "part.sqlite")
    sweep.run_sweep(grid.load_config(RAW), whole)
    result = sweep.run_sweep(grid.load_config({**RAW, "measure": {"latency": False, "subset": 100}}), part)
    return whole, part, result, tmp


def test_settled_points_carry_the_whole_split_numbers_and_the_rest_their_interval(runs):
    whole, part, result, _ = runs
    a, b = whole.table("s").set_index("key"), part.table("s").set_index("key")
    assert sorted(a.index) == sorted(b.index) and result.total == 12
    settled = b[b["eval_subset"].isna()]
    assert result.settled == len(settled) > 0 and "baseline" in set(settled["family"])
    for col in ("accuracy", "val_accuracy", "torch_accuracy"):
        pd.testing.assert_series_equal(settled[col], a.loc[settled.index, col], check_names=False)
    left = b[b["eval_subset"].notna()]
    assert (left["eval_subset"] == 100).all() and (left["val_low"] <= left["val_accuracy"]).all()
    assert (left["val_high"] >= left["val_accuracy"]).all()


@pytest.mark.parametrize("drop", [0.1, 0.5, 1.0, 5.0])
@pytest.mark.parametrize("objective", ["size", "macs"])
def test_a_pick_made_on_a_subset_run_is_the_pick_of_the_whole_run(runs, drop, objective):
    whole, part, _, _ = runs

    def choose(table):
        return pareto.pick(table, pareto.baseline_accuracy(table) - drop / 100, objective)
    expected = choose(whole.table("s"))
    got = runner.confirmed_pick(part, "s", choose)
    assert got.row["key"] == expected.row["key"] and pd.isna(got.row["eval_subset"])
    assert got.row["accuracy"] == expected.row["accuracy"]


def _copy(store: Store, to) -> Store:
    """A copy of a store and its kept files, to change without touching the module's runs."""
    with sqlite3.connect(to) as copy:
        store.db.backup(copy)
    shutil.copytree(store.artefact_folder().root, Store(to).artefact_folder().root, dirs_exist_ok=True)
    return Store(to)


def test_the_cli_table_shows_intervals_and_pick_and_export_score_whole(runs, capsys):
    _, part, _, tmp = runs
    db = str(tmp / "cli.sqlite")
    _copy(part, db)
    assert edgetrim(["table", "s", "--store", db]) == 0
    assert "val 95 % interval" in capsys.readouterr().out
    left = Store(db).table("s").dropna(subset=["eval_subset"])
    key = left[left["family"] != "baseline"]["key"].iloc[0]
    assert edgetrim(["export", "s", key[:12], "--store", db, "-o", str(tmp / "out")]) == 0
    out = capsys.readouterr()
    assert "was scored on a subset: scoring it on the whole splits first" in out.err
    assert pd.isna(Store(db).table("s").set_index("key").loc[key, "eval_subset"])
    assert edgetrim(["pick", "s", "--store", db, "--max-drop", "50", "--objective", "macs"]) == 0


def test_a_subset_point_whose_files_are_gone_is_computed_again_whole(runs):
    whole, part, _, tmp = runs
    store = _copy(part, tmp / "gone.sqlite")
    key = store.table("s").dropna(subset=["eval_subset"])["key"].iloc[0]
    for path in store.artefacts(key).values():
        path.unlink()
    assert runner.settle(store, "s", [key]) == 1
    point, expected = store.get(key), whole.get(key)
    assert point.metrics.eval_subset is None and point.metrics.accuracy == expected.metrics.accuracy


def test_a_subset_too_small_is_refused_in_one_sentence():
    with pytest.raises(grid.SweepError, match="measure.subset is a whole number of images, at least 100, not 10"):
        grid.load_config({**RAW, "measure": {"subset": 10}})
