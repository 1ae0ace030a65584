"""Bad input, one table: each row feeds edgetrim something wrong and asserts the one-sentence message."""
import zipfile

import numpy as np
import pytest
import torch

from core.engine import grid
from core.inputs import data as D
from core.inputs import models as M
from core.results import pareto
from core.results.store import SCHEMA_VERSION, Store


def _state_dict(tmp, name="w.pt", **override):
    sd = {k: v.clone() for k, v in M.load_sample("lenet5").module.state_dict().items()}
    sd.update(override)
    torch.save(sd, tmp / name)
    return tmp / name


def _zip(tmp, members: dict[str, bytes], name="d.zip", compress=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(tmp / name, "w", compress) as z:
        for n, b in members.items():
            z.writestr(n, b)
    return tmp / name


def _newer_store(tmp):
    import sqlite3

    Store(tmp / "s.sqlite").close()
    con = sqlite3.connect(tmp / "s.sqlite")
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    return Store(tmp / "s.sqlite")


def _sweep(**axes):
    return grid.load_config({"model": "mlp", "axes": axes})


def _npz(tmp, **arrays):
    np.savez(tmp / "d.npz", **arrays)
    return D.load_npz(tmp / "d.npz")


def _image_folder_with_text(tmp):
    (tmp / "imgs" / "a").mkdir(parents=True)
    (tmp / "imgs" / "b").mkdir()
    (tmp / "imgs" / "a" / "readme.txt").write_text("hi")
    return D.load_image_folder(tmp / "imgs")


def _wrong_classes(tmp):
    from core.runtimes.measure import measure

    x = np.random.default_rng(0).random((120, 28, 28)).astype(np.float32)
    np.savez(tmp / "d.npz", x=x, y=np.arange(120) % 12)
    return measure(M.load_sample("lenet5"), D.load_npz(tmp / "d.npz"), latency=False)


CASES = [
    ("not a model", lambda t: M.load_model(t / "x.pt", arch="lenet5") if (t / "x.pt").write_text("hello") else 0,
     "truncated or not a PyTorch file"),
    ("truncated file", lambda t: M.load_model(t / "c.pt", arch="lenet5") if (t / "c.pt").write_bytes(
        _state_dict(t).read_bytes()[:3000]) else 0, "truncated or corrupt"),
    ("state_dict of another architecture", lambda t: M.load_model(_state_dict(t), arch="mlp"),
     "does not fit mlp: it has a tensor 'features.0.weight'"),
    ("wrong tensor shape", lambda t: M.load_model(_state_dict(t, **{"classifier.5.weight": torch.zeros(7, 84)}),
                                                  arch="lenet5"), "does not fit lenet5: tensor .classifier.5.bias. has shape"),
    ("unknown torchvision architecture", lambda t: M.build("tv:resnet1000", 10, (3, 32, 32)),
     "torchvision has no classification architecture named 'resnet1000'"),
    ("output is not class scores", lambda t: M.check_classifier(torch.nn.Identity(), (1, 8, 8), "id.pt"),
     "does not output one class-score vector"),
    ("NaN weights", lambda t: M.load_model(_state_dict(t, **{"features.0.bias": torch.full((6,), float("nan"))}),
                                           arch="lenet5"), "NaN or infinite values in 'features.0.bias'"),
    ("inf weights", lambda t: M.load_model(_state_dict(t, **{"features.0.bias": torch.full((6,), float("inf"))}),
                                           arch="lenet5"), "NaN or infinite values"),
    ("missing model file", lambda t: M.load_model(t / "nope.pt", arch="lenet5"), "No model file at"),
    ("weights without an architecture", lambda t: M.load_model(_state_dict(t)), "holds only weights"),
    ("data with the wrong shape", lambda t: D.split(np.zeros((20, 4, 8, 8)), np.arange(20) % 2, "d"),
     "neither 1 nor 3 channels"),
    ("more classes than the model", _wrong_classes, "has 12 classes but lenet5 scores only 10"),
    ("labels out of range", lambda t: D.split(np.zeros((20, 8, 8)), np.arange(20) % 2 - 1, "d"), "out of range"),
    ("empty data", lambda t: D.split(np.zeros((0, 8, 8)), np.zeros(0), "d"), "is empty"),
    ("a single class", lambda t: D.split(np.zeros((20, 8, 8)), np.zeros(20), "d"), "single class"),
    ("npz without x", lambda t: _npz(t, images=np.zeros((4, 8, 8)), y=np.zeros(4)), "no array named 'x'"),
    ("npz without y", lambda t: _npz(t, x=np.zeros((4, 8, 8))), "no array named 'y'"),
    ("npz with pickled objects", lambda t: _npz(t, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1)),
     "does not unpickle"),
    ("ImageFolder with a non-image", _image_folder_with_text, "readme.txt is not an image"),
    ("zip with path traversal", lambda t: D.safe_extract_zip(_zip(t, {"../evil.txt": b"x"}), t / "out"),
     "unsafe path '../evil.txt'"),
    ("zip with an absolute path", lambda t: D.safe_extract_zip(_zip(t, {"/etc/evil": b"x"}), t / "out"),
     "unsafe path"),
    ("zip bomb", lambda t: D.safe_extract_zip(_zip(t, {"a/zeros.png": bytes(50 * 2**20)}), t / "out"),
     "looks like a zip bomb"),
    ("not a zip", lambda t: D.safe_extract_zip(t / "z.zip", t / "out") if (t / "z.zip").write_text("no") else 0,
     "is not a zip file"),
    ("sweep: unknown key", lambda t: grid.load_config({"model": "mlp", "axis": {}}), "Unknown sweep key 'axis'"),
    ("sweep: ratio outside [0, 1)", lambda t: _sweep(prune_ratio=[1.2]), r"must be in \[0, 1\), got 1.2"),
    ("sweep: bit width outside 2-8", lambda t: _sweep(quantize=["w12"]), "bit widths are 2 to 8"),
    ("sweep: empty axis", lambda t: _sweep(quantize=[]), "Axis 'quantize' is empty"),
    ("sweep: unknown axis", lambda t: _sweep(bits=[4]), "Unknown axis 'bits'"),
    ("sweep: missing file", lambda t: grid.load_config(t / "none.yaml"), "No sweep file at"),
    ("floor outside [0, 1]", lambda t: pareto.resolve_floor(0.98, floor=97), r"fraction in \[0, 1\]"),
    ("drop below zero", lambda t: pareto.resolve_floor(0.98, max_drop=-2), "from 0 to 100"),
    ("store from a newer edgetrim", _newer_store, "written by a newer edgetrim"),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name, make, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_sentence(name, make, message, tmp_path):
    with pytest.raises(ValueError, match=message) as err:
        make(tmp_path)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text and len(text) < 300


def test_a_floor_above_the_baseline_says_nothing_reaches_it():
    import pandas as pd

    df = pd.DataFrame([{"key": "b", "family": "baseline", "label": "baseline", "status": "ok", "accuracy": 0.9,
                        "onnx_bytes": 10}])
    choice = pareto.pick(df, 0.95, "size")
    assert not choice.met_floor and "(baseline 90.00 %)" in choice.message
