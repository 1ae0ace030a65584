"""Edges a user meets (issue 24, part 3): each is refused in one sentence that names what was wrong and what to do,
with a non-zero exit and nothing left behind, or simply works."""
import contextlib
import io
import os
import subprocess
import sys

import pytest

from core import cli
from core.inputs import models as M

CLI = [sys.executable, "-m", "core.cli"]


def run_cli(*args, env=None, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def one_error(err: str) -> str:
    """The one line a refusal prints (never a traceback)."""
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("edgetrim: error: "), err
    return err.removeprefix("edgetrim: error: ").rstrip("\n")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny run swept through the CLI (the mlp sample; `prune_ratio: 0.5`, a scalar axis), for the commands
    that read a store: (store path, what the sweep printed)."""
    tmp = tmp_path_factory.mktemp("swept")
    (tmp / "s.yaml").write_text("run: edges\nmodel: mlp\naxes:\n  prune_ratio: 0.5\n"
                                "measure: {latency: false, runtimes: [onnxruntime]}\n")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setenv("EDGETRIM_CACHE", str(tmp / "cache"))
        code = cli.main(["sweep", str(tmp / "s.yaml"), "--store", str(tmp / "s.sqlite")])
    assert code == 0, err.getvalue()
    return tmp / "s.sqlite", out.getvalue()


# ---- 1. unknown keys in a Spec, a method config, a sweep file's settings ------------------------------------

@pytest.mark.parametrize("spec, sentence", [
    ('{"_type": "Spec", "quantise": {"_type": "WeightQuant", "bits": 4}}',
     "The Spec has no key 'quantise' (did you mean 'quantize'?); its keys are _type, _version, deploy, distill, "
     "prune, quantize."),
    ('{"_type": "Spec", "quantize": {"_type": "WeightQuant", "bitz": 4}}',
     "WeightQuant has no field 'bitz' (did you mean 'bits'?); its fields are bits, granularity, layer_bits, lr, patience, qat_epochs, "
     "samples_per_epoch, scheme, seed."),
    ('{"_type": "Spec", "quantize": "w4"}',
     "The Spec's 'quantize' must be a method config such as {\"_type\": \"WeightQuant\", \"bits\": 4}, not 'w4'."),
])
def test_a_misspelt_spec_key_is_refused_not_measured_as_the_baseline(spec, sentence, capsys):
    assert cli.main(["measure", "--model", "mlp", "--no-latency", "--spec", spec]) == 2
    out = capsys.readouterr()
    assert one_error(out.err) == sentence and out.out == ""


def test_a_misspelt_method_setting_is_refused_even_when_no_point_uses_it(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("model: mlp\naxes: {quantize: [w4]}\nsettings:\n  prune: {scoope: layer}\n")
    store = tmp_path / "s.sqlite"
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--store", str(store)]) == 2
    err = one_error(capsys.readouterr().err)
    assert err.startswith("UnstructuredPrune has no field 'scoope' (did you mean 'scope'?); its fields are ")
    assert "finetune_epochs" in err and "importance" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# ---- 5. a scalar sweep axis is an axis of one value ------------------------------------------------------------

def test_a_scalar_axis_is_one_value(swept):
    from core.engine import grid

    _, out = swept
    assert "run 'edges': 2 points, 2 measured now" in out  # the baseline and prune 50 %
    cfg = grid.load_config({"model": "mlp", "axes": {"prune_ratio": 0.5, "quantize": "w4"}})
    assert cfg.axes["prune_ratio"] == [0.5] and cfg.axes["quantize"] == ["w4"]
    with pytest.raises(grid.SweepError, match=r"^Axis 'prune_ratio' must be a list of values \(or one value\), "
                                              r"e.g. prune_ratio: \[0.0\]; got \{'a': 1\}.$"):
        grid.load_config({"model": "mlp", "axes": {"prune_ratio": {"a": 1}}})


# ---- 7. a misspelt key of a model mapping -------------------------------------------------------------------------

def test_a_misspelt_model_mapping_key_is_named(tmp_path, capsys):
    weights = M.SAMPLES_DIR / M.sample_card("mlp")["weights"]
    (tmp_path / "s.yaml").write_text(f"model: {{path: {weights}, archh: mlp}}\naxes: {{prune_ratio: [0.5]}}\n")
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert one_error(capsys.readouterr().err) == (
        "The model mapping has no key 'archh' (did you mean 'arch'?); its keys are arch, arch_kwargs, input_shape, "
        "num_classes, path.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
