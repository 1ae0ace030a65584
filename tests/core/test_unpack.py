"""An archive (.etz) as a model: `edgetrim unpack` turns it into every deployable file, reloaded and re-scored,
and the commands that take a model take it."""
import json

import pytest

from core import cli
from core.methods import spec as S
from core.methods.prune import UnstructuredPrune
from core.methods.quantize import WeightShare
from core.results import export
from core.runtimes import archive, executorch_io, litert_io


@pytest.fixture(scope="module")
def packed(tmp_path_factory, lenet5, digits):
    small = S.apply(lenet5, S.Spec(prune=UnstructuredPrune(0.8), quantize=WeightShare(bits=4)), digits)
    return archive.write_archive(small, tmp_path_factory.mktemp("etz") / "small.etz")


FORMATS = ["onnx", "onnx-int8", "pt2", "archive"] + (["pte", "pte-int8"] if executorch_io.why_unavailable() is None
                                                      else []) \
    + (["tflite", "tflite-int8"] if litert_io.why_unavailable() is None else [])  # the optional extras, if here


@pytest.mark.parametrize("fmt", FORMATS)
def test_unpack_writes_every_format_reloaded_and_rescored(packed, digits, tmp_path, fmt, capsys):
    assert cli.main(["unpack", str(packed), "--to", fmt, "--data", "digits", "-o", f"{tmp_path}/"]) == 0
    out = tmp_path / f"small-{fmt}{export.suffix(fmt)}"
    card = json.loads((tmp_path / (out.name + ".json")).read_text())
    acc = card["accuracy"]
    assert out.stat().st_size == card["bytes"] and card["format"] == fmt
    if fmt in export.LOSSLESS:  # the weights as they are: the same accuracy within the tolerance
        assert abs(acc["reloaded_from_file"] - acc["archive_in_pytorch"]) <= export.TOLERANCE
    else:
        assert "rounds the weights" in acc["checked"] and abs(acc["reloaded_from_file"] - acc["archive_in_pytorch"]) < 0.05
    line = capsys.readouterr().out
    assert f"scores {100 * acc['reloaded_from_file']:.2f} %" in line and "archive's model in PyTorch" in line


def test_unpack_refuses_what_it_cannot_read_in_one_sentence(tmp_path, capsys):
    bad = tmp_path / "x.etz"
    bad.write_bytes(b"not an archive")
    assert cli.main(["unpack", str(bad), "--to", "onnx", "-o", f"{tmp_path}/out/"]) == 2
    err = capsys.readouterr().err
    assert "x.etz is not an edgetrim archive" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing was made"


def test_an_exported_archive_is_a_model_that_measures_as_its_point(tmp_path, capsys):
    """sweep -> export --format archive -> `edgetrim measure --model x.etz`: the accuracy of the point that wrote it
    (its architecture comes from the file: no --arch)."""
    import yaml

    from core.results.store import Store

    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "run": "etz", "model": "lenet5", "data": "digits", "measure": {"latency": False},
        "axes": {"prune_ratio": [0.8], "quantize": ["w4"]}}))
    store = str(tmp_path / "r.sqlite")
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--store", store]) == 0
    point = next(p for p in Store(store).points("etz") if p.spec.family != "baseline")
    assert cli.main(["export", "etz", point.key[:10], "--format", "archive", "-o", str(tmp_path / "x.etz"),
                     "--store", store]) == 0
    capsys.readouterr()
    assert cli.main(["measure", "--model", str(tmp_path / "x.etz"), "--data", "digits", "--no-latency",
                     "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["accuracy"] == point.metrics.accuracy and measured["nonzero_params"] == point.metrics.nonzero_params
