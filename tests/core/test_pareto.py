import pandas as pd
import pytest

from core import pareto

ROWS = [  # key, family, accuracy, onnx_bytes, ort_b1_ms
    ("base", "baseline", 0.98, 1000, 1.0),
    ("q8", "quantization", 0.98, 300, 1.2),
    ("q4", "quantization", 0.96, 150, 1.2),
    ("p50", "pruning", 0.975, 600, 0.6),
    ("p90", "pruning", 0.90, 100, 0.4),
    ("bad", "pruning", 0.90, 700, 0.9),      # dominated by p90 on (acc, size) and (acc, latency)
    ("dup", "quantization", 0.98, 300, 1.2),  # the same numbers as q8
]


@pytest.fixture
def df():
    return pd.DataFrame([{"key": k, "family": f, "label": k, "status": "ok", "accuracy": a, "onnx_bytes": s,
                          "ort_b1_ms": l} for k, f, a, s, l in ROWS])


def test_dominates():
    assert pareto.dominates((0.9, 100), (0.8, 100), ("max", "min"))
    assert not pareto.dominates((0.9, 100), (0.9, 100), ("max", "min"))
    assert not pareto.dominates((0.9, 200), (0.8, 100), ("max", "min"))


def test_accuracy_size_front(df):
    assert set(pareto.front(df, ["accuracy", "size"])["key"]) == {"q8", "q4", "p90"}


def test_accuracy_latency_front(df):
    assert set(pareto.front(df, ["accuracy", "latency"])["key"]) == {"base", "p50", "p90"}


def test_three_objective_front_and_per_family(df):
    assert set(pareto.front(df, ["accuracy", "size", "latency"])["key"]) == {"base", "q8", "q4", "p50", "p90"}
    per = pareto.front(df, ["accuracy", "size"], by="family")
    assert set(per[per["family"] == "pruning"]["key"]) == {"p50", "p90"}


def test_pick_smallest_and_fastest_above_floors(df):
    assert pareto.pick(df, 0.97, "size").row["key"] == "q8"
    assert pareto.pick(df, 0.95, "size").row["key"] == "q4"
    assert pareto.pick(df, 0.97, "latency").row["key"] == "p50"
    floor = pareto.resolve_floor(pareto.baseline_accuracy(df), max_drop=1.0)
    assert floor == pytest.approx(0.97)
    assert pareto.pick(df, floor, "size").met_floor


def test_an_unreachable_floor_says_so_and_returns_the_closest(df):
    choice = pareto.pick(df, 0.99, "size")
    assert not choice.met_floor and choice.row["key"] == "q8"
    assert choice.message.startswith("No point reaches the floor of 99.00 %")


@pytest.mark.parametrize("kwargs, message", [
    ({"floor": 1.5}, r"fraction in \[0, 1\]"),
    ({"floor": -0.1}, r"fraction in \[0, 1\]"),
    ({"max_drop": -1}, "from 0 to 100"),
    ({}, "exactly one"),
    ({"floor": 0.9, "max_drop": 1}, "exactly one"),
])
def test_bad_floors(kwargs, message):
    with pytest.raises(pareto.PickError, match=message):
        pareto.resolve_floor(0.98, **kwargs)


def test_a_pick_says_which_points_it_left_out_and_why():
    import pandas as pd

    from core import pareto

    df = pd.DataFrame([
        {"key": "b", "family": "baseline", "label": "baseline", "status": "ok", "accuracy": 0.98, "ort_b1_ms": 1.0},
        {"key": "p", "family": "pruning", "label": "p", "status": "ok", "accuracy": 0.97, "ort_b1_ms": None},
    ])
    pick = pareto.pick(df, 0.9, "latency")
    assert pick.row["key"] == "b" and "Left out: 1 point(s) with no ONNX Runtime latency" in pick.message
    with pytest.raises(pareto.PickError, match="has a compact archive size \\(TorchScript"):
        pareto.pick(df.assign(archive_bytes=None), 0.9, "archive")


def test_each_family_best_at_the_floor_and_the_families_that_miss_it(df):
    best = pareto.best_per_family(df, 0.97, "size")
    rows = {r["family"]: r for r in best.to_dict("records")}
    assert (rows["quantization"]["key"], rows["pruning"]["key"], rows["baseline"]["key"]) == ("q8", "p50", "base")
    assert rows["pruning"]["factor"] == pytest.approx(1000 / 600) and all(best["met_floor"])
    latency = {r["family"]: r for r in pareto.best_per_family(df, 0.97, "latency").to_dict("records")}
    assert latency["quantization"]["factor"] == pytest.approx(1 / 1.2)  # slower than the baseline: below 1
    high = {r["family"]: r for r in pareto.best_per_family(df, 0.979, "size").to_dict("records")}
    assert not high["pruning"]["met_floor"] and high["pruning"]["key"] == "p50"  # its most accurate try
