"""The figures and the units a person reads: plain functions, no Streamlit session needed."""
import pandas as pd
import pytest

from dashboard import figures, fmt


def test_sizes_times_counts_and_deltas_read_in_human_units():
    assert fmt.size(871) == "871 B" and fmt.size(76658) == "74.9 KB" and fmt.size(3 * 2**20) == "3.0 MB"
    assert fmt.size_delta(215_501, 249_309) == "-33.0 KB (-14 %)"  # not "-33,808.0"
    assert fmt.count_delta(33_000, 66_808) == "-33.81 k (-51 %)"
    assert fmt.ms(0.0412) == "0.041 ms" and fmt.ms(52.38) == "52.38 ms"
    assert fmt.points_delta(0.97, 0.98) == "-1.00 pt" and fmt.points_delta(0.98, 0.98) is None


@pytest.mark.parametrize("raw, rename, expected", [
    ("\x1b[31mTorchExportError: ProxyTorchDispatchMode slot already occupied\x1b[0m. More.\n  File \"x.py\"", None,
     "ProxyTorchDispatchMode slot already occupied."),
    ("/c/uploads/f332c85309c245c50373.pt is truncated or not a PyTorch file (101).",
     {"/c/uploads/f332c85309c245c50373.pt": "mine.pt"}, "mine.pt is truncated or not a PyTorch file."),
    ("Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    f()\nValueError: bad input",
     None, "bad input."),
])
def test_an_error_becomes_one_sentence(raw, rename, expected):
    assert fmt.one_sentence(raw, rename) == expected


@pytest.mark.parametrize("p10", [True, False])  # points stored before p10 was recorded: a whisker up only
def test_latency_bars_show_median_with_a_p10_p90_whisker_clipped_at_a_few_medians(p10):
    rows = [dict(runtime="onnxruntime", batch=1, median_ms=0.39, p90_ms=75.0, repeats=200, threads=2, p10_ms=0.35),
            dict(runtime="onnxruntime", batch=32, median_ms=4.0, p90_ms=4.5, repeats=60, threads=2, p10_ms=3.8),
            dict(runtime="pytorch", batch=1, median_ms=0.5, p90_ms=0.6, repeats=150, threads=2, p10_ms=0.45),
            dict(runtime="pytorch", batch=32, median_ms=6.0, p90_ms=7.0, repeats=40, threads=2, p10_ms=5.5)]
    fig, clipped = figures.latency_bars([{k: v for k, v in r.items() if p10 or k != "p10_ms"} for r in rows])
    assert clipped == 1
    for bar in fig.data:
        assert not bar.error_y.symmetric
        for median, up, down in zip(bar.y, bar.error_y.array, bar.error_y.arrayminus):
            assert 0 <= up <= (figures.CLIP - 1) * median + 1e-9  # a 75 ms p90 cannot dwarf a 0.39 ms bar
            assert 0 <= down < median  # never below zero
            assert (down > 0) == p10


def test_sensitivity_heatmap_has_equal_columns_and_paints_a_drop_red():
    rows = [{"layer": "(none)", "ratio": 0.0, "accuracy": 0.98}]
    for layer in ("conv1", "fc"):
        for r, acc in ((0.25, 0.98), (0.5, 0.97), (0.75, 0.90), (0.9, 0.60)):
            rows.append({"layer": layer, "ratio": r, "accuracy": acc})
    fig = figures.sensitivity_heatmap(rows)
    heat = fig.data[0]
    assert list(heat.x) == ["25 %", "50 %", "75 %", "90 %"] and fig.layout.xaxis.type == "category"
    assert heat.zmax == 0 and heat.z[0][3] == heat.zmin  # 60 % after 98 %: a 38-point drop, the red end
    assert heat.colorscale[0][1] == figures.DROP_SCALE[0][1] == "#b91c1c"


def test_tradeoff_draws_both_rings_and_human_units():
    df = pd.DataFrame({"run": "r", "key": ["a", "b", "c"], "label": ["baseline", "w4", "w2"],
                       "family": ["baseline", "quantization", "quantization"], "status": "ok",
                       "accuracy": [0.98, 0.97, 0.6], "archive_bytes": [227_735, 29_179, 9_619]})
    fig = figures.tradeoff(df, "archive", 0.97, recommended="b", selected="b")
    names = [t.name for t in fig.data]
    assert "recommended" in names and "selected" in names
    rec, sel = (next(t for t in fig.data if t.name == n) for n in ("recommended", "selected"))
    assert rec.marker.size > sel.marker.size and rec.marker.symbol != sel.marker.symbol  # both visible on one point
    assert "KB" in fig.layout.xaxis.title.text and max(fig.data[0].x) < 300  # KB on the axis, not bytes
    assert any(t.mode == "lines" for t in fig.data)  # the quantization front


def test_tradeoff_plots_the_judged_split_and_crosses_out_busy_latencies():
    df = pd.DataFrame({"run": "r", "key": ["a", "b", "c"], "label": ["baseline", "p50", "p90"],
                       "family": ["baseline", "pruning", "pruning"], "status": "ok", "accuracy": [0.98, 0.97, 0.9],
                       "val_accuracy": [0.985, 0.975, 0.91], "ort_b1_ms": [1.0, 0.2, 0.5],
                       "ort_b1_busy": [False, True, False]})
    fig = figures.tradeoff(df, "latency", 0.95, judge="val")
    assert fig.layout.yaxis.title.text.startswith("validation accuracy")
    assert max(fig.data[0].y) == pytest.approx(98.5) and " (test 98.00 %)" in list(fig.data[0].customdata[0])
    crossed = next(t for t in fig.data if t.name and "busy machine" in t.name)
    assert list(crossed.x) == [0.2]
    pruning_front = [t for t in fig.data if t.mode == "lines"]
    assert all(0.2 not in list(t.x) for t in pruning_front)  # the busy point is left out of the fronts
    fronts = figures.runtime_fronts(df.assign(torch_accuracy=0.9, torch_b1_ms=2.0, torch_b1_busy=False),
                                    ["onnxruntime", "pytorch"], 0.95)
    assert fronts.layout.yaxis.title.text == "validation accuracy (test for PyTorch) of that runtime's file (%)"
