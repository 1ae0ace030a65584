"""A point is an artefact: its files are kept when it is measured, export starts from them and trains nothing,
the folder stays within its bound without losing a point's numbers, and a point whose files are gone is rebuilt."""
import json

import pytest
import torch

from core.engine import grid, runner, sweep
from core.results import artefacts, export
from core.results.artefacts import Folder
from core.results.store import Store

CONFIG = {"run": "a", "model": "lenet5",
          "axes": {"prune_ratio": [0.0, 0.5], "finetune_epochs": [1], "quantize": ["fp32", "w4"]},
          "measure": {"latency": False}}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("artefacts")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGETRIM_CACHE", str(tmp / "cache"))
    store = Store(tmp / "s.sqlite")
    cfg = grid.load_config(CONFIG)
    sweep.run_sweep(cfg, store)
    model, data = runner.load_context(cfg.model, cfg.data)
    yield store, model, data
    mp.undo()


def _tuned(store):
    """A point that fine-tuned after pruning and has 4-bit weights: rebuilding it would train."""
    return next(p for p in store.points("a") if p.spec.prune is not None and p.spec.quantize is not None)


def test_every_point_keeps_its_archive_and_the_file_it_was_measured_as(swept):
    store, _, _ = swept
    for p in store.points("a"):
        kept = store.artefacts(p.key)
        assert set(kept) == {"archive", "onnx"}, (p.spec.label, kept)
        assert kept["onnx"].stat().st_size == p.metrics.onnx_bytes       # the bytes the point reports
        assert kept["archive"].stat().st_size == p.metrics.archive_bytes
        assert kept["onnx"].parent.parent == store.path.parent / "s.artefacts"


def test_export_from_the_kept_files_trains_nothing_and_is_the_measured_file(swept, tmp_path, monkeypatch):
    store, model, data = swept
    point = _tuned(store)

    def no_training(*args, **kwargs):
        raise AssertionError("an export of a stored point ran a training step")
    monkeypatch.setattr(torch.optim.Adam, "step", no_training)
    monkeypatch.setattr(export.S, "apply", no_training)
    kept = store.artefacts(point.key)
    result = export.export_point(point, model, data, None, tmp_path, kept=kept)
    assert result.source == "kept"
    assert result.path.read_bytes() == kept["onnx"].read_bytes()           # the file that was measured, as it is
    assert result.path.stat().st_size == point.metrics.onnx_bytes
    assert result.reloaded_accuracy == pytest.approx(point.metrics.accuracy, abs=1e-9)
    for fmt in ("archive", "onnx-fp16", "pt2"):                            # other formats: from the kept archive
        other = export.export_point(point, model, data, fmt, tmp_path, kept=kept)
        assert other.source == "kept" and json.loads(other.card_path.read_text())["made_from"] == "kept"


def test_a_point_whose_files_are_gone_is_rebuilt_and_says_so(swept, tmp_path):
    store, model, data = swept
    point = _tuned(store)
    heard = []
    result = export.export_point(point, model, data, "onnx", tmp_path, kept={},
                                 progress=lambda d, t, m: heard.append(m))
    assert result.source == "rebuilt"
    assert any("kept files are gone" in m for m in heard)
    assert abs(result.reloaded_accuracy - point.metrics.accuracy) <= export.TOLERANCE


def test_eviction_keeps_the_folder_within_its_bound_and_every_point_s_numbers(swept, tmp_path):
    store, _, _ = swept
    folder = store.artefact_folder()
    before = {p.key: p.metrics for p in store.points("a")}
    small = Folder(folder.root, limit=folder.size() // 2)
    assert small.evict() > 0 and small.size() <= small.limit
    assert {p.key: p.metrics for p in store.points("a")} == before        # numbers are never evicted
    assert any(len(store.artefacts(k)) < 2 for k in before)               # some files are gone, and said so


def test_the_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("EDGETRIM_ARTEFACTS_GB", "0.5")
    assert artefacts.limit_bytes() == 2**29
    monkeypatch.setenv("EDGETRIM_ARTEFACTS_GB", "lots")
    with pytest.raises(ValueError, match="EDGETRIM_ARTEFACTS_GB"):
        artefacts.limit_bytes()


def test_one_content_is_kept_once(tmp_path):
    folder = Folder(tmp_path / "kept", limit=2**30)
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"same bytes")
    a, b = folder.keep(tmp_path / "a.onnx"), folder.keep(tmp_path / "b.onnx")
    assert a == b and folder.path(a).read_bytes() == b"same bytes"
    assert len(list((tmp_path / "kept").glob("*/*"))) == 1
    (tmp_path / "card.json").write_text("{}")
    assert folder.keep(tmp_path / "card.json") is None                    # only model files are kept


def test_a_busy_latency_is_timed_again_from_the_kept_files(tmp_path, monkeypatch):
    import dataclasses

    from core.cli import main

    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    store = Store(tmp_path / "s.sqlite")
    sweep.run_sweep(grid.load_config({"run": "b", "model": "lenet5", "axes": {"prune_ratio": [0.5]},
                                      "measure": {"latency": True, "budget_s": 0.01}}), store)
    point = next(p for p in store.points("b") if p.spec.prune is not None)
    stale = tuple(dataclasses.replace(l, median_ms=999.0, busy=True) for l in point.metrics.latency)
    store.put(dataclasses.replace(point, metrics=dataclasses.replace(point.metrics, latency=stale)))
    monkeypatch.setattr(torch.optim.Adam, "step", lambda *a, **k: pytest.fail("re-timing trained"))
    assert main(["retime", "b", "--store", str(tmp_path / "s.sqlite")]) in (0, None)
    again = Store(tmp_path / "s.sqlite").get(point.key).metrics.latency
    assert {(l.runtime, l.batch) for l in again} == {(l.runtime, l.batch) for l in stale}
    assert all(l.median_ms < 999.0 for l in again)                         # timed again, not copied
