"""Per-layer settings: a pruning ratio and a bit width per layer, set by hand or found by an NSGA-II search seeded
from the sensitivity scans, compared with the uniform grid on the same model in one run."""
import json

import pandas as pd
import pytest
import torch

from core import cli
from core.engine import grid, layerwise
from core.methods import spec as S
from core.methods.prune import UnstructuredPrune, prunable_weights
from core.methods.quantize import WeightQuant
from core.methods.registry import SpecError
from core.results.store import Store


def test_each_layer_gets_its_own_ratio_and_width(mlp, digits):
    spec = layerwise.layer_spec({"1": 0.9, "3": 0.5, "5": 0.0}, {"1": 3, "3": 8, "5": 4})
    out = S.apply(mlp, spec, digits)
    w = dict(prunable_weights(out.module))
    assert [round(float((w[n] == 0).float().mean()), 3) for n in ("1", "3")] == [0.9, 0.5]
    levels = {n: max(len(torch.unique(row[row != 0])) for row in w[n].reshape(w[n].shape[0], -1)) for n in w}
    assert levels["1"] <= 6 and levels["5"] <= 14 and levels["3"] > 16  # 3-bit: 2^3 - 2 non-zero levels
    assert spec.family == "per-layer"
    assert "prune per layer (1 90 %, 3 50 %, 5 0 %" in spec.label and "1 3-bit, 5 4-bit" in spec.label
    again = S.Spec.from_json(spec.to_json())
    assert again == spec and again.hash == spec.hash


def test_uniform_configs_keep_their_json_and_hash():
    """Stored points keep their identity: the per-layer fields are absent from a uniform config's JSON."""
    for spec in (S.Spec(prune=UnstructuredPrune(0.5)), S.Spec(quantize=WeightQuant(4))):
        assert "layer_" not in spec.to_json()
    assert UnstructuredPrune(0.5, layer_ratios={"fc": 0.5}) == UnstructuredPrune(0.5, layer_ratios=[["fc", 0.5]])


def test_bad_per_layer_settings_are_one_sentence(mlp, digits):
    with pytest.raises(SpecError, match="names 'fc9', which is not a weight layer of this model; its layers are 1, 3, 5"):
        S.apply(mlp, S.Spec(prune=UnstructuredPrune(0.0, layer_ratios={"fc9": 0.5})), digits)
    with pytest.raises(SpecError, match="layer's pruning ratio must be in"):
        UnstructuredPrune(layer_ratios={"1": 1.5})
    with pytest.raises(SpecError, match="bits .* from 2 to 8"):
        WeightQuant(layer_bits={"1": 1})
    with pytest.raises(SpecError, match="must map layer names"):
        WeightQuant(layer_bits=5)


def test_seeds_take_each_layer_as_far_as_it_alone_tolerates():
    prune_rows = [{"layer": "(none)", "ratio": 0.0, "accuracy": 0.95},
                  {"layer": "a", "ratio": 0.5, "accuracy": 0.95}, {"layer": "a", "ratio": 0.9, "accuracy": 0.94},
                  {"layer": "b", "ratio": 0.5, "accuracy": 0.80}]
    bit_rows = [{"layer": "a", "bits": 4, "accuracy": 0.949}, {"layer": "a", "bits": 2, "accuracy": 0.5},
                {"layer": "b", "bits": 4, "accuracy": 0.90}]
    seeds = layerwise.seeds(prune_rows, bit_rows, ["a", "b"])
    assert seeds[0] == ({"a": 0.5, "b": 0.0}, {"a": 4, "b": 8})   # within 0.2 point
    assert ({"a": 0.9, "b": 0.0}, {"a": 4, "b": 8}) in seeds     # within 1 point
    assert ({"a": 0.9, "b": 0.0}, {"a": 4, "b": 4}) in seeds     # within 5 points


def test_hypervolume_grows_with_a_front_that_is_smaller_at_the_same_accuracy():
    def df(points):
        return pd.DataFrame([{"accuracy": a, "archive_bytes": b} for a, b in points])
    base = dict(col="archive_bytes", base_value=1000.0, base_acc=0.95)
    one = layerwise.hypervolume(df([(0.95, 100.0)]), **base)
    assert one == pytest.approx(100 * 1.0 * 0.05)  # one decade x 5 points
    assert layerwise.hypervolume(df([(0.95, 100.0), (0.93, 10.0)]), **base) == pytest.approx(
        100 * (2 * 0.03 + 1 * 0.02))
    assert layerwise.hypervolume(df([(0.95, 2000.0), (0.89, 10.0)]), **base) == 0.0  # bigger, or below the window


def test_overall_ratio_weighs_layers_by_their_weights(mlp):
    sizes = {n: w.numel() for n, w in prunable_weights(mlp.module)}
    assert layerwise.overall_ratio(mlp.module, {"1": 0.5}) == pytest.approx(0.5 * sizes["1"] / sum(sizes.values()))


def test_a_per_layer_search_runs_beside_the_uniform_grid_and_is_compared_with_it(tmp_path, capsys):
    sweep = {"run": "mlp-layers", "model": "mlp", "data": "digits",
             "axes": {"prune_ratio": [0.0, 0.5, 0.9], "quantize": ["fp32", "w4", "w2"]},
             "measure": {"latency": False},
             "search": {"space": "per-layer", "trials": 8, "objectives": ["accuracy", "archive"], "max_bytes": 60000}}
    (tmp_path / "s.json").write_text(json.dumps(sweep))
    db = ["--store", str(tmp_path / "r.sqlite")]
    assert cli.main(["sweep", str(tmp_path / "s.json"), *db]) == 0
    out = capsys.readouterr().out
    assert "the per-layer search took" in out and "uniform grid" in out and "per-layer search" in out
    df = Store(tmp_path / "r.sqlite").table("mlp-layers")
    assert (df["family"] == "per-layer").sum() >= 6  # 8 trials (a repeated setting is one point)
    assert len(df[df["family"] != "per-layer"]) == 9  # the grid, baseline included
    rows = layerwise.compare(df)
    assert [r["points"] for r in rows] == ["uniform grid", "per-layer search"]
    assert all(r["hypervolume"] > 0 for r in rows)
    base = df[df["family"] == "baseline"]["val_accuracy"].iloc[0]
    for r in rows:  # the best point at each floor meets it, on validation (the test split is reported)
        assert r["split"] == "val" and r["judged at -1 pt"] >= base - 0.01 - 1e-9
    assert cli.main(["per-layer", "mlp-layers", *db]) == 0
    assert "hypervolume" in capsys.readouterr().out


@pytest.mark.parametrize("search, match", [
    ({"space": "layers", "trials": 5}, "search.space is axes .* or per-layer"),
    ({"space": "per-layer", "trials": 5, "objectives": ["archive", "accuracy"]}, "objectives are"),
    ({"space": "per-layer", "trials": 5, "max_bytes": -1}, "max_bytes is a positive number"),
    ({"trials": 5, "max_bytes": 100}, "belong to a per-layer search"),
    ({"space": "per-layer", "trials": 5, "budget": 3}, "Unknown search option 'budget'"),
    ({"space": "per-layer", "trials": 5, "objectives": ["accuracy", "latency"]}, r"search: {prune: structured}"),
    ({"space": "per-layer", "trials": 5, "max_latency_ms": 1}, r"a latency budget needs search: {prune: structured}"),
    ({"space": "per-layer", "trials": 5, "prune": "lottery"}, "search.prune is unstructured"),
    ({"space": "per-layer"}, "whole number of trials"),
    ({"trials": 5, "judge_on": "train"}, "search.judge_on is val .* or test")])
def test_bad_search_options_are_one_sentence(search, match):
    with pytest.raises(grid.SweepError, match=match):
        grid.load_config({"model": "mlp", "search": search})


def test_a_structured_per_layer_search_under_a_latency_budget_shrinks_channels_layer_by_layer(tmp_path, lenet5,
                                                                                             digits):
    spec = layerwise.layer_spec({"features.0": 0.5, "classifier.1": 0.75}, {}, kind="structured")
    shapes = {n: tuple(w.shape) for n, w in prunable_weights(S.apply(lenet5, spec, digits).module)}
    assert shapes["features.0"][0] == 3 and shapes["classifier.1"][0] == 30 and shapes["features.3"][0] == 16
    assert "prune channels per layer (features.0 50 %, classifier.1 75 %" in spec.label
    with pytest.raises(SpecError, match="classifier's outputs are the classes"):
        S.apply(lenet5, layerwise.layer_spec({"classifier.5": 0.5}, {}, kind="structured"), digits)
    sweep = {"run": "lenet5-channels", "model": "lenet5", "data": "digits",
             "axes": {"prune": ["structured"], "prune_ratio": [0.0, 0.5]},
             "measure": {"budget_s": 0.02, "runtimes": ["onnxruntime"]},
             "search": {"space": "per-layer", "prune": "structured", "trials": 5,
                        "objectives": ["accuracy", "size"], "max_latency_ms": 1000}}
    # seeded from the grid's front on its objective: on file size (not latency, which a loaded machine reorders:
    # once its 5 trials found no pruned point) the seeds and so the trials are the same every run
    (tmp_path / "s.json").write_text(json.dumps(sweep))
    assert cli.main(["sweep", str(tmp_path / "s.json"), "--store", str(tmp_path / "r.sqlite")]) == 0
    df = Store(tmp_path / "r.sqlite").table("lenet5-channels")
    searched = df[df["family"] == "per-layer"]
    assert len(searched) >= 3 and searched["ort_b1_ms"].notna().all()
    pruned = [label for label in searched["label"] if "prune" in label]
    assert pruned and all("prune channels per layer" in label for label in pruned)
    assert layerwise.compare(df, "latency")[1]["points"] == "per-layer search"


def test_a_graph_model_s_archive_search_is_refused_before_the_grid_runs(tmp_path, mlp):
    from core.engine import sweep

    path = tmp_path / "mlp_ts.pt"
    torch.jit.script(mlp.module).save(str(path))
    cfg = grid.load_config({"model": {"path": str(path), "input_shape": [1, 28, 28]}, "data": "digits",
                            "axes": {"quantize": ["fp32", "w4"]},
                            "search": {"space": "per-layer", "trials": 3}})
    store = Store(tmp_path / "r.sqlite")
    with pytest.raises(grid.SweepError, match="fixed graph .* has no compact archive"):
        sweep.run_sweep(cfg, store)
    assert cfg.run not in set(store.runs()["run"]), "nothing was run or stored"


def test_a_budget_is_said_with_how_many_searched_points_meet_it():
    df = pd.DataFrame([{"family": "per-layer", "status": "ok", "archive_bytes": b} for b in (10, 20, 30)])
    lines = layerwise.budget_lines(df, {"max_bytes": 25})
    assert lines == ["budget: compact archive size <= 25 bytes; 2 of 3 searched points are within it (the search "
                     "steers away from the others)."]


def test_the_comparison_judges_its_floors_on_validation_and_reports_the_test_split():
    rows = [("baseline", 0.98, 0.98, 100.0), ("pruning", 0.975, 0.95, 50.0),  # within 1 pt on validation only
            ("pruning", 0.95, 0.975, 20.0), ("per-layer", 0.972, 0.97, 30.0)]  # within 1 pt on test only: 20.0
    df = pd.DataFrame([{"family": f, "label": f"{f} {b:g}", "status": "ok", "val_accuracy": v, "accuracy": a,
                        "archive_bytes": b} for f, v, a, b in rows])
    grid_row, searched = layerwise.compare(df, floors=(0.01,))
    assert (grid_row["best at -1 pt"], grid_row["judged at -1 pt"], grid_row["accuracy at -1 pt"]) == (50.0, 0.975,
                                                                                                      0.95)
    assert searched["best at -1 pt"] == 30.0 and searched["split"] == "val"
    assert layerwise.compare(df, floors=(0.01,), judge="test")[0]["best at -1 pt"] == 20.0


def test_the_comparison_keeps_a_busy_baseline_as_its_reference_and_leaves_out_other_busy_latencies():
    df = pd.DataFrame([{"family": f, "label": f, "status": "ok", "val_accuracy": 0.98, "accuracy": 0.98,
                        "ort_b1_ms": ms, "ort_b1_busy": busy}
                       for f, ms, busy in (("baseline", 1.0, True), ("pruning", 0.5, True), ("per-layer", 0.7, False))])
    grid_row, searched = layerwise.compare(df, "latency", floors=(0.01,))
    assert (grid_row["busy"], grid_row["best at -1 pt"]) == (1, 1.0)  # the busy 0.5 ms point is left out
    assert (searched["busy"], searched["best at -1 pt"]) == (0, 0.7)
