import gzip
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core import data as D


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
    assert (back.test.x - digits.test.x).abs().mean() < 0.1
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
