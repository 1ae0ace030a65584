"""Edges a user meets (issue 24, part 3): each is refused in one sentence that names what was wrong and what to do,
with a non-zero exit and nothing left behind, or simply works."""
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

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


# ---- 3. a label too rare to split by class ---------------------------------------------------------------------

def test_a_label_of_one_image_is_named_with_its_split(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(120) % 12
    y[5] = 12  # label 12 in one row
    np.savez(tmp_path / "d.npz", x=rng.random((120, 8, 8), dtype=np.float32), y=y)
    assert cli.main(["measure", "--model", "mlp", "--no-latency", "--data", str(tmp_path / "d.npz")]) == 2
    assert one_error(capsys.readouterr().err) == (
        "Label 12 has only 1 image in d, too few to cut its train / validation / test splits by class: each label "
        "needs at least 3; add images of label 12, or drop them and number the labels 0..K-1 without it.")
    y_train = np.arange(100) % 10
    y_train[7] = 11  # the data's own train split: a validation part is cut from it by class
    np.savez(tmp_path / "own.npz", x_train=rng.random((100, 8, 8), dtype=np.float32), y_train=y_train,
             x_test=rng.random((20, 8, 8), dtype=np.float32), y_test=np.arange(20) % 10)
    assert cli.main(["measure", "--model", "mlp", "--no-latency", "--data", str(tmp_path / "own.npz")]) == 2
    assert one_error(capsys.readouterr().err).startswith(
        "Label 11 has only 1 image in own's train split, too few to keep a validation part of it by class: each "
        "label needs at least 2; add images of label 11")


# ---- 4. a plain pickle given as a model ----------------------------------------------------------------------------

def test_a_plain_pickle_is_named_and_never_unpickled(tmp_path, capsys, monkeypatch):
    import pickle

    import torch

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    (tmp_path / "model.pt").write_bytes(pickle.dumps(Payload(), protocol=4))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a plain pickle reached torch.load"))
    assert cli.main(["measure", "--model", str(tmp_path / "model.pt"), "--arch", "mlp", "--no-latency"]) == 2
    assert one_error(capsys.readouterr().err) == (
        "model.pt is a plain Python pickle, not a PyTorch file: edgetrim does not unpickle it (unpickling can run "
        "any code); save model.state_dict() with torch.save, or export the model with torch.export.")
    assert not (tmp_path / "ran").exists()


# ---- 9. a state_dict of another architecture: the names it should have ----------------------------------------

def test_a_state_dict_that_does_not_fit_lists_the_expected_names(tmp_path, capsys):
    import torch

    torch.save(M.build("lenet5", 10, (1, 28, 28)).state_dict(), tmp_path / "l5.pt")
    assert cli.main(["measure", "--model", str(tmp_path / "l5.pt"), "--arch", "mlp-300-100", "--no-latency"]) == 2
    assert one_error(capsys.readouterr().err) == (
        "l5.pt does not fit mlp-300-100: it has a tensor 'features.0.weight' that mlp-300-100 does not have; "
        "mlp-300-100 expects 1.weight, 1.bias, 3.weight, 3.bias, 5.weight, 5.bias.")
    wrapped = {f"module.{k}": v for k, v in M.build("mlp", 10, (1, 28, 28)).state_dict().items()}  # DataParallel's
    torch.save(wrapped, tmp_path / "dp.pt")
    assert cli.main(["measure", "--model", str(tmp_path / "dp.pt"), "--arch", "mlp", "--no-latency"]) == 2
    assert "(every name in it starts with 'module.', which mlp's names lack: save the inner module's state_dict); " \
           "mlp expects 1.weight" in one_error(capsys.readouterr().err)


def test_the_key_names_the_docstring_lists_are_the_architectures_own():
    import re

    doc = M.__doc__
    for arch, kwargs in (("mlp", {}), ("lenet5", {}), ("lenet5_caffe", {})):
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{arch}`"))
        layers = {k.rsplit(".", 1)[0] for k in M.build(arch, 10, (1, 28, 28), **kwargs).state_dict()}
        assert layers <= set(re.findall(r"`([\w.]+)`", row)), (arch, layers)
    assert len(M.build("resnet18_small", 10, (1, 28, 28)).state_dict()) == 122
    assert list(M.build("mlp", 10, (1, 28, 28), dropout=0.5).state_dict())[::2] == ["1.weight", "4.weight", "7.weight"]


# ---- 2. a zipped ImageFolder is data for the CLI too; 8. a refused zip or sweep leaves nothing -------------------

def image_zip(path, extra: dict | None = None):
    """shapes/<a|b>/<n>.png, ten 8x8 images a class (and `extra` members, name -> bytes), zipped at `path`."""
    import io as io_
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for c, cls in enumerate("ab"):
            for i in range(10):
                png = io_.BytesIO()
                Image.fromarray((rng.random((8, 8)) * 100 + 150 * c).astype(np.uint8)).save(png, "PNG")
                z.writestr(f"shapes/{cls}/{i}.png", png.getvalue())
        for name, blob in (extra or {}).items():
            z.writestr(name, blob)
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temporary folder of this test's own, so what the CLI leaves in one can be seen."""
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path / "tmp"


def test_the_cli_reads_a_zipped_image_folder_and_leaves_no_extracted_files(tmp_path, private_tmp, capsys):
    data = image_zip(tmp_path / "shapes.zip")
    assert cli.main(["measure", "--model", "mlp", "--no-latency", "--runtimes", "onnxruntime",
                     "--data", str(data)]) == 0
    assert "data: shapes: 13 train / 3 val / 4 test, 2 classes, input 1x8x8" in capsys.readouterr().out
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("extra, sentence", [
    ({"shapes/a/notes.txt": b"hello"}, "a/notes.txt is not an image; an ImageFolder may hold only image files."),
    ({"../evil.txt": b"x"}, "shapes.zip contains the unsafe path '../evil.txt'; refusing to extract it."),
])
def test_a_refused_zip_leaves_nothing_extracted(extra, sentence, tmp_path, private_tmp, capsys):
    data = image_zip(tmp_path / "shapes.zip", extra)
    assert cli.main(["measure", "--model", "mlp", "--no-latency", "--data", str(data)]) == 2
    assert one_error(capsys.readouterr().err) == sentence
    assert list(private_tmp.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["shapes.zip", "tmp"]


def test_a_zip_the_dashboard_refuses_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dashboard.pages import model_page

    blob = image_zip(tmp_path / "shapes.zip", {"shapes/a/notes.txt": b"hello"}).read_bytes()
    monkeypatch.setenv("EDGETRIM_CACHE", str(tmp_path / "cache"))
    session = {"data_upload": SimpleNamespace(name="my shapes.zip", getvalue=lambda: blob)}
    monkeypatch.setattr(model_page, "st", SimpleNamespace(session_state=session))
    model_page._use_upload()
    assert session["data.error"] == "a/notes.txt is not an image; an ImageFolder may hold only image files."
    assert [p for p in (tmp_path / "cache").rglob("*") if p.name != "uploads"] == []  # no zip, no extracted folder


def test_a_sweep_refused_before_any_work_creates_no_store(tmp_path, capsys):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((120, 8, 8), dtype=np.float32),
             y=np.arange(120) % 12)  # twelve classes for a model that scores ten
    (tmp_path / "s.yaml").write_text(f"model: mlp\ndata: {tmp_path / 'd.npz'}\naxes: {{prune_ratio: [0.5]}}\n")
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--store", str(tmp_path / "out" / "s.sqlite")]) == 2
    assert one_error(capsys.readouterr().err).startswith("Nothing was run: d has 12 classes but mlp scores only 10")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "s.yaml"]
    (tmp_path / "s.yaml").write_text("model: mlp\naxes: {prune_ratio: [0.5]}\n")
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--workers", "0", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert one_error(capsys.readouterr().err) == "workers must be at least 1, not 0."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "s.yaml"]


# ---- 6. the read-only commands on a store in a read-only place ---------------------------------------------------

@pytest.fixture
def read_only_store(swept, tmp_path):
    """The swept store (and its kept files) copied into a folder of mode 0555, the file 0444. Root is not stopped
    by modes, so as root the folder is also made immutable (chattr +i), which stops root too."""
    import shutil
    import sqlite3

    src, _ = swept
    with contextlib.closing(sqlite3.connect(src)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(src, folder / "s.sqlite")
    shutil.copytree(src.parent / "s.artefacts", folder / "s.artefacts")
    assert (folder / "s.sqlite").read_bytes()[18:20] == b"\x02\x02"  # a WAL store: its readers need <store>-shm,
    assert sorted(p.name for p in folder.iterdir()) == ["s.artefacts", "s.sqlite"]  # which is not there yet
    for p in [*folder.rglob("*"), folder]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = sorted(str(p) for p in folder.rglob("*"))
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("SKIPPED LOUDLY: as root, a read-only folder needs chattr +i, which failed here")
    try:
        if immutable:
            with pytest.raises(OSError):
                (folder / "probe").touch()  # the folder is read-only even for root
        yield folder / "s.sqlite", tmp_path / "out"
        assert sorted(str(p) for p in folder.rglob("*")) == before  # nothing was written beside the store
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("command", [["runs"], ["table", "edges"], ["front", "edges"], ["per-layer", "edges"],
                                     ["pick", "edges", "--max-drop", "5"], ["export", "edges", "--max-drop", "5"]])
def test_read_only_commands_read_a_store_in_a_read_only_folder(command, read_only_store, capsys, monkeypatch):
    store, out = read_only_store
    monkeypatch.setenv("EDGETRIM_CACHE", str(out / "cache"))
    assert cli.main([*command, "--store", str(store), *(["-o", str(out)] if command[0] == "export" else [])]) == 0
    done = capsys.readouterr()
    assert "readonly" not in done.err and "unable to open" not in done.err
    assert {"runs": "edges", "table": "prune 50 %", "front": "on the (accuracy, size) front", "per-layer": "uniform",
            "pick": "export it: edgetrim export edges", "export": "reloaded from disk"}[command[0]] in done.out


# ---- 10. a reader that leaves early (`| head -1`) ----------------------------------------------------------------

def test_a_reader_that_leaves_early_is_not_an_error(swept):
    store, _ = swept
    read, write = os.pipe()
    os.close(read)  # the reader has gone, as `head -1` goes after its line
    try:
        done = subprocess.run([*CLI, "pick", "edges", "--max-drop", "5", "--store", str(store)], stdout=write,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


# ---- 11. a loaded .pt2: lowered to ExecuTorch, its layers named as TorchScript names them -------------------------

@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """The mlp sample as an architecture, as a torch.export .pt2 and as TorchScript."""
    import torch

    tmp = tmp_path_factory.mktemp("graphs")
    arch = M.load_sample("mlp")
    x = torch.zeros(2, *arch.input_shape)
    torch.export.save(torch.export.export(arch.module, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      tmp / "mlp.pt2")
    torch.jit.save(torch.jit.script(arch.module), tmp / "mlp.ts")
    return arch, M.load_model(tmp / "mlp.pt2"), M.load_model(tmp / "mlp.ts", input_shape=arch.input_shape), tmp


def test_a_pt2_names_its_layers_as_torchscript_does_and_takes_either_spelling(graphs, digits, capsys):
    from core.methods import spec as S
    from core.methods.prune import UnstructuredPrune, prunable_names
    from core.methods.quantize import WeightQuant

    arch, pt2, ts, tmp = graphs
    assert prunable_names(pt2.module) == prunable_names(ts.module) == prunable_names(arch.module) == ["1", "3", "5"]
    zeros = lambda lm: [int((w == 0).sum()) for w in lm.module.state_dict().values() if w.ndim == 2]  # noqa: E731
    spec = lambda names: S.Spec(prune=UnstructuredPrune(0.0, layer_ratios=names),  # noqa: E731
                                quantize=WeightQuant(8, layer_bits={next(iter(names)): 4}))
    got = zeros(S.apply(pt2, spec({"1": 0.5, "3": 0.9}), digits))
    assert got == zeros(S.apply(ts, spec({"1": 0.5, "3": 0.9}), digits))
    assert got[:2] == [117600, 27000]  # 50 % of 784 x 300, 90 % of 300 x 100
    assert zeros(S.apply(pt2, spec({"graph.1": 0.5, "graph.3": 0.9}), digits)) == got  # as .pt2 layers were named
    bad = '{"_type": "Spec", "prune": {"_type": "UnstructuredPrune", "ratio": 0.0, "layer_ratios": {"fc1": 0.5}}}'
    assert cli.main(["measure", "--model", str(tmp / "mlp.pt2"), "--no-latency", "--spec", bad]) == 2
    assert one_error(capsys.readouterr().err) == (
        "layer_ratios names 'fc1', which is not a weight layer of this model; its layers are 1, 3, 5.")


def test_the_dashboard_s_layer_table_names_a_pt2_s_layers_as_torchscript_does(graphs):
    import json

    from dashboard import cache

    _, _, _, tmp = graphs
    layers = lambda path, **kw: [r["layer"] for r in cache.layers(json.dumps({"path": str(path), **kw}))]  # noqa: E731
    assert layers(tmp / "mlp.pt2") == layers(tmp / "mlp.ts", input_shape=[1, 28, 28]) == ["1", "3", "5"]


def test_a_loaded_pt2_can_be_lowered_to_executorch(graphs):
    """Not refused as TorchScript is: its graph is exported again (fp32, int8). Only the 4-bit file, which replaces
    nn.Linear layers a graph does not have, is refused. (tests/core/test_executorch.py lowers files; here the export
    of the graph ExecuTorch lowers, in a second.)"""
    from core.methods import deploy
    from core.runtimes import executorch_io as E

    arch, pt2, ts, _ = graphs
    assert E.why_not_model(pt2) is None and E.why_not_model(pt2, deploy.Int8()) is None
    assert E.why_not_model(ts).startswith("ExecuTorch needs a model torch.export can trace")
    assert E.why_not_model(pt2, deploy.Int4()).startswith("the 4-bit ExecuTorch file replaces nn.Linear layers")
    exported = E._exported(M.unwrap(pt2.module), pt2.input_shape)  # what write_pte lowers
    x = torch_zeros(3, *pt2.input_shape)
    assert exported.module()(x).allclose(arch.module(x), atol=1e-5)


@pytest.mark.slow
def test_a_loaded_pt2_becomes_a_pte_file_that_scores_as_the_graph(graphs, digits, tmp_path):
    from core.methods import deploy
    from core.runtimes import executorch_io as E

    if E.why_unavailable():
        pytest.skip(f"SKIPPED LOUDLY: {E.why_unavailable()}")
    _, pt2, _, _ = graphs
    data = digits.adapted(pt2.input_shape)
    expected = float((pt2.module(data.test.x).argmax(1) == data.test.y).float().mean())
    for fmt in (None, deploy.Int8()):
        path = E.write_pte(pt2, fmt, tmp_path / "m.pte", calibration=data.train)
        assert abs(E.accuracy(str(path), data.test) - expected) < 0.02


def torch_zeros(*shape):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def test_a_per_layer_setting_is_checked_against_the_model_it_runs_on(lenet5, digits):
    """Before any work against the model itself; after a distillation, on its student (checked when it is built)."""
    from core.methods import spec as S
    from core.methods.distill import Distill
    from core.methods.prune import UnstructuredPrune

    prune = UnstructuredPrune(0.0, layer_ratios={"1": 0.5})  # a layer of an mlp, not of lenet5
    assert S.why_not_spec(lenet5, digits, S.Spec(prune=prune)) == (
        "layer_ratios names '1', which is not a weight layer of this model; its layers are features.0, features.3, "
        "classifier.1, classifier.3, classifier.5.")
    assert S.why_not_spec(lenet5, digits, S.Spec(distill=Distill(student="mlp", epochs=1), prune=prune)) is None
