"""The peers benchmark's own logic, without the peers (they are an optional extra): how user code is counted,
which file fills a cell, and which cells a peer wins."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import peers_report  # noqa: E402
from toolkits import Output, user_lines  # noqa: E402

peers_toolkits = pytest.importorskip("peers_toolkits")  # imports torchao (the executorch extra)


def test_user_lines_count_code_only(tmp_path):
    module = tmp_path / "with_x.py"
    module.write_text('"""A docstring\n\nof three lines."""\nimport x\n\n# a comment\n\ndef compress(job):\n'
                      '    """One line."""\n    return [x.go(job)]  # trailing comment counts\n')
    assert user_lines(module) == 3


def _scored(tool, label, val, size, ms, drop):
    return peers_toolkits.Scored(tool, Output(label, Path(f"{label}.onnx"), "onnxruntime"), val, val, size, drop, ms)


def test_a_cell_holds_the_smallest_and_the_fastest_file_at_the_floor_judged_on_validation():
    files = [_scored("edgetrim", "small", 0.990, 100, 2.0, 0.5), _scored("edgetrim", "fast", 0.992, 400, 0.5, 0.5),
             _scored("edgetrim", "too lossy", 0.980, 50, 0.1, 0.5),
             _scored("nncf", "int8", 0.994, 300, 1.0, None)]  # made once: counts at every floor
    cells = peers_toolkits.cells(files, base_val=0.995, tools=["edgetrim", "nncf"])
    assert cells["edgetrim@0.5"]["smallest"]["label"] == "small"
    assert cells["edgetrim@0.5"]["fastest"]["label"] == "fast"
    assert cells["edgetrim@0.1"]["smallest"] is None  # nothing within 0.1 point of 99.5 %
    assert cells["nncf@0.1"]["smallest"]["label"] == "int8" and cells["nncf@1.0"]["fastest"]["ms"] == 1.0
    assert peers_report.losses({"cells": cells}) == ["NNCF smaller at 0.1 point", "NNCF faster at 0.1 point",
                                                     "NNCF smaller at 1.0 point", "NNCF faster at 1.0 point"]
    files += [_scored("edgetrim", "tight", 0.9945, 90, 0.96, 0.1), _scored("edgetrim", "loose", 0.99, 100, 2.0, 1.0)]
    cells = peers_toolkits.cells(files, base_val=0.995, tools=["edgetrim", "nncf"])
    # 0.1: 0.96 ms against 1.0 ms, within the 5 % timing slack; 1.0: NNCF's 1.0 ms beats edgetrim's 2.0 ms
    assert peers_report.losses({"cells": cells}) == ["NNCF faster at 1.0 point"]
