"""The frontier benchmark's own logic on the digits sample: the accuracy-against-budget curve it logs each epoch,
and the floors judged on validation."""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frontier  # noqa: E402

from core.methods import variational as V  # noqa: E402


def test_each_variational_epoch_lands_in_the_curve(mlp, digits, tmp_path, monkeypatch):
    monkeypatch.setattr(frontier, "RESULTS", tmp_path / "frontier.csv")
    V.sparsify(mlp, V.VariationalDropout(epochs=2), digits, progress=frontier.curve_logger("mlp", "vd", 2))
    with open(tmp_path / "frontier_epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["budget"] == "2" for r in rows)
    assert all(80 < float(r["val %"]) <= 100 and 0 < float(r["weights kept %"]) <= 100 for r in rows)


def test_a_floor_is_judged_on_validation_and_reported_on_test(monkeypatch):
    class Base:
        val_accuracy, accuracy, onnx_bytes = 0.99, 0.99, 1000
    monkeypatch.setattr(frontier.ME, "measure", lambda *a, **k: Base)
    monkeypatch.setattr(frontier.M, "load_sample", lambda name: None)
    monkeypatch.setattr(frontier.M, "sample_card", lambda name: {"data": "digits"})
    monkeypatch.setattr(frontier, "load_data", lambda name: None)
    rows = [{"label": "small, good on test only", "val %": "98.5", "test %": "99.0", "archive bytes": "10",
             "weights kept %": "1", "compression": "100"},
            {"label": "bigger, good on validation", "val %": "98.95", "test %": "98.7", "archive bytes": "20",
             "weights kept %": "2", "compression": "50"}]
    best = [r for r in frontier.best_rows("lenet5_mnist", rows) if r["floor (val)"] != "paper"]
    assert [r["method"] for r in best] == ["bigger, good on validation", "small, good on test only"]
    assert best[0]["error before → after (test %)"] == "1.00 → 1.30"   # reported on test
