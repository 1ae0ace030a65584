"""Data sets as fixed train / validation / test splits.

Calibration and fine-tuning draw only from train and validation; accuracy is
always reported on test. Every data set carries a fingerprint (a hash of its
content and split) so stored results can say exactly what they were measured on.

Sources: scikit-learn's bundled digits (no download), MNIST (``mnist``, fetched once
through the package registry: core.inputs.mnist), an ImageFolder directory, an ``.npz`` with
``x`` and ``y``, MNIST-style IDX files, a .zip of a folder of those, or a root laid out as torchvision's MNIST,
FashionMNIST, KMNIST or CIFAR10 keep it. Where the data comes with its own splits (an
``.npz`` with ``x_train``/``x_test``, an IDX folder with the ``t10k`` files, an
ImageFolder with ``train/`` and ``test/``, torchvision's folders) those are kept and the
test split is the official one; otherwise one fixed, stratified split is cut.

An ImageFolder (or its zip) of more than STREAM_ABOVE images, or any with ``stream=True``, is streamed: its splits
hold file names and labels and decode a batch at a time (core.inputs.stream), and its fingerprint hashes the file
names, sizes and times (a zip's: names, sizes and CRCs) instead of every pixel.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data

from core.inputs import stream as S
from core.inputs.cancel import checkpoint
from core.inputs.stream import IMAGE_SUFFIXES, MAX_ZIP_RATIO, DataError  # noqa: F401  (data's names, defined below it)

# Defaults: one fixed, stratified split for everything.
SEED = 0
TEST_FRACTION = 0.2  # digits: 360 test images, one error = 0.28 point
VAL_FRACTION = 0.15
MAX_SAMPLES = 2_000_000        # in memory; a streamed folder is bounded by stream.MAX_STREAM_FILES
MAX_FILE_BYTES = 2 * 2**30
STREAM_ABOVE = 20_000          # an ImageFolder with more images than this is streamed from disk unless told not to


@dataclass(frozen=True, eq=False)
class Split:
    """Images as their source stored them and int64 labels; loops read float32 batches.

    A uint8 source (MNIST, IDX, image folders, uint8 .npz) stays uint8: 60,000 MNIST images
    cost 47 MB, not 188 MB. `batch` / `batches` give float32 (uint8 / 255, as always), adapted
    to `size` (C, H, W) when a model asked for another shape; `x` is the whole split at once.
    """
    raw: torch.Tensor  # N x C x H x W: uint8 0..255, or float32 roughly in [0, 1]
    y: torch.Tensor  # int64, N
    size: tuple[int, int, int] | None = None  # the shape each batch is adapted to; None: as stored

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images a batch holds."""
        return self.size or self.stored

    @property
    def stored(self) -> tuple[int, int, int]:
        """(C, H, W) of the images as stored."""
        return tuple(self.raw.shape[1:])

    def batch(self, idx) -> torch.Tensor:
        """float32 images at `idx` (a slice or an index tensor), adapted to `shape`."""
        return self._floats(self.raw[idx])

    def _floats(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:  # IEEE float32 division, as numpy's was; strides kept: the same kernels run
            x = x.to(torch.float32).div_(255.0)
        return adapt(x, self.size) if self.size not in (None, self.stored) else x

    def batches(self, size: int, stop: int | None = None):
        """float32 batches of `size` images in order, over the first `stop` images (all when None)."""
        n = len(self) if stop is None else min(stop, len(self))
        for i in range(0, n, size):
            checkpoint()  # scoring in any runtime stops here when its dashboard job is cancelled
            yield self.batch(slice(i, min(i + size, n)))

    def batches_of(self, order: torch.Tensor, size: int):
        """float32 batches of the images at order[0:size], order[size:2 * size], ...: a shuffled epoch."""
        for i in range(0, len(order), size):
            checkpoint()
            yield self.batch(order[i:i + size])

    def resized(self, shape: tuple[int, int, int] | None) -> "Split":
        """The same images, each batch adapted to `shape` when read (the stored ones are never changed)."""
        return replace(self, size=shape)

    def take(self, idx: torch.Tensor) -> "Split":
        """The images at `idx` (an index tensor) as a split of their own: a seeded subset to score on."""
        return replace(self, raw=self.raw[idx], y=self.y[idx])

    @property
    def x(self) -> torch.Tensor:
        """The whole split as one float32 tensor: for small uses; loops over big data use `batches`."""
        return self.batch(slice(None))


@dataclass(frozen=True, eq=False)
class StreamedSplit(Split):
    """Image files decoded a batch at a time (core.inputs.stream.Images): only names and labels are held, so memory
    stays flat however many images there are. `raw` is None; `batches` and `batches_of` decode in DataLoader workers,
    `batch` in this process; every read gives what an in-memory split of the same files would."""
    images: S.Images = field(kw_only=True)

    @property
    def stored(self) -> tuple[int, int, int]:
        return self.images.shape

    def batch(self, idx) -> torch.Tensor:
        idx = range(len(self))[idx] if isinstance(idx, slice) else torch.as_tensor(idx).reshape(-1).tolist()
        x = self.images[idx]
        if isinstance(x, str):
            raise DataError(x)
        return self._floats(x)

    def batches(self, size: int, stop: int | None = None):
        n = len(self) if stop is None else min(stop, len(self))
        yield from self._read([range(i, min(i + size, n)) for i in range(0, n, size)])

    def take(self, idx: torch.Tensor) -> "StreamedSplit":
        idx = torch.as_tensor(idx)
        return replace(self, y=self.y[idx], images=self.images.take(idx.numpy()))

    def batches_of(self, order: torch.Tensor, size: int):
        yield from self._read([order[i:i + size].tolist() for i in range(0, len(order), size)])

    def _read(self, chunks: list):
        checkpoint()
        for x in S.read_batches(_Floats(self), chunks):
            checkpoint()  # a cancelled job stops here; the workers end with the loader
            yield x

    @property
    def x(self) -> torch.Tensor:
        return torch.cat(list(self.batches(256)))


class _Floats(torch.utils.data.Dataset):
    """A streamed split's batches as `batch` gives them, made whole in the worker that decoded them: the conversion
    and resize run beside the decoding, not in the loop that waits for the batch."""

    def __init__(self, split: StreamedSplit):
        self.split = split

    def __getitem__(self, idx) -> torch.Tensor | str:
        x = self.split.images[idx]
        return x if isinstance(x, str) else self.split._floats(S.shared_floats(x))


FINGERPRINTS = {"pixels": "every pixel and label", "files": "file names, sizes and times",
                "zip": "member names, sizes and CRCs"}


@dataclass(frozen=True, eq=False)
class DataSet:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    fingerprint: str
    fingerprint_kind: str = "pixels"  # what the fingerprint hashes: a key of FINGERPRINTS

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.test.shape

    def adapted(self, input_shape: tuple[int, ...]) -> "DataSet":
        """The same data resized / re-channelled to feed a model expecting `input_shape` (C, H, W).

        Lazy: the splits keep the stored images (uint8 stays uint8) and each batch is adapted when it is
        read, always from the stored images (adapting twice does not resize twice).
        """
        shape = tuple(int(s) for s in input_shape)
        if shape == self.input_shape:
            return self
        train, val, test = (s.resized(shape) for s in (self.train, self.val, self.test))
        train.batch(slice(0, 1))  # a shape no image can take is refused now, not in the middle of a loop
        fp = _hash(self.fingerprint.encode(), repr(shape).encode())
        return replace(self, train=train, val=val, test=test, fingerprint=fp)

    def describe(self) -> str:
        streamed = "" if self.fingerprint_kind == "pixels" else \
            f", streamed from disk (fingerprint of {FINGERPRINTS[self.fingerprint_kind]})"
        return (f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
                f"{self.num_classes} classes, input {'x'.join(map(str, self.input_shape))}{streamed}")


def class_mismatch(data: DataSet, model_name: str, num_classes: int) -> str | None:
    """One sentence when `data` has labels the model cannot score, else None (checked before any work)."""
    if data.num_classes <= num_classes:
        return None
    return (f"{data.name} has {data.num_classes} classes but {model_name} scores only {num_classes}; "
            f"use data labelled 0..{num_classes - 1}.")


def adapt(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Resize (bilinear, antialiased) and convert channels 1 <-> 3 so `x` matches `shape`."""
    if len(shape) != 3:
        raise DataError(f"A model input shape must be (channels, height, width), got {shape}.")
    c, h, w = shape
    if x.shape[1] != c:
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise DataError(f"Cannot turn {x.shape[1]}-channel images into the {c} channels the model expects.")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def split(x: np.ndarray, y: np.ndarray, name: str, seed: int = SEED,
          test_fraction: float = TEST_FRACTION, val_fraction: float = VAL_FRACTION) -> DataSet:
    """Validate images and labels, then cut one fixed, stratified train / val / test split."""
    x, y = _check(x, y, name)
    num_classes = int(y.max()) + 1
    cuts = _cut(y, name, seed, test_fraction, val_fraction)
    splits = [Split(torch.from_numpy(x[i]), torch.from_numpy(y[i])) for i in cuts]
    fp = _fingerprint(b"", splits)
    return DataSet(name, *splits, num_classes, fp)


def _cut(y: np.ndarray, name: str, seed: int = SEED, test_fraction: float = TEST_FRACTION,
         val_fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted train, val and test indices of one fixed, stratified split of labels `y`."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                      stratify=y[rest], random_state=seed)
    except ValueError as e:
        raise DataError(_too_few(y, 3, name, "to cut its train / validation / test splits by class") or
                        f"{name} is too small to split by class ({e}); give at least 5 examples of every class.") from e
    return np.sort(train), np.sort(val), np.sort(test)


def _carve_val(y: np.ndarray, name: str, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The sorted train and val indices of a given train split whose validation part is cut from it by class."""
    from sklearn.model_selection import train_test_split

    try:
        tr, va = train_test_split(np.arange(len(y)), test_size=VAL_FRACTION / (1 - TEST_FRACTION), stratify=y,
                                  random_state=seed)
    except ValueError as e:
        raise DataError(_too_few(y, 2, f"{name}'s train split", "to keep a validation part of it by class")
                        or f"{name}'s train split is too small to keep a validation part by class ({e}).") from e
    return np.sort(tr), np.sort(va)


def given(parts: dict[str, tuple[np.ndarray, np.ndarray]], name: str, seed: int = SEED) -> DataSet:
    """A data set with its own splits: `parts` has 'train' and 'test' (and maybe 'val') as (x, y).
    Without a validation split, a stratified part of train becomes one; test is never touched."""
    checked = {k: _check(x, y, f"{name} ({k})") for k, (x, y) in parts.items()}
    if "val" not in checked:
        x, y = checked["train"]
        tr, va = _carve_val(y, name, seed)
        checked["train"], checked["val"] = (x[tr], y[tr]), (x[va], y[va])
    shapes = {k: v[0].shape[1:] for k, v in checked.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{name}: the splits hold images of different shapes ({shapes}); give one shape.")
    num_classes = max(int(y.max()) for _, y in checked.values()) + 1
    splits = [Split(torch.from_numpy(checked[k][0]), torch.from_numpy(checked[k][1])) for k in ("train", "val", "test")]
    fp = _fingerprint(b"given", splits)
    return DataSet(name, *splits, num_classes, fp)


def _too_few(y: np.ndarray, least: int, where: str, why: str) -> str | None:
    """The sentence for labels too rare to split by class (scikit-learn's own message names neither label nor
    split), or None when every label has at least `least` images."""
    labels, counts = np.unique(y, return_counts=True)
    rare = [(int(label), int(n)) for label, n in zip(labels, counts) if n < least]
    if not rare:
        return None
    (label, n), more = rare[0], len(rare) - 1
    others = f" (and {more} other label{'s' * (more > 1)} too: {', '.join(str(r[0]) for r in rare[1:4])}" \
             f"{', ...' if more > 3 else ''})" if more else ""
    return (f"Label {label} has only {n} image{'s' * (n != 1)} in {where}{others}, too few {why}: each label needs "
            f"at least {least}; add images of label {label}, or drop them and number the labels 0..K-1 without it.")


def _check(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Bring images to N x C x H x W (uint8 kept as uint8, anything else float32) and labels to int64,
    or say what is wrong."""
    x, y = np.asarray(x), np.asarray(y)
    if x.size == 0 or y.size == 0:
        raise DataError(f"{name} is empty; it needs images and labels.")
    if y.ndim != 1:
        raise DataError(f"{name}: labels must be a 1-D array of class indices, got shape {y.shape}.")
    if len(x) != len(y):
        raise DataError(f"{name} has {len(x)} images but {len(y)} labels; they must match.")
    if len(y) > MAX_SAMPLES:
        raise DataError(f"{name} has {len(y)} samples, more than the {MAX_SAMPLES} edgetrim evaluates.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"{name}: labels must be whole class indices 0..K-1.")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{name}: label {int(y.min())} is out of range; labels must be class indices 0..K-1.")
    if len(np.unique(y)) < 2:
        raise DataError(f"{name} holds a single class; a classifier needs at least two.")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name}: images must be numbers, got dtype {x.dtype}.")
    if x.dtype == np.uint8:  # stays uint8 and becomes float32 (/ 255) one batch at a time
        x = x.copy(order="K")  # laid out as the float32 copy was: the same strides pick the same kernels
    else:
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{name} contains NaN or infinite pixel values.")
    if x.ndim == 2:  # flat features: accept square images stored as rows
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise DataError(f"{name}: flat rows of {x.shape[1]} values are not square images; store x as N x H x W.")
        x = x.reshape(len(x), 1, side, side)
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        if x.shape[1] not in (1, 3):
            raise DataError(f"{name}: images of shape {x.shape[1:]} have neither 1 nor 3 channels.")
    else:
        raise DataError(f"{name}: images must be N x H x W or N x C x H x W, got shape {x.shape}.")
    return np.ascontiguousarray(x), y


def _fingerprint(prefix: bytes, splits: list[Split]) -> str:
    """The hash stored results are keyed by: each split's float32 pixels, then its labels. Hashed batch by
    batch, it equals the hash of the float32 tensors splits held before uint8 was kept."""
    h = hashlib.sha256(prefix)
    for s in splits:
        for xb in s.batches(4096):
            h.update(np.ascontiguousarray(xb.numpy()))
        h.update(np.ascontiguousarray(s.y.numpy()))
    return h.hexdigest()[:16]


def _hash(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:16]


# ---- sources ---------------------------------------------------------------

def load_digits(seed: int = SEED) -> DataSet:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return split(d.images.astype(np.float32) / 16.0, d.target, "digits", seed)


SPLIT_NAMES = ("train", "val", "test")


def load_npz(path: str | Path, seed: int = SEED, name: str | None = None) -> DataSet:
    """An .npz holding `x` and `y` (one fixed split is cut), or `x_train`/`y_train`/`x_test`/`y_test` and maybe
    `x_val`/`y_val` (the layout Keras writes for mnist.npz: those splits are kept). Never unpickles objects."""
    path = Path(path)
    name = name or path.stem
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path.name} is larger than the {MAX_FILE_BYTES >> 20} MB edgetrim reads.")
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            if {"x_train", "y_train", "x_test", "y_test"} <= files:
                parts = {k: (f[f"x_{k}"], f[f"y_{k}"]) for k in SPLIT_NAMES if {f"x_{k}", f"y_{k}"} <= files}
                return given(parts, name, seed)
            if any(k.startswith(("x_", "y_")) for k in files) and not {"x", "y"} <= files:
                raise DataError(f"{path.name} has some split arrays but not all of x_train, y_train, x_test, y_test.")
            missing = [k for k in ("x", "y") if k not in files]
            if missing:
                raise DataError(f"{path.name} has no array named {missing[0]!r}; save images as x and labels as y "
                                "(or x_train, y_train, x_test, y_test).")
            x, y = f["x"], f["y"]
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path.name} holds Python objects, which edgetrim does not unpickle; save plain arrays.") from e
    except Exception as e:
        raise DataError(f"{path.name} is not a readable .npz file ({type(e).__name__}).") from e
    return split(x, y, name, seed)


def load_mnist(seed: int = SEED) -> DataSet:
    """MNIST with its own splits: 50,000 train / 10,000 validation / 10,000 official test (core.inputs.mnist)."""
    from core.inputs import mnist

    return load_npz(mnist.ensure(), seed, name="mnist")


def load_image_folder(root: str | Path, size: tuple[int, int] | None = None, seed: int = SEED,
                      stream: bool | None = None) -> DataSet:
    """root/<class>/<image>: classes are the sorted folder names; images resized to `size` (default: the first's).
    root/train/<class>/... and root/test/<class>/... (and maybe val/): those splits are kept.
    Streamed from disk when `stream` is True, or None and the folder holds more than STREAM_ABOVE images."""
    root = Path(root)
    parts = S.list_image_folder(S.folder_entries(root), root.name)
    n = sum(len(p.y) for p in parts.values())
    if stream or (stream is None and n > STREAM_ABOVE):
        return _streamed(str(root), parts, root.name, False, size, seed)
    if n > MAX_SAMPLES:
        raise DataError(f"{root.name} holds {n} images, more than the {MAX_SAMPLES} edgetrim holds in memory; "
                        "stream it from disk (stream=True).")
    arrays = {}
    for k, listing in parts.items():
        x, size = _read_folder(root / listing.base, listing, size)
        arrays[k] = (x, listing.y)
    return split(*arrays[""], root.name, seed) if "" in arrays else given(arrays, root.name, seed)


def _read_folder(folder: Path, listing: S.Listing, size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """(images, size) of a listed folder, all in memory: resized to `size` (the first image's when None), RGB if
    any image is in colour, else gray."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for name in map(os.fsdecode, listing.names):
        try:
            with Image.open(folder / name) as im:
                im.load()
                images.append(S.normalised(im))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{name} could not be read as an image.") from e
    size = size or images[0].size
    mode = "RGB" if any(im.mode == "RGB" for im in images) else "L"
    return np.stack([np.asarray(im.convert(mode).resize(size, Image.BILINEAR)) for im in images]), size


def _streamed(source: str, parts: dict[str, S.Listing], name: str, zipped: bool, size: tuple[int, int] | None,
              seed: int) -> DataSet:
    """A DataSet of StreamedSplits over listed files: the same splits, labels, mode and size the in-memory reader
    gives the same files; fingerprinted by names, labels and stamps (sizes and times, or a zip's sizes and CRCs)."""
    mode, first = S.first_look(source, parts.get("train", parts.get("")), zipped)
    size = size or first
    for k, p in parts.items():
        if k and len(np.unique(p.y)) < 2:
            raise DataError(f"{name} ({k}) holds a single class; a classifier needs at least two.")
    if "" in parts:
        whole = parts[""]
        parts = {k: whole.take(i) for k, i in zip(SPLIT_NAMES, _cut(whole.y, name, seed))}
    elif "val" not in parts:
        tr, va = _carve_val(parts["train"].y, name, seed)
        parts = {**parts, "train": parts["train"].take(tr), "val": parts["train"].take(va)}
    h = hashlib.sha256(b"zip" if zipped else b"files")
    h.update(repr((mode, size)).encode())
    splits = []
    for k in SPLIT_NAMES:
        p = parts[k]
        for chunk in (p.base.encode(), p.names.tobytes(), p.stamps.tobytes(), p.y.tobytes()):
            h.update(chunk)
        splits.append(StreamedSplit(None, torch.from_numpy(p.y), images=S.Images(source, p, zipped, mode, size)))
    num_classes = max(int(p.y.max()) for p in parts.values()) + 1
    return DataSet(name, *splits, num_classes, h.hexdigest()[:16], "zip" if zipped else "files")


def read_idx(path: str | Path) -> np.ndarray:
    """One MNIST-style IDX file (optionally gzipped) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[:2] != b"\x00\x00" or head[2] not in dtypes:
            raise DataError(f"{path.name} is not an IDX file (bad magic number).")
        dims = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
        dtype = np.dtype(dtypes[head[2]])
        size = math.prod(dims) * dtype.itemsize
        if size > MAX_FILE_BYTES:
            raise DataError(f"{path.name} declares {size >> 20} MB of data, more than the {MAX_FILE_BYTES >> 20} MB "
                            "edgetrim reads.")
        blob = f.read(size + 1)  # one byte more than declared: a longer file is refused too
    if len(blob) < size:
        raise DataError(f"{path.name} is truncated: expected {math.prod(dims)} values, "
                        f"found {len(blob) // dtype.itemsize}.")
    if len(blob) > size:
        raise DataError(f"{path.name} holds more data than its header declares; it is not one IDX file.")
    return np.frombuffer(blob, dtype=dtype).reshape(dims)


def load_idx(images: str | Path, labels: str | Path, seed: int = SEED) -> DataSet:
    """MNIST-style image and label IDX files."""
    return split(read_idx(images), read_idx(labels), Path(images).name.split("-")[0].split(".")[0], seed)


def load_idx_folder(folder: str | Path, seed: int = SEED, name: str | None = None, official: bool = False) -> DataSet:
    """A folder of IDX files: the train-* and t10k-* pairs MNIST ships as (official test split kept), or, unless
    `official`, one idx3 / idx1 pair (a split is cut). Where torchvision left both `f` and `f.gz`, `f` is read."""
    folder = Path(folder)
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):  # sorted: 'f' comes before 'f.gz'
        if "idx" in p.name and "ubyte" in p.name:
            files.setdefault(p.name.removesuffix(".gz"), p)
    imgs = [p for p in files.values() if "idx3" in p.name]
    labs = [p for p in files.values() if "idx1" in p.name]
    test_imgs, test_labs = [p for p in imgs if p.name.startswith("t10k")], [p for p in labs if p.name.startswith("t10k")]
    if len(imgs) == len(labs) == 2 and len(test_imgs) == len(test_labs) == 1:  # train-* and t10k-*: MNIST's layout
        train_imgs, train_labs = [p for p in imgs if p not in test_imgs], [p for p in labs if p not in test_labs]
        return given({"train": (read_idx(train_imgs[0]), read_idx(train_labs[0])),
                      "test": (read_idx(test_imgs[0]), read_idx(test_labs[0]))}, name or folder.name, seed)
    if official:
        raise DataError(f"{folder.parent.name}/{folder.name} must hold the train-* and t10k-* image and label IDX "
                        "files torchvision keeps there.")
    if len(imgs) != 1 or len(labs) != 1:
        raise DataError(f"{folder.name} must hold one idx3 (images) and one idx1 (labels) file, or the train-* and "
                        "t10k-* pairs MNIST ships as.")
    return load_idx(imgs[0], labs[0], seed)


# ---- torchvision's own dataset folders ----------------------------------------

TORCHVISION = ("MNIST", "FashionMNIST", "KMNIST", "CIFAR10")  # <root>/<Name>/raw/*-ubyte[.gz]; CIFAR10 below
CIFAR10_FOLDER = "cifar-10-batches-py"  # <root>/cifar-10-batches-py/data_batch_1..5, test_batch
MAX_CIFAR_BATCH_BYTES = 64 * 2**20      # one CIFAR-10 python batch is 31 MB


def torchvision_layouts(root: Path) -> list[str]:
    """The torchvision data sets `root` holds, laid out as torchvision keeps them."""
    found = [n for n in TORCHVISION[:-1] if (root / n / "raw").is_dir()]
    if (root / CIFAR10_FOLDER).is_dir() or root.name == CIFAR10_FOLDER:
        found.append("CIFAR10")
    return found


def load_torchvision(name: str, root: str | Path, seed: int = SEED, download: bool = False) -> DataSet:
    """A root laid out as torchvision.datasets.<name> keeps it, read with edgetrim's own readers (IDX files;
    CIFAR-10's pickled batches through an unpickler that builds numpy arrays only), official test split kept.
    With `download=True` a missing one is fetched first through torchvision (a network is needed)."""
    canonical = {n.lower(): n for n in TORCHVISION}.get(name.lower())
    if canonical is None:
        raise DataError(f"edgetrim reads torchvision's {', '.join(TORCHVISION)} folders, not {name!r}.")
    root = Path(root)
    if download and canonical not in torchvision_layouts(root):
        _download(canonical, root)
    if canonical not in torchvision_layouts(root):
        where = f"{CIFAR10_FOLDER}/" if canonical == "CIFAR10" else f"{canonical}/raw/"
        raise DataError(f"{root} holds no torchvision {canonical} (expected {where} in it); lay it out so, or pass "
                        "download=True to fetch it.")
    if canonical != "CIFAR10":
        return load_idx_folder(root / canonical / "raw", seed, canonical, official=True)
    folder = root if root.name == CIFAR10_FOLDER else root / CIFAR10_FOLDER
    train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    parts = {"train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
             "test": read_cifar_batch(folder / "test_batch")}
    return given(parts, canonical, seed)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch (a pickled dict) as uint8 N x 3 x 32 x 32 images and int64 labels, read by an
    unpickler that builds numpy arrays and nothing else: a batch that asks for any other code is refused."""
    from core.inputs.mnist import ArraysOnly

    if not path.is_file():
        raise DataError(f"{path.parent.name}/ lacks {path.name}; CIFAR-10's python layout has data_batch_1 to "
                        "data_batch_5 and test_batch.")
    if path.stat().st_size > MAX_CIFAR_BATCH_BYTES:
        raise DataError(f"{path.name} is larger than the {MAX_CIFAR_BATCH_BYTES >> 20} MB a CIFAR-10 batch can be.")
    try:
        with open(path, "rb") as f:
            batch = ArraysOnly(f, encoding="latin1").load()
    except Exception as e:  # any failure of hostile or broken bytes is one sentence
        why = (str(e).splitlines() or [type(e).__name__])[0].rstrip(".")[:160]
        raise DataError(f"{path.name} is not a CIFAR-10 batch of plain arrays ({why}); "
                        "edgetrim does not read it.") from e
    get = (lambda k: batch.get(k, batch.get(k.encode()))) if isinstance(batch, dict) else (lambda k: None)
    x, labels = get("data"), get("labels")
    y = np.asarray(labels) if isinstance(labels, list) else None
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3 * 32 * 32
            and y is not None and y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and len(y) == len(x)):
        raise DataError(f"{path.name} is not a CIFAR-10 batch: it needs 'data' (N x 3072 uint8) and N 'labels'.")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _download(name: str, root: Path) -> None:
    """Fetch torchvision's `name` into `root` (only when the caller asked for it): MNIST-like sets through
    their torchvision class, CIFAR-10's archive through torchvision's checked download (never unpickled here)."""
    try:
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError as e:
        raise DataError(f"Downloading {name} needs torchvision; install it, or lay the files out yourself.") from e
    try:
        if name == "CIFAR10":
            c = tvd.CIFAR10
            download_and_extract_archive(c.url, str(root), filename=c.filename, md5=c.tgz_md5)
        else:
            getattr(tvd, name)(str(root), train=False, download=True)  # torchvision's own IDX reader, no pickle
    except Exception as e:
        raise DataError(f"{name} could not be downloaded into {root} ({type(e).__name__}); check the network, or lay "
                        "the files out as torchvision keeps them.") from e


MAX_ZIP_BYTES = 2 * 2**30   # uncompressed total, extracted (a streamed zip has no total bound)
MAX_ZIP_FILES = 200_000     # extracted


def safe_extract_zip(archive: str | Path, dest: str | Path) -> Path:
    """Extract a user's zip after checking every member: no absolute paths, no '..', no links,
    and bounded sizes (total, count, compression ratio), so a hostile zip writes nothing. Nor CIFAR-10's
    python batches: those are pickles, and an upload never reaches an unpickler."""
    import zipfile

    archive, dest = Path(archive), Path(dest)
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise DataError(f"{archive.name} is not a zip file.") from e
    with z:
        S.check_zip(z, archive.name, MAX_ZIP_FILES, MAX_ZIP_BYTES)
        for name in z.namelist():
            if CIFAR10_FOLDER in (part.lower() for part in Path(name).parts):
                raise DataError(f"{archive.name} holds CIFAR-10's pickled batches ({name}), which an upload may not "
                                "carry; save them as an .npz with x_train, y_train, x_test, y_test.")
        made = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        try:
            z.extractall(dest)
        except Exception as e:  # a member that cannot be written (disk full, a bad name): nothing half-extracted stays
            if made:
                shutil.rmtree(dest, ignore_errors=True)
            raise DataError(f"{archive.name} could not be extracted ({type(e).__name__}: {e}).") from e
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def load_zip(path: str | Path, seed: int = SEED, stream: bool | None = None) -> DataSet:
    """A zipped data folder (an ImageFolder, IDX files: what the dashboard's upload takes), checked and extracted by
    `safe_extract_zip` into a temporary folder that is removed once the images are in memory, refused or not.
    A zipped ImageFolder is streamed from the zip instead (nothing extracted, the same checks on its members) when
    `stream` is True, or None and it holds more than STREAM_ABOVE images."""
    import tempfile
    import zipfile

    path = Path(path)
    if stream is None:
        try:
            with zipfile.ZipFile(path) as z:
                stream = sum(Path(n).suffix.lower() in IMAGE_SUFFIXES for n in z.namelist()) > STREAM_ABOVE
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path.name} is not a zip file.") from e
    if stream:
        name, parts = S.list_zip(path)
        return _streamed(str(path), parts, name, True, None, seed)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path.name} is larger than the {MAX_FILE_BYTES >> 20} MB edgetrim reads.")
    with tempfile.TemporaryDirectory(prefix="edgetrim-zip-") as tmp:
        root = safe_extract_zip(path, Path(tmp) / path.stem)  # named as the zip, or as the one folder in it
        return load_data(str(root), seed, stream=False)


BUILT_IN = ("digits", "mnist")


def load_data(source: str = "digits", seed: int = SEED, download: bool = False, stream: bool | None = None) -> DataSet:
    """Resolve a data source: 'digits', 'mnist', an .npz, an ImageFolder directory, a directory of IDX files (or a
    .zip of one of those folders), or
    a root laid out as torchvision keeps MNIST, FashionMNIST, KMNIST or CIFAR10 (recognised; never downloaded).
    'torchvision:<Name>:<root>' names one; only that spelling with `download=True` fetches it when missing.
    `stream`: an ImageFolder (or its zip) is streamed from disk when True, read into memory when False, and
    streamed when None if it holds more than STREAM_ABOVE images."""
    if source == "digits":
        return load_digits(seed)
    if source == "mnist":
        return load_mnist(seed)
    if source.startswith("torchvision:"):
        parts = source.split(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise DataError(f"Spell a torchvision source as torchvision:<Name>:<root> (e.g. torchvision:MNIST:data), "
                            f"not {source!r}.")
        return load_torchvision(parts[1], parts[2], seed, download)
    path = Path(source)
    if not path.exists():
        raise DataError(f"No data at {source!r}; give 'digits', 'mnist', an .npz file, an ImageFolder, an IDX "
                        "directory or a torchvision root.")
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path, seed)
        if path.suffix.lower() == ".zip":
            return load_zip(path, seed, stream)
        raise DataError(f"{path.name} is not a data set edgetrim reads; use an .npz with x and y, or a zipped "
                        "ImageFolder.")
    found = torchvision_layouts(path)
    if len(found) > 1:
        raise DataError(f"{path.name} holds several torchvision data sets ({', '.join(found)}); name one as "
                        f"torchvision:{found[0]}:{path}.")
    if found:
        return load_torchvision(found[0], path, seed)
    if any("idx" in p.name and "ubyte" in p.name for p in path.iterdir()):
        return load_idx_folder(path, seed)
    return load_image_folder(path, seed=seed, stream=stream)
