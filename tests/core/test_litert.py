"""LiteRT (.tflite): every sample runs in fp32 and int8 within 0.5 point of its ONNX file on the same test images,
4-bit files hold 4-bit weights, and a sweep timed on LiteRT is picked and exported there from the command line."""
import dataclasses
import json

import pytest

from core.inputs import data as D
from core.inputs import models as M
from core.methods import deploy
from core.results import export, pareto
from core.runtimes import litert_io, onnx_io
from core.runtimes import measure as ME

if litert_io.why_unavailable():
    pytest.skip(f"LiteRT is not installed: {litert_io.why_unavailable()}", allow_module_level=True)

# test images scored (a .tflite runs one image per call): 1,000 for the ResNet-18, 2,000 of MNIST's 10,000 for the
# small MNIST samples (docs/runtimes.md has their whole splits), every one elsewhere
HEAVY = {"resnet18_mnist": 1000, "lenet5_caffe_mnist": 2000, "lenet300_mnist": 2000, "lenet5_mnist": 2000}
SLOW = {"resnet18_mnist", "mobilenet_v3_small"}  # 45-75 s each on 2 cores: `make test-all`


def _test_split(name: str, model: M.LoadedModel) -> D.Split:
    split = D.load_data(model.card.get("data", "digits")).adapted(model.input_shape).test
    n = HEAVY.get(name)
    return D.Split(split.raw[:n], split.y[:n], split.size) if n else split


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [])
                                  for n in M.sample_names()])
def test_every_sample_runs_as_a_tflite_within_half_a_point_of_its_onnx_file(name, tmp_path):
    model = M.load_sample(name)
    data = D.load_data(model.card.get("data", "digits")).adapted(model.input_shape)
    test = _test_split(name, model)
    for fmt in (None, deploy.Int8(calibration_samples=32)):
        tflite = litert_io.write_tflite(model, fmt, tmp_path / "m.tflite", calibration=data.train)
        onnx_file = onnx_io.write_deployable(model, fmt, tmp_path / "m.onnx", calibration=data.train)
        lrt, ort = litert_io.accuracy(tflite, test), onnx_io.onnx_accuracy(onnx_file, test)
        assert abs(lrt - ort) <= 0.005, f"{name} {fmt}: LiteRT {lrt:.4f} against ONNX Runtime {ort:.4f}"
        if fmt is not None:  # int8 weights and activations: the file is far smaller than the fp32 weights
            assert tflite.stat().st_size < 0.5 * ME.state_dict_bytes(model.module)
            assert litert_io.load(tflite).dtype.__name__ == "int8"  # int8 in and out, as a device feeds it


def test_int4_and_dynamic_int8_files(mlp, digits, tmp_path):
    """4-bit Linear weights (blocks of 32 where a layer's inputs divide, else per channel) about 1/7 of the fp32
    file, and dynamic int8, both within a point of the fp32 file; formats with no LiteRT form are refused."""
    test = digits.adapted(mlp.input_shape).test
    fp32 = litert_io.write_tflite(mlp, None, tmp_path / "fp32.tflite")
    int4 = litert_io.write_tflite(mlp, deploy.Int4(), tmp_path / "int4.tflite")
    assert int4.stat().st_size < fp32.stat().st_size / 6
    base = litert_io.accuracy(fp32, test)
    assert abs(litert_io.accuracy(int4, test) - base) <= 0.01
    dynamic = litert_io.write_tflite(mlp, deploy.Int8(mode="dynamic"), tmp_path / "dyn.tflite")
    assert dynamic.stat().st_size < fp32.stat().st_size / 3 and abs(litert_io.accuracy(dynamic, test) - base) <= 0.01
    assert "no LiteRT form" in ME.why_not_on("litert", mlp, deploy.Float16())
    assert "32, 64, 128, 256" in ME.why_not_on("litert", mlp, deploy.Int4(block_size=16))
    with pytest.raises(litert_io.LiteRTError, match="no LiteRT form"):
        litert_io.write_tflite(mlp, deploy.Float16(), tmp_path / "x.tflite")


def test_graphs_litert_cannot_convert_are_refused_in_one_sentence(lenet5, tmp_path):
    import torch

    scripted = dataclasses.replace(lenet5, module=torch.jit.script(lenet5.module), arch=None)
    with pytest.raises(litert_io.LiteRTError, match="TorchScript"):
        litert_io.write_tflite(scripted, None, tmp_path / "x.tflite")
    assert "TorchScript" in ME.why_not_on("litert", scripted, None)
    graph = dataclasses.replace(lenet5, module=M.GraphModel(lenet5.module), arch=None)  # a loaded .pt2 graph
    assert ME.why_not_on("litert", graph, None) is None and ME.why_not_on("litert", graph, deploy.Int4()) is None


def test_a_sweep_for_a_board_is_picked_under_flash_and_ram_and_exported_as_a_tflite(tmp_path, capsys):
    """The whole job on LiteRT for a microcontroller: a sweep on ONNX Runtime, ExecuTorch and LiteRT for a board
    (file, accuracy, latency, flash and RAM, kept file), a pick under a floor and the board's flash and RAM, one
    under a RAM budget nothing meets (the closest named, by how much), and the pick exported as a .tflite that
    reloads, re-scores within the tolerance of the stored point, and names its runtime and memory on its card."""
    from core.cli import main
    from core.results.store import Store
    from core.runtimes import micro

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("run: lrt\nmodel: lenet5\ndata: digits\naxes: {deploy: [fp32, int8]}\n"
                     "measure: {runtimes: [onnxruntime, executorch], threads: 1, budget_s: 0.02, board: nano33ble}\n")
    store = str(tmp_path / "s.sqlite")
    assert main(["sweep", str(sweep), "--store", store]) == 0
    assert "fits on nano33ble (1,024 KB flash, 256 KB RAM): 2 of 2 points" in capsys.readouterr().out
    s = Store(store)
    points = s.points("lrt")
    assert all(p.metrics.file("litert") and p.metrics.latency_ms("litert", 1) for p in points)
    assert all({"tflite", "pte"} <= set(s.artefacts(p.key)) for p in points)  # kept beside the store
    df = s.table("lrt")
    assert df["tflite_bytes"].notna().all() and df["lrt_b1_ms"].notna().all()
    assert (df["tflite_ram_bytes"] > 0).all() and set(df["tflite_ram_source"]) == {micro.memory_source()}
    assert pareto.runtimes_in(df) == ["onnxruntime", "executorch", "litert"]
    int8 = df[df["label"].str.contains("int8")].iloc[0]
    s.close()
    assert main(["pick", "lrt", "--store", store, "--floor", "0.9", "--board", "nano33ble"]) == 0
    assert "int8" in capsys.readouterr().out  # the smallest LiteRT file within the board's flash and RAM
    tight = int8["tflite_ram_bytes"] / 1024 * 0.9
    assert main(["pick", "lrt", "--store", store, "--floor", "0.9", "--max-ram-kb", f"{tight:.2f}"]) == 1
    said = capsys.readouterr().out
    assert "meets the budget; the closest is" in said and "(11 %) over" in said
    out = tmp_path / "out"
    assert main(["export", "lrt", "--store", store, "--floor", "0.9", "--board", "nano33ble", "-o", f"{out}/"]) == 0
    baseline = next(p.key for p in points if p.spec.deploy is None)
    assert main(["export", "lrt", baseline[:10], "--store", store, "--runtime", "litert", "--format", "tflite",
                 "-o", f"{out}/"]) == 0
    files = sorted(out.glob("*.tflite"))
    assert [f.name.rpartition("-")[2] for f in files] in (["int8.tflite", "tflite.tflite"],
                                                         ["tflite.tflite", "int8.tflite"])
    for tflite in files:
        card = json.loads(tflite.with_name(tflite.name + ".json").read_text())
        assert card["runtime"] == f"ai-edge-litert {litert_io.version()}" and card["threads"] == 1
        assert card["accuracy"]["checked_against"] == "the stored litert file" and card["made_from"] == "kept"
        assert abs(card["accuracy"]["reloaded_from_file"] - card["accuracy"]["stored_point"]) <= export.TOLERANCE
        assert "Interpreter(model_path=" in card["how_to_load"]
        if "int8" in tflite.name:  # the pick, not a named point: the card says what it was picked under
            assert card["picked_under"] == {"floor": 0.9, "judged_on": "val", "runtime": "litert",
                                            "board": "nano33ble", "objective": "size"}
        else:
            assert "picked_under" not in card
        flash, ram, source = micro.memory(tflite)
        assert card["microcontroller"] == {"flash_bytes": flash, "ram_bytes": ram, "ram_from": source,
                                           "fits_on": [b.name for b in micro.BOARDS.values() if b.fits(flash, ram)]}
