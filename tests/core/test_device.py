"""One device setting: auto takes a GPU when torch sees one; a CPU run is the run it always was."""
import json
import re

import pytest
import torch

from core.cli.main import main as edgetrim
from core.engine import grid, sweep
from core.inputs import device as D
from core.inputs import models as M
from core.inputs.data import load_data
from core.inputs.train import accuracy, train_
from core.results.store import Store


def test_devices_are_parsed_and_refused_in_one_sentence():
    assert D.parse(None) == "auto" and D.parse(" CUDA:1 ") == "cuda:1"
    assert D.resolve("cpu") == torch.device("cpu")
    assert D.resolve("auto") == (torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu"))
    with pytest.raises(D.DeviceError, match="auto, cpu, cuda, cuda:N or mps, not 'gpu'"):
        D.parse("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(D.DeviceError, match="torch sees no CUDA GPU here; use auto, cpu"):
            D.resolve("cuda")


def test_using_sets_the_device_of_the_block_and_training_hands_the_model_back_where_it_was():
    with D.using("cpu") as dev:
        assert D.current() == dev == torch.device("cpu")
    loaded = M.load_sample("mlp")
    model, data = loaded.module, load_data("digits").adapted(loaded.input_shape)
    with D.using("auto"):
        train_(model, data.train, data.val, epochs=1, samples_per_epoch=256)
    assert D.module_device(model) == torch.device("cpu") and accuracy(model, data.test) > 0.3


def test_a_sweep_file_device_is_checked_before_any_work():
    with pytest.raises(grid.SweepError, match="settings.device: The device is auto, cpu, cuda, cuda:N or mps"):
        grid.load_config({"model": "mlp", "axes": {}, "settings": {"device": "tpu"}})
    cfg = grid.load_config({"model": "mlp", "axes": {}, "settings": {"device": "cuda:1"}})  # written for a GPU box
    assert cfg.measure["device"] == "cuda:1"


def _points(store: Store) -> dict:
    out = {}
    for p in store.points("d"):
        m = p.metrics.to_dict()
        m.pop("latency")
        out[p.key] = m
    return out


def test_a_cpu_run_and_an_auto_run_store_identical_points(tmp_path):
    """Here auto is the CPU: the two runs must store the same numbers, and say where they trained."""
    raw = {"run": "d", "model": "mlp", "data": "digits", "measure": {"latency": False},
           "axes": {"prune_ratio": [0.0, 0.7], "finetune_epochs": [1], "quantize": ["fp32", "qat4"]},
           "settings": {"qat_epochs": 1, "budget": {"samples_per_epoch": 300}}}
    stores = {}
    for dev in ("cpu", "auto"):
        stores[dev] = Store(tmp_path / f"{dev}.sqlite")
        sweep.run_sweep(grid.load_config({**raw, "settings": {**raw["settings"], "device": dev}}), stores[dev])
    cpu, auto = _points(stores["cpu"]), _points(stores["auto"])
    assert len(cpu) == 4 and cpu == auto
    assert {m["trained_on"] for m in cpu.values()} == {D.describe(D.resolve("auto"))}
    assert stores["cpu"].table("d")["device"].tolist() == ["cpu"] * 4


def test_the_cli_device_option_wins_over_the_file_and_is_refused_in_one_sentence(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(json.dumps({"run": "c", "model": "mlp", "measure": {"latency": False}, "settings": {"device": "cuda"}}))
    db = str(tmp_path / "s.sqlite")
    code = edgetrim(["sweep", str(f), "--store", db, "--device", "cpu"])
    assert code == 0 and Store(db).table("c")["device"].tolist() == ["cpu"]
    said = capsys.readouterr()  # the estimate before the sweep, and its time against it after
    assert "estimate: about" in said.err and re.search(r"it took [\d,]+ s; the estimate before it ran was about .* \(it took \d+ % (longer|less)\)",
                                                         said.out)
    if not torch.cuda.is_available():
        assert edgetrim(["sweep", str(f), "--store", str(tmp_path / "t.sqlite")]) == 2
        assert "cuda was asked for but torch sees no CUDA GPU here" in capsys.readouterr().err
