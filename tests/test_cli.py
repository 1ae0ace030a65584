import json
import subprocess
import sys

from core import cli


def test_models_lists_every_sample_with_metrics_measured_now(capsys):
    assert cli.main(["models", "--no-latency"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "lenet5", "mobilenet_v3_small"):
        assert name in out
    assert "onnx KB" in out


def test_measure_prints_json_with_latency_on_both_runtimes(capsys):
    assert cli.main(["measure", "--model", "mlp", "--json", "--threads", "1"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {l["runtime"] for l in m["latency"]} == {"onnxruntime", "pytorch"}
    assert all(l["threads"] == 1 for l in m["latency"])


def test_errors_are_one_sentence_and_exit_non_zero(capsys):
    assert cli.main(["measure", "--model", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetrim: error: No sample model named 'nosuch'") and "Traceback" not in err
    assert cli.main(["measure", "--model", "mlp", "--data", "missing.npz"]) == 2
    assert "No data at 'missing.npz'" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "core.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "measure" in out.stdout
