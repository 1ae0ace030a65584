"""uint8 sources stay uint8 in memory and become float32 (/ 255) one batch at a time, with results bit-identical
to the float32 copy splits used to hold."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from core.inputs import data as D
from core.inputs.train import accuracy, predict, recalibrate_bn_, train_
from core.runtimes import onnx_io


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same MNIST-shaped images twice: as uint8 (Keras's mnist.npz layout) and as the float32 / 255 copy."""
    folder = tmp_path_factory.mktemp("uint8")
    rng = np.random.default_rng(0)
    y, yt = np.arange(300) % 10, np.arange(70) % 10
    x, xt = (rng.integers(0, 256, (len(v), 28, 28), dtype=np.uint8) for v in (y, yt))
    np.savez(folder / "u8.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    np.savez(folder / "f32.npz", x_train=x.astype(np.float32) / 255.0, y_train=y,
             x_test=xt.astype(np.float32) / 255.0, y_test=yt)
    return D.load_data(str(folder / "u8.npz")), D.load_data(str(folder / "f32.npz"))


def _model(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), *([nn.BatchNorm2d(4)] if bn else []), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 26 * 26, 10))


def test_a_uint8_source_is_stored_as_uint8_and_reads_as_the_float_copy(pair):
    every = torch.arange(256, dtype=torch.uint8).reshape(256, 1, 1, 1)
    assert torch.equal(D.Split(every, torch.zeros(256)).x.flatten(),
                       torch.from_numpy(np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0)), "numpy's / 255"
    u8, f32 = pair
    for a, b in ((u8.train, f32.train), (u8.val, f32.val), (u8.test, f32.test)):
        assert a.raw.dtype == torch.uint8 and b.raw.dtype == torch.float32
        assert a.raw.nbytes * 4 == b.raw.nbytes, "a quarter of the float32 bytes"
        assert torch.equal(a.x, b.x) and a.x.dtype == torch.float32
        assert torch.equal(torch.cat(list(a.batches(7))), b.x)
    assert u8.fingerprint == f32.fingerprint, "the fingerprint is of the float32 pixels, as it always was"
    assert u8.input_shape == (1, 28, 28)


def test_predict_accuracy_and_onnx_runtime_give_the_same_results_on_uint8_and_float(pair, tmp_path):
    u8, f32 = pair
    model = _model()
    assert torch.equal(predict(model, u8.test), predict(model, f32.test))
    assert torch.equal(predict(model, u8.test), predict(model, f32.test.x))  # a Split and a tensor alike
    assert accuracy(model, u8.test) == accuracy(model, f32.test)
    session = onnx_io.onnx_session(onnx_io.write_onnx(model, (1, 28, 28), tmp_path / "m.onnx"))
    np.testing.assert_array_equal(onnx_io.onnx_predict(session, u8.test), onnx_io.onnx_predict(session, f32.test))
    assert onnx_io.onnx_accuracy(session, u8.test) == onnx_io.onnx_accuracy(session, f32.test)


def test_training_and_batchnorm_recalibration_are_bit_identical_on_uint8(pair):
    u8, f32 = pair
    models = []
    for ds in (u8, f32):
        m = train_(_model(bn=True), ds.train, ds.val, epochs=1, augment_shift=1, samples_per_epoch=128)
        recalibrate_bn_(m, ds.train)
        models.append(m)
    for (k, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(a, b), k


def test_adapted_uint8_stays_uint8_and_is_resized_one_batch_at_a_time(pair):
    u8, f32 = pair
    big, big_f = u8.adapted((3, 32, 32)), f32.adapted((3, 32, 32))
    assert big.input_shape == (3, 32, 32) and big.test.raw is u8.test.raw, "nothing resized up front"
    assert big.fingerprint == big_f.fingerprint
    whole = D.adapt(f32.test.x, (3, 32, 32))
    assert torch.equal(big.test.x, whole) and torch.equal(torch.cat(list(big.test.batches(16))), whole)
    assert torch.equal(big.train.batch(torch.tensor([5, 1, 9])), D.adapt(f32.train.x[[5, 1, 9]], (3, 32, 32)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    assert torch.equal(predict(model, big.test), predict(model, whole))
    assert big.adapted((1, 28, 28)).test.shape == (1, 28, 28)
    with pytest.raises(D.DataError, match="channels"):  # refused when asked, not in the middle of a loop
        u8.adapted((2, 28, 28))


def test_float_sources_stay_float32(digits):
    assert digits.test.raw.dtype == torch.float32 and digits.fingerprint == D.load_digits().fingerprint


def test_int8_calibration_reads_batches_of_32_up_to_n(pair):
    from core.methods.deploy import _Calibration

    u8, _ = pair
    reader = _Calibration(u8.train, 70, "input")
    got = []
    while (b := reader.get_next()) is not None:
        got.append(b["input"])
    assert [len(b) for b in got] == [32, 32, 6] and all(b.dtype == np.float32 for b in got)
    np.testing.assert_array_equal(np.concatenate(got), u8.train.x[:70].numpy())
