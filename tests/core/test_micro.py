"""Microcontrollers: a .tflite file's flash and RAM (TFLM's arena where tflite-micro runs, else a greedy plan),
the boards, and picks under a flash and RAM budget."""
import pandas as pd
import pytest

from core.results import pareto
from core.runtimes import micro


def test_the_greedy_plan_reuses_memory_of_tensors_no_longer_alive():
    # a chain a -> b -> c: a and c never live together, so c reuses a's bytes; b sits beside both
    assert micro.greedy_plan([(100, 0, 1), (50, 1, 2), (100, 2, 3)]) == 150
    # all alive at once: the sum
    assert micro.greedy_plan([(100, 0, 3), (50, 0, 3), (30, 0, 3)]) == 180
    # a small buffer fits in the gap a freed one leaves below a live one
    assert micro.greedy_plan([(64, 0, 1), (128, 0, 5), (32, 2, 3)]) == 192
    assert micro.greedy_plan([]) == 0


def test_boards_are_named_with_their_limits_and_an_unknown_one_is_said():
    b = micro.board("nano33ble")
    assert (b.flash_kb, b.ram_kb) == (1024, 256) and "nRF52840" in b.chip
    assert b.fits(1024 * 1024, 256 * 1024) and not b.fits(1024 * 1024 + 1, 1) and not b.fits(10, None)
    with pytest.raises(ValueError, match="'esp99' is not a board edgetrim knows; boards are nano33ble, pico"):
        micro.board("esp99")


ROWS = [  # key, family, val accuracy, tflite bytes (flash), arena bytes (RAM)
    ("base", "baseline", 0.99, 700_000, 300_000),
    ("p50", "pruning", 0.985, 400_000, 280_000),
    ("int8", "quantization", 0.985, 180_000, 90_000),
    ("int8-small", "quantization", 0.95, 60_000, 40_000),
]


@pytest.fixture
def lite():
    return pd.DataFrame([{"key": k, "family": f, "label": k, "status": "ok", "accuracy": a, "val_accuracy": a,
                          "onnx_bytes": 1, "tflite_accuracy": a, "tflite_val_accuracy": a, "tflite_bytes": fl,
                          "tflite_ram_bytes": ram, "ram_bytes": None} for k, f, a, fl, ram in ROWS])


def test_a_pick_under_flash_and_ram_budgets_on_litert(lite):
    choice = pareto.pick(lite, 0.98, "size", runtime="litert", max_bytes=1024 * 1024, max_ram_bytes=256 * 1024)
    assert choice.row["key"] == "int8" and choice.met_budget
    assert "within 1,024 KB of flash and 256 KB of RAM" in choice.message
    smallest_ram = pareto.pick(lite, 0.98, "ram", runtime="litert")
    assert smallest_ram.row["key"] == "int8" and "RAM" in smallest_ram.message


def test_the_closest_point_that_misses_ram_is_named_with_how_much(lite):
    choice = pareto.pick(lite.drop(index=2), 0.98, "size", runtime="litert", max_ram_bytes=256 * 1024)
    assert choice.met_floor and not choice.met_budget and choice.row["key"] == "p50"
    # 280,000 bytes = 273.4 KB against 256 KB: 17.4 KB (7 %) over
    assert "the closest is p50" in choice.message
    assert "RAM (tensor arena) 273.4 KB against 256 KB, 17.4 KB (7 %) over" in choice.message


def test_a_file_tflite_micro_cannot_run_fits_no_board_and_is_left_out_of_ram_picks(lite):
    refused = f"{micro.CANNOT_RUN} (Input type: FLOAT32 with filter type: INT4 not supported)"
    assert not micro.board("portenta-h7").fits(10, 10, refused) and micro.board("portenta-h7").fits(10, 10, "planner")
    small = pd.concat([lite, pd.DataFrame([{**lite.iloc[2].to_dict(), "key": "int4", "label": "int4",
                                            "tflite_bytes": 30_000, "tflite_ram_bytes": 20_000,
                                            "tflite_ram_source": refused}])], ignore_index=True)
    choice = pareto.pick(small, 0.98, "size", runtime="litert", max_ram_bytes=256 * 1024)
    assert choice.row["key"] == "int8" and "Left out: 1 point(s) whose file TFLite Micro cannot run" in choice.message
    assert pareto.pick(small, 0.98, "size", runtime="litert").row["key"] == "int4"  # no device budget: it counts


def test_ram_is_only_judged_on_litert(lite):
    with pytest.raises(pareto.PickError, match="RAM is measured for LiteRT files"):
        pareto.pick(lite, 0.98, "size", runtime="onnxruntime", max_ram_bytes=1000)
    with pytest.raises(pareto.PickError, match="RAM budget is a positive number"):
        pareto.pick(lite, 0.98, "size", runtime="litert", max_ram_bytes=-1)
    with pytest.raises(pareto.PickError, match="No point of the run has a RAM figure on LiteRT"):
        pareto.pick(lite.assign(tflite_ram_bytes=None), 0.98, "size", runtime="litert", max_ram_bytes=1000)


def _args(**given):
    import argparse

    base = dict(board=None, max_flash_kb=None, max_ram_kb=None, max_bytes=None, runtime=None, objective="size")
    return argparse.Namespace(**{**base, **given})


def test_the_command_line_turns_a_board_and_limits_into_litert_budgets(capsys):
    from core.cli.common import UsageError, device_budgets

    args = _args(board="Nano33BLE")
    assert device_budgets(args) == (1024 * 1024, 256 * 1024) and args.runtime == "litert"
    args = _args(board="nano33ble", max_ram_kb=1000, max_bytes=500_000)  # a limit given wins; the least flash
    assert device_budgets(args) == (500_000, 1000 * 1024)
    assert "1,000 KB of RAM is more than nano33ble's 256 KB" in capsys.readouterr().err
    args = _args(objective="ram")
    assert device_budgets(args) == (None, None) and args.runtime == "litert"
    args = _args()
    assert device_budgets(args) == (None, None) and args.runtime == "onnxruntime"
    with pytest.raises(UsageError, match="--max-ram-kb is a positive number of KB, not -5"):
        device_budgets(_args(max_ram_kb=-5))
    with pytest.raises(UsageError, match="judged on LiteRT files.* not executorch"):
        device_budgets(_args(max_ram_kb=5, runtime="executorch"))
    with pytest.raises(UsageError, match="'esp99' is not a board"):
        device_budgets(_args(board="esp99"))
