"""torchvision's own dataset folders (MNIST, FashionMNIST, KMNIST, CIFAR10), built tiny in tmp_path: the official
test split is kept, CIFAR-10's pickled batches build numpy arrays only, and nothing needs the network."""
import gzip
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from core.inputs import data as D
from tests.hostile import RunsShell


def _write_idx(path, arr):
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def _images(n, shape, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8), np.arange(n) % 10


def _mnist_root(root, name="MNIST", both=True):
    """root/<name>/raw as torchvision leaves it after a download: each IDX file, and (both=True) its .gz too."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    (x, y), (xt, yt) = _images(60, (28, 28), 0), _images(20, (28, 28), 1)
    yt = yt[::-1].copy()  # the official test set's own order, which must be kept
    for prefix, (xs, ys) in (("train", (x, y)), ("t10k", (xt, yt))):
        for kind, arr in (("images-idx3", xs), ("labels-idx1", ys)):
            for suffix in ("", ".gz") if both else (".gz",):
                _write_idx(raw / f"{prefix}-{kind}-ubyte{suffix}", arr)
    return xt, yt


def test_a_torchvision_mnist_root_is_read_with_its_official_test_split(tmp_path):
    xt, yt = _mnist_root(tmp_path)
    ds = D.load_data(str(tmp_path))
    assert ds.name == "MNIST" and ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert len(ds.test) == 20 and len(ds.train) + len(ds.val) == 60 and len(ds.val) > 0
    np.testing.assert_array_equal(ds.test.y.numpy(), yt)
    assert ds.test.raw.dtype == torch.uint8 and torch.equal(ds.test.raw[:, 0], torch.from_numpy(xt))
    assert D.load_data(f"torchvision:MNIST:{tmp_path}").fingerprint == ds.fingerprint


def test_fashion_mnist_gz_only_and_a_root_holding_two_sets_must_name_one(tmp_path):
    _, yt = _mnist_root(tmp_path, "FashionMNIST", both=False)
    ds = D.load_data(str(tmp_path))
    assert ds.name == "FashionMNIST" and len(ds.test) == 20
    np.testing.assert_array_equal(ds.test.y.numpy(), yt)
    _mnist_root(tmp_path, "MNIST")
    with pytest.raises(D.DataError, match="several torchvision data sets"):
        D.load_data(str(tmp_path))
    assert D.load_data(f"torchvision:fashionmnist:{tmp_path}").name == "FashionMNIST"
    raw = tmp_path / "MNIST" / "raw"
    for f in raw.glob("t10k-*"):
        f.unlink()
    with pytest.raises(D.DataError, match="t10k"):
        D.load_data(f"torchvision:MNIST:{tmp_path}")


def _cifar_batch(path, n, seed, **extra):
    rng = np.random.default_rng(seed)
    batch = {"batch_label": path.name, "labels": [int(v) for v in np.arange(n) % 10],
             "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)],
             **extra}
    path.write_bytes(pickle.dumps(batch, protocol=4))
    return batch


def _cifar_root(root):
    folder = root / D.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _cifar_batch(folder / f"data_batch_{i}", 10, i)
    return _cifar_batch(folder / "test_batch", 12, 9)


def test_a_torchvision_cifar10_root_is_read_without_pickle_load(tmp_path):
    test = _cifar_root(tmp_path)
    ds = D.load_data(str(tmp_path))
    assert ds.name == "CIFAR10" and ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert len(ds.test) == 12 and len(ds.train) + len(ds.val) == 50
    np.testing.assert_array_equal(ds.test.y.numpy(), test["labels"])
    assert ds.test.raw.dtype == torch.uint8
    np.testing.assert_array_equal(ds.test.raw[3].numpy(), test["data"][3].reshape(3, 32, 32))  # R, G, B planes
    assert D.load_data(str(tmp_path / D.CIFAR10_FOLDER)).fingerprint == ds.fingerprint


def test_a_cifar_batch_carrying_code_is_refused_in_one_sentence_and_never_runs(tmp_path):
    _cifar_root(tmp_path)
    marker = tmp_path / "pwned"
    _cifar_batch(tmp_path / D.CIFAR10_FOLDER / "data_batch_3", 10, 3, filenames=RunsShell(marker))
    with pytest.raises(D.DataError, match=r"data_batch_3 is not a CIFAR-10 batch of plain arrays \(.*system") as e:
        D.load_data(str(tmp_path))
    assert "\n" not in str(e.value) and str(e.value).count(". ") == 0 and str(e.value).endswith(".")
    assert not marker.exists()
    assert "system" in pickle.dumps(RunsShell(marker)).decode("latin1"), "the payload really names os.system"


@pytest.mark.parametrize("change, message", [
    (lambda f: f.unlink(), "lacks data_batch_2"),
    (lambda f: f.write_bytes(pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]})), "needs 'data'"),
    (lambda f: f.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]})), "needs 'data'"),
    (lambda f: f.write_bytes(b"not a pickle"), "not a CIFAR-10 batch of plain arrays"),
    (lambda f: f.write_bytes(bytes(D.MAX_CIFAR_BATCH_BYTES + 1)), "larger than"),
])
def test_broken_cifar_batches_are_one_sentence(tmp_path, change, message):
    _cifar_root(tmp_path)
    change(tmp_path / D.CIFAR10_FOLDER / "data_batch_2")
    with pytest.raises(D.DataError, match=message) as e:
        D.load_data(str(tmp_path))
    assert "\n" not in str(e.value)


def test_an_upload_never_reaches_a_pickle(tmp_path):
    """The dashboard extracts an uploaded zip with safe_extract_zip: CIFAR-10's python batches are refused there."""
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as z:
        z.writestr("data/Cifar-10-Batches-Py/test_batch", pickle.dumps({"labels": [0]}))
    with pytest.raises(D.DataError, match="pickled batches") as e:
        D.safe_extract_zip(upload, tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_download_happens_only_when_asked_and_never_needs_the_network_here(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeMNIST:  # stands in for torchvision's class: "downloads" by writing the files
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            _mnist_root(tmp_path / "fresh")

    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)
    with pytest.raises(D.DataError, match="download=True"):
        D.load_data(f"torchvision:MNIST:{tmp_path / 'fresh'}")
    assert not calls, "no download unless asked"
    ds = D.load_data(f"torchvision:MNIST:{tmp_path / 'fresh'}", download=True)
    assert len(calls) == 1 and len(ds.test) == 20
    D.load_data(f"torchvision:MNIST:{tmp_path / 'fresh'}", download=True)
    assert len(calls) == 1, "present: not fetched again"

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading:\nTried a mirror, got: <urlopen error no network>")
    monkeypatch.setattr(tvd, "FashionMNIST", offline)
    with pytest.raises(D.DataError, match="could not be downloaded") as e:
        D.load_data(f"torchvision:FashionMNIST:{tmp_path / 'none'}", download=True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("source, message", [("torchvision:MNIST", "torchvision:<Name>:<root>"),
                                             ("torchvision:SVHN:data", "not 'SVHN'")])
def test_a_misspelled_torchvision_source_is_one_sentence(source, message):
    with pytest.raises(D.DataError, match=message):
        D.load_data(source)
