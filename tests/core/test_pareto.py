import pandas as pd
import pytest

from core.results import pareto

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

    from core.results import pareto

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
    within = {r["family"]: r for r in pareto.best_per_family(df, 0.97, "size",
                                                             budgets={"ort_b1_ms": 1.0}).to_dict("records")}
    assert within["pruning"]["key"] == "p50" and within["pruning"]["met_floor"]  # 0.6 ms: within
    assert not within["quantization"]["met_floor"]  # q8 is at the floor but takes 1.2 ms: nothing within both


# ---- judged on validation, reported on test; busy latencies left out ------------------------------------------

JUDGED = [  # key, family, val accuracy, test accuracy, onnx_bytes, ort_b1_ms, ort_b1_busy
    ("base", "baseline", 0.99, 0.99, 1000, 1.0, False),
    ("v", "pruning", 0.985, 0.96, 600, 0.8, False),   # at a 98 % floor on validation only
    ("t", "pruning", 0.95, 0.985, 300, 0.5, False),   # at a 98 % floor on the test split only, and smaller
    ("fast", "quantization", 0.99, 0.99, 900, 0.1, True),  # the fastest, but timed on a busy machine
]


@pytest.fixture
def judged_df():
    return pd.DataFrame([{"key": k, "family": f, "label": k, "status": "ok", "val_accuracy": v, "accuracy": a,
                          "onnx_bytes": s, "ort_b1_ms": l, "ort_b1_busy": b} for k, f, v, a, s, l, b in JUDGED])


def test_a_pick_judges_the_floor_on_validation_and_reports_the_test_split(judged_df):
    choice = pareto.pick(judged_df, 0.98, "size")
    assert choice.row["key"] == "v" and choice.judge == "val" and not choice.judge_note
    assert choice.message == ("v: 98.50 % on validation (floor 98.00 %, baseline 99.00 %), 96.00 % on the test "
                              "split; the smallest ONNX file size at the floor: 600 B.")
    assert pareto.baseline_accuracy(judged_df.assign(val_accuracy=[0.97, 0.9, 0.9, 0.9])) == 0.97
    assert pareto.resolve_floor(pareto.baseline_accuracy(judged_df.assign(accuracy=0.5)), max_drop=1) == \
        pytest.approx(0.98)  # a drop from the baseline's validation accuracy
    nothing = pareto.pick(judged_df, 0.995, "size")
    assert nothing.message.startswith("No point reaches the floor of 99.50 % on validation (baseline 99.00 %)")
    assert "(99.00 % on the test split)" in nothing.message


def test_judge_on_test_switches_the_split(judged_df):
    choice = pareto.pick(judged_df, 0.98, "size", judge="test")
    assert choice.row["key"] == "t" and choice.judge == "test"
    assert choice.message.startswith("t: 98.50 % on the test split (floor 98.00 %, baseline 99.00 %); the smallest")
    assert set(pareto.front(judged_df, ["accuracy", "size"], judge="test")["key"]) == {"t", "fast"}
    with pytest.raises(pareto.PickError, match="val .* or test"):
        pareto.pick(judged_df, 0.98, judge="train")


def test_fronts_and_each_family_s_best_are_judged_on_validation(judged_df):
    assert set(pareto.front(judged_df, ["accuracy", "size"])["key"]) == {"v", "t", "fast"}
    best = {r["family"]: r for r in pareto.best_per_family(judged_df, 0.98, "size").to_dict("records")}
    assert best["pruning"]["key"] == "v" and best["pruning"]["met_floor"]
    assert best["pruning"]["judged_accuracy"] == 0.985 and best["pruning"]["accuracy"] == 0.96


def test_points_stored_before_validation_was_recorded_judge_the_whole_table_on_test(judged_df):
    old = judged_df.assign(val_accuracy=[None, 0.985, None, 0.99])
    assert pareto.judged_split(old) == ("test", "Judged on the test split, not on validation: 2 of 4 measured "
                                                "point(s) have no validation accuracy (stored before edgetrim "
                                                "recorded it).")
    choice = pareto.pick(old, 0.98, "size")
    assert choice.row["key"] == "t" and choice.judge == "test" and choice.judge_note.startswith("Judged on the test")
    assert pareto.pick(judged_df.drop(columns="val_accuracy"), 0.98, "size").judge == "test"  # a table from before


def test_on_runtime_maps_each_runtime_s_validation_accuracy_and_busy_flag(judged_df):
    df = judged_df.assign(pte_accuracy=0.9, pte_val_accuracy=0.91, pte_bytes=100, et_b1_ms=2.0, et_b1_busy=False,
                          torch_accuracy=0.97, state_dict_bytes=50, torch_b1_ms=3.0, torch_b1_busy=True)
    et = pareto.on_runtime(df, "executorch")
    assert list(et["val_accuracy"]) == [0.91] * 4 and not et["ort_b1_busy"].any()
    torch = pareto.on_runtime(df, "pytorch")
    assert torch["val_accuracy"].isna().all() and torch["ort_b1_busy"].all()  # never ONNX Runtime's in their place
    split, why = pareto.judged_split(torch, runtime="pytorch")
    assert split == "test" and "PyTorch's accuracy is recorded on the test split only" in why
    assert pareto.pick(df, 0.9, "size", runtime="executorch").message.startswith(
        "base on ExecuTorch: 91.00 % on validation (floor 90.00 %, baseline 91.00 %), 90.00 % on the test split")


def test_busy_latencies_are_left_out_of_latency_fronts_picks_and_budgets_and_counted(judged_df):
    assert "fast" not in set(pareto.front(judged_df, ["accuracy", "latency"])["key"])
    assert "fast" in set(pareto.front(judged_df, ["accuracy", "size"])["key"])  # its size is still good
    assert pareto.busy_count(judged_df, ["accuracy", "latency"]) == 1
    assert pareto.busy_count(judged_df, ["accuracy", "size"]) == 0
    choice = pareto.pick(judged_df, 0.98, "latency")
    assert choice.row["key"] == "v" and choice.busy_left_out == 1
    assert "Left out: 1 point(s) whose latency was timed on a busy machine." in choice.message
    budget = pareto.pick(judged_df, 0.98, "size", max_latency_ms=0.9)
    assert budget.row["key"] == "v" and budget.busy_left_out == 1
    assert pareto.pick(judged_df, 0.98, "size").busy_left_out == 0  # a size pick keeps it
    assert "fast" not in set(pareto.best_per_family(judged_df, 0.98, "latency")["key"])
    with pytest.raises(pareto.PickError, match="busy machine"):
        pareto.pick(judged_df.assign(ort_b1_busy=True), 0.98, "latency")
    # only busy points reach the floor: said so, not "no point reaches the floor"
    with pytest.raises(pareto.PickError, match=r"Every point at the floor of 98.80 % \(2\) had its latency timed on a "
                                               r"busy machine; time them again .*edgetrim retime RUN"):
        pareto.pick(judged_df.assign(ort_b1_busy=[True, False, False, True]), 0.988, "latency")


def test_points_frame_has_validation_accuracies_and_busy_flags():
    from core.methods import spec as S
    from core.results.store import Point, points_frame
    from core.runtimes import measure as ME

    lat = (ME.Latency("onnxruntime", 1, 1.0, 1.1, 10, 1), ME.Latency("pytorch", 1, 2.0, 2.1, 10, 1, busy=True),
           ME.Latency("onnxruntime", 32, 9.0, 9.1, 10, 1, busy=True))
    files = (ME.DeployedFile("onnxruntime", 10, 0.9, "1", 0.91), ME.DeployedFile("executorch", 9, 0.8, "1", 0.81))
    m = ME.Metrics(0.9, None, 100, 10, 10, None, 10, 10, 10, lat, files=files, val_accuracy=0.91)
    old = ME.Metrics.from_dict({k: v for k, v in ME.Metrics(0.9, None, 100, 10, 10, None, 10, 10, 10).to_dict().items()
                                if k != "val_accuracy"})  # stored before it was recorded
    spec = S.Spec()
    row, before = points_frame([Point("a", "m", "f", "d", "g", spec, "ok", m),
                                Point("b", "m", "f", "d", "g", spec, "ok", old)]).to_dict("records")
    assert (row["val_accuracy"], row["pte_val_accuracy"]) == (0.91, 0.81)
    assert row["busy"] and not row["ort_b1_busy"] and row["torch_b1_busy"] and not row["et_b1_busy"]
    assert pd.isna(before["val_accuracy"]) and before["busy"] is False
