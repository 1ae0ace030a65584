import pickle

import pytest
import torch

from core.inputs import models as M
from core.inputs.train import accuracy
from core.runtimes import measure as ME
from tests.hostile import RunsShell


# a ResNet-18 scores MNIST's 10,000 test images in two minutes here: by default on the first 1,000 (within a
# point of its card; its weights' hash below pins them), on all of them with `make test-all`
CASES = [pytest.param(n, None, id=n, marks=[pytest.mark.slow] if n == "resnet18_mnist" else [])
         for n in M.sample_names()] + [pytest.param("resnet18_mnist", 1000, id="resnet18_mnist-first-1000")]


@pytest.mark.parametrize("name,first", CASES)
def test_sample_accuracy_matches_its_card(name, first):
    """Each sample scored on the test split of the data its card names (MNIST's official test set for the
    MNIST samples), the card's weights hash and parameter count checked too."""
    import hashlib

    from core.inputs import data as D

    model = M.load_sample(name)
    data = D.load_data(model.card["data"])
    assert data.fingerprint == model.card["data_fingerprint"]
    test = data.adapted(model.input_shape).test
    acc = accuracy(model.module, D.Split(test.raw[:first], test.y[:first], test.size) if first else test)
    assert abs(acc - model.card["test_accuracy"]) <= (0.01 if first else 0.005)
    assert model.card["params"] == ME.count_params(model.module)[0]
    weights = M.SAMPLES_DIR / model.card["weights"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == model.card["weights_sha256"]


def test_samples_meet_their_accuracy_bars():
    assert {"mlp", "lenet5", "mobilenet_v3_small", "lenet300_mnist", "lenet5_caffe_mnist", "lenet5_mnist"} <= set(
        M.sample_names())
    assert M.sample_card("mlp")["test_accuracy"] >= 0.95
    assert M.sample_card("lenet5")["test_accuracy"] >= 0.97
    # the papers' models on MNIST's official test set (Deep Compression's baselines: 98.36 %, 99.20 %)
    assert M.sample_card("lenet300_mnist")["test_accuracy"] >= 0.983
    assert M.sample_card("lenet5_caffe_mnist")["test_accuracy"] >= 0.991
    assert M.sample_card("lenet5_mnist")["test_accuracy"] >= 0.99   # the classic 61k-weight LeNet-5
    assert M.sample_card("resnet18_mnist")["test_accuracy"] >= 0.994  # the big teacher


def test_the_teacher_is_big_enough_that_compute_dominates(tmp_path):
    """ResNet-18 at 28x28: at least 0.3 G MACs and 1 ms per image in ONNX Runtime here, where per-call overhead
    (tens of microseconds) no longer hides a speed-up."""
    from core.runtimes import onnx_io

    teacher = M.load_sample("resnet18_mnist")
    assert ME.count_macs(teacher.module, teacher.input_shape) >= 0.3e9
    session = onnx_io.onnx_session(onnx_io.write_deployable(teacher, None, tmp_path / "t.onnx"), 2)
    assert onnx_io.time_session(session, teacher.input_shape, 1, 2, budget_s=0.2).median_ms >= 1.0


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": RunsShell(marker)}, evil)
    with pytest.raises(M.ModelLoadError, match="asks to run Python code"):
        M.load_model(evil, arch="mlp")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(RunsShell(marker)))
    with pytest.raises(M.ModelLoadError):
        M.load_model(raw, arch="mlp")
    assert not marker.exists()


def test_torchvision_arch_plus_state_dict(tmp_path):
    model = M.build("tv:mobilenet_v3_small", 10, (3, 32, 32), width_mult=0.25)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = M.load_model(tmp_path / "w.pt", arch="tv:mobilenet_v3_small", input_shape=(3, 32, 32),
                          arch_kwargs={"width_mult": 0.25})
    assert loaded.num_classes == 10 and loaded.fingerprint == M.weights_fingerprint(model)
    with pytest.raises(M.ModelLoadError, match="does not fit tv:resnet18: it has a tensor 'features.0.0.weight'"):
        M.load_model(tmp_path / "w.pt", arch="tv:resnet18", input_shape=(3, 32, 32))
    with pytest.raises(M.ModelLoadError, match="no classification architecture named 'resnet7'"):
        M.load_model(tmp_path / "w.pt", arch="tv:resnet7", input_shape=(3, 32, 32))


def test_torchscript_and_export_files_load_and_agree(tmp_path, lenet5):
    x = torch.rand(4, *lenet5.input_shape)
    expected = lenet5.module(x)
    torch.jit.save(torch.jit.trace(lenet5.module, x), tmp_path / "ts.pt")
    ts = M.load_model(tmp_path / "ts.pt", input_shape=lenet5.input_shape)
    assert ts.arch is None and torch.allclose(ts.module(x), expected, atol=1e-5)
    program = torch.export.export(lenet5.module, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "m.pt2")
    exported = M.load_model(tmp_path / "m.pt2")
    assert exported.input_shape == lenet5.input_shape
    assert torch.allclose(exported.module(x), expected, atol=1e-5)


def test_broken_files_are_refused_clearly(tmp_path, lenet5):
    good = tmp_path / "good.pt"
    torch.save(lenet5.module.state_dict(), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(M.ModelLoadError, match="truncated or corrupt: it starts like a torch.save weights file"):
        M.load_model(cut, arch="lenet5")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(M.ModelLoadError, match="truncated or not a PyTorch file"):
        M.load_model(tmp_path / "text.pt", arch="lenet5")
    nan = {k: v.clone() for k, v in lenet5.module.state_dict().items()}
    nan["features.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(M.ModelLoadError, match="NaN or infinite values in 'features.0.weight'"):
        M.load_model(tmp_path / "nan.pt", arch="lenet5")
    with pytest.raises(M.ModelLoadError, match="holds only weights"):
        M.load_model(good)


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory, lenet5):
    """A TorchScript file and a torch.export .pt2 of the LeNet-5 sample."""
    tmp = tmp_path_factory.mktemp("graphs")
    x = torch.rand(2, *lenet5.input_shape)
    torch.jit.save(torch.jit.trace(lenet5.module, x), tmp / "ts.pt")
    torch.export.save(torch.export.export(lenet5.module, (x,)), tmp / "m.pt2")
    return {"TorchScript file": tmp / "ts.pt", "torch.export .pt2 program": tmp / "m.pt2"}


def _one_sentence(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "()" not in text and len(text) < 300
    return text


@pytest.mark.parametrize("kind", ["TorchScript file", "torch.export .pt2 program"])
def test_a_truncated_graph_file_is_called_truncated_not_weights(graph_files, kind, tmp_path):
    cut = tmp_path / f"cut{graph_files[kind].suffix}"
    cut.write_bytes(graph_files[kind].read_bytes()[: graph_files[kind].stat().st_size // 2])
    with pytest.raises(M.ModelLoadError, match=f"truncated or corrupt: it starts like an? {kind}") as err:
        M.load_model(cut, input_shape=(1, 28, 28))
    _one_sentence(err)


def test_a_malformed_pt2_gets_one_sentence_and_torch_prints_nothing(tmp_path, capfd):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.pt2", "w") as z:  # the layout of a .pt2, none of its content
        z.writestr("bad/archive_format", b"pt2")
        z.writestr("bad/models/model.json", b"{}")
    capfd.readouterr()
    with pytest.raises(M.ModelLoadError) as err:
        M.load_model(tmp_path / "bad.pt2")
    assert capfd.readouterr().err == "", "torch's own traceback stays off the screen"
    assert "looks like a torch.export .pt2 program but torch could not load it" in _one_sentence(err)
    assert "hasRecord" in str(err.value), "the reason torch logged, not 'see the warnings above'"


def test_a_disguised_torchscript_file_gets_a_reason(graph_files, tmp_path):
    import zipfile

    src = zipfile.ZipFile(graph_files["TorchScript file"])
    with zipfile.ZipFile(tmp_path / "disguised.pt", "w") as z:  # TorchScript's layout, its code emptied
        for n in src.namelist():
            z.writestr(n, b"" if "/code/" in n and n.endswith(".py") else src.read(n))
    with pytest.raises(M.ModelLoadError, match=r"looks like a TorchScript file but torch could not load it \(\w") as err:
        M.load_model(tmp_path / "disguised.pt", input_shape=(1, 28, 28))
    _one_sentence(err)


def test_an_exception_without_a_message_is_named_by_its_type():
    with pytest.raises(M.ModelLoadError, match=r"does not run on inputs of shape 1x8x8 \(ValueError\)"):
        M.check_classifier(_Raises(), (1, 8, 8), "silent.pt")


class _Raises(torch.nn.Module):
    def forward(self, x):
        raise ValueError()


def test_a_model_that_does_not_output_class_scores_is_refused():
    with pytest.raises(M.ModelLoadError, match="one class-score vector"):
        M.check_classifier(torch.nn.Conv2d(1, 2, 3), (1, 8, 8), "conv.pt")


def test_students_are_narrower(lenet5):
    for arch, shape in (("mlp", (1, 28, 28)), ("lenet5", (1, 28, 28)), ("tv:mobilenet_v3_small", (3, 64, 64))):
        full = ME.count_params(M.build(arch, 10, shape))[0]
        half = ME.count_params(M.build(arch, 10, shape, width=0.5))[0]
        assert half < full
    with pytest.raises(M.ModelLoadError, match="no width multiplier"):
        M.build("tv:resnet18", 10, (3, 32, 32), width=0.5)


def test_mlp_input_dropout_comes_after_flatten_and_leaves_other_mlps_unmoved():
    plain = M.build("mlp-1200-1200", 10, (1, 28, 28), dropout=0.5)
    assert [k for k in plain.state_dict()][:2] == ["1.weight", "1.bias"]  # existing files still load
    both = M.build("mlp-1200-1200", 10, (1, 28, 28), dropout=0.5, input_dropout=0.2)
    assert isinstance(both[1], torch.nn.Dropout) and both[1].p == 0.2 and isinstance(both[2], torch.nn.Linear)
    assert [k for k in both.state_dict() if k.endswith("weight")] == ["2.weight", "5.weight", "8.weight"]
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    assert both.eval()(x).shape == (4, 10)
    assert torch.equal(both(x), both(x))  # no dropout in eval mode
