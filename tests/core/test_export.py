import json
import os

import pytest

from core.engine import grid, runner, sweep
from core.methods.prune import UnstructuredPrune
from core.results import export, pareto
from core.results.store import Store


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    os.environ["EDGETRIM_CACHE"] = str(tmp / "cache")
    store = Store(tmp / "s.sqlite")
    cfg = grid.load_config({"run": "e", "model": "lenet5", "axes": {"prune_ratio": [0.0, 0.6],
                             "quantize": ["fp32", "int8", "w4"]}, "measure": {"latency": False}})
    sweep.run_sweep(cfg, store)
    model, data = runner.load_context(cfg.model, cfg.data)
    return store, model, data


def _pick(store, floor=None, max_drop=1.0, objective="size"):
    df = store.table("e")
    return store.get(pareto.pick(df, pareto.resolve_floor(pareto.baseline_accuracy(df), floor, max_drop),
                                 objective).row["key"])


def test_a_picked_point_exports_and_rescores_within_tolerance_in_onnx_runtime(swept, tmp_path):
    store, model, data = swept
    point = _pick(store)
    result = export.export_point(point, model, data, None, tmp_path / "best.onnx")
    assert abs(result.reloaded_accuracy - point.metrics.accuracy) <= 0.003
    card = json.loads(result.card_path.read_text())
    assert card["spec_hash"] == point.spec.hash and card["bytes"] == result.path.stat().st_size
    assert card["format"] == export.default_format(point.spec) and card["input_shape"] == [1, 28, 28]
    assert "InferenceSession" in card["how_to_load"]


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "archive", "onnx-fp16"])
def test_every_format_reloads(swept, tmp_path, fmt):
    store, model, data = swept
    point = next(p for p in store.points("e") if p.spec.prune == UnstructuredPrune(0.6))
    result = export.export_point(point, model, data, fmt, tmp_path)
    assert result.path.suffix == export.suffix(fmt) and result.path.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")], "no temporary file left behind"


def test_several_formats_of_one_point_in_one_folder_keep_their_own_files_and_cards(swept, tmp_path):
    store, model, data = swept
    point = next(p for p in store.points("e") if p.spec.prune == UnstructuredPrune(0.6))
    results = [export.export_point(point, model, data, fmt, tmp_path) for fmt in ("onnx", "onnx-fp16", "onnx-int8")]
    assert results[2].path.name == f"lenet5-{point.spec.hash}-onnx-int8.onnx"
    assert sorted(os.listdir(tmp_path)) == sorted([r.path.name for r in results] + [r.card_path.name for r in results])
    assert [json.loads(r.card_path.read_text())["format"] for r in results] == ["onnx", "onnx-fp16", "onnx-int8"]
    into_new = export.export_point(point, model, data, "onnx", f"{tmp_path}/new/")  # "-o new/": a folder, made
    assert into_new.path.parent == tmp_path / "new" and into_new.path.name == results[0].path.name


def test_an_export_that_does_not_verify_leaves_no_file(swept, tmp_path):
    store, model, data = swept
    point = next(p for p in store.points("e") if p.spec.prune == UnstructuredPrune(0.6))
    lying = type(point)(**{**point.__dict__, "metrics": type(point.metrics)(**{**point.metrics.__dict__,
                                                                            "accuracy": 0.5})})
    with pytest.raises(export.ExportError, match="more than 0.3 point apart"):
        export.export_point(lying, model, data, "onnx", tmp_path / "x.onnx")
    assert os.listdir(tmp_path) == []


def test_export_path_errors(swept, tmp_path):
    store, model, data = swept
    point = _pick(store)
    with pytest.raises(export.ExportError, match="does not exist"):
        export.export_point(point, model, data, None, tmp_path / "missing" / "x.onnx")
    with pytest.raises(export.ExportError, match="not writable"):
        export.export_point(point, model, data, None, "/sys/edgetrim-test.onnx")  # refused even to root


def test_search_trials_land_in_the_same_store(tmp_path):
    store = Store(tmp_path / "search.sqlite")
    cfg = grid.load_config({"run": "opt", "model": "mlp", "axes": {"prune_ratio": [0.0, 0.5, 0.8],
                             "quantize": ["fp32", "w4", "w2"]}, "measure": {"latency": False},
                             "search": {"trials": 4, "sampler": "tpe"}})
    result = sweep.run_sweep(cfg, store)
    df = store.table("opt")
    assert result.total == 5 and len(df) >= 2 and "baseline" in set(df["family"])
    assert (df["status"] == "ok").all()
