"""Data sets as fixed train / validation / test splits.

Calibration and fine-tuning draw only from train and validation; accuracy is
always reported on test. Every data set carries a fingerprint (a hash of its
content and split) so stored results can say exactly what they were measured on.

Sources: scikit-learn's bundled digits (no download), MNIST (``mnist``, fetched once
through the package registry: core.mnist), an ImageFolder directory, an ``.npz`` with
``x`` and ``y``, or MNIST-style IDX files. Where the data comes with its own splits (an
``.npz`` with ``x_train``/``x_test``, an IDX folder with the ``t10k`` files, an
ImageFolder with ``train/`` and ``test/``) those are kept and the test split is the
official one; otherwise one fixed, stratified split is cut.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Defaults: one fixed, stratified split for everything.
SEED = 0
TEST_FRACTION = 0.2  # digits: 360 test images, one error = 0.28 point
VAL_FRACTION = 0.15
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
MAX_SAMPLES = 2_000_000
MAX_FILE_BYTES = 2 * 2**30


class DataError(ValueError):
    """Bad user data; the message is one sentence saying what to fix."""


@dataclass(frozen=True, eq=False)
class Split:
    x: torch.Tensor  # float32, N x C x H x W, values roughly in [0, 1]
    y: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True, eq=False)
class DataSet:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    fingerprint: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.test.x.shape[1:])

    def adapted(self, input_shape: tuple[int, ...]) -> "DataSet":
        """The same data resized / re-channelled to feed a model expecting `input_shape` (C, H, W)."""
        shape = tuple(int(s) for s in input_shape)
        if shape == self.input_shape:
            return self
        splits = [Split(adapt(s.x, shape), s.y) for s in (self.train, self.val, self.test)]
        fp = _hash(self.fingerprint.encode(), repr(shape).encode())
        return DataSet(self.name, *splits, self.num_classes, fp)

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
                f"{self.num_classes} classes, input {'x'.join(map(str, self.input_shape))}")


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
    from sklearn.model_selection import train_test_split

    x, y = _check(x, y, name)
    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                      stratify=y[rest], random_state=seed)
    except ValueError as e:
        raise DataError(f"{name} is too small to split by class ({e}); give at least 5 examples of every class.") from e
    num_classes = int(y.max()) + 1
    splits = [Split(torch.from_numpy(x[i]), torch.from_numpy(y[i])) for i in (np.sort(train), np.sort(val), np.sort(test))]
    fp = _hash(*(t.numpy().tobytes() for s in splits for t in (s.x, s.y)))
    return DataSet(name, *splits, num_classes, fp)


def given(parts: dict[str, tuple[np.ndarray, np.ndarray]], name: str, seed: int = SEED) -> DataSet:
    """A data set with its own splits: `parts` has 'train' and 'test' (and maybe 'val') as (x, y).
    Without a validation split, a stratified part of train becomes one; test is never touched."""
    from sklearn.model_selection import train_test_split

    checked = {k: _check(x, y, f"{name} ({k})") for k, (x, y) in parts.items()}
    if "val" not in checked:
        x, y = checked["train"]
        try:
            tr, va = train_test_split(np.arange(len(y)), test_size=VAL_FRACTION / (1 - TEST_FRACTION), stratify=y,
                                      random_state=seed)
        except ValueError as e:
            raise DataError(f"{name}'s train split is too small to keep a validation part by class ({e}).") from e
        tr, va = np.sort(tr), np.sort(va)
        checked["train"], checked["val"] = (x[tr], y[tr]), (x[va], y[va])
    shapes = {k: v[0].shape[1:] for k, v in checked.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{name}: the splits hold images of different shapes ({shapes}); give one shape.")
    num_classes = max(int(y.max()) for _, y in checked.values()) + 1
    splits = [Split(torch.from_numpy(checked[k][0]), torch.from_numpy(checked[k][1])) for k in ("train", "val", "test")]
    fp = _hash(b"given", *(t.numpy().tobytes() for sp in splits for t in (sp.x, sp.y)))
    return DataSet(name, *splits, num_classes, fp)


def _check(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Bring images to float32 N x C x H x W and labels to int64, or say what is wrong."""
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
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name}: images must be numbers, got dtype {x.dtype}.")
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
    """MNIST with its own splits: 50,000 train / 10,000 validation / 10,000 official test (core.mnist)."""
    from core import mnist

    return load_npz(mnist.ensure(), seed, name="mnist")


def load_image_folder(root: str | Path, size: tuple[int, int] | None = None, seed: int = SEED) -> DataSet:
    """root/<class>/<image>: classes are the sorted folder names; images resized to `size` (default: the first's).
    root/train/<class>/... and root/test/<class>/... (and maybe val/): those splits are kept."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        first = _read_folder(root / "train", None, size)
        classes, size = first[2], first[3]
        parts = {"train": first[:2]}
        for k in ("val", "test"):
            if (root / k).is_dir():
                x, y, names, _ = _read_folder(root / k, classes, size)
                parts[k] = (x, y)
        return given(parts, root.name, seed)
    x, y, _, _ = _read_folder(root, None, size)
    return split(x, y, root.name, seed)


def _read_folder(root: Path, classes: list[str] | None, size):
    """(images, labels, class names, size) of root/<class>/<image>; `classes` fixes the label order."""
    from PIL import Image, UnidentifiedImageError

    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is not None and set(found) - set(classes):
        raise DataError(f"{root.name}/ has classes the train/ folder lacks: {sorted(set(found) - set(classes))[:3]}.")
    classes = classes or found
    if len(classes) < 2:
        raise DataError(f"{root.name} needs one sub-folder per class, at least two; found {len(classes)}.")
    images, labels = [], []
    for label, cls in enumerate(classes):
        if not (root / cls).is_dir():
            continue
        for f in sorted((root / cls).iterdir()):
            if f.name.startswith(".") or f.is_dir():
                continue
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{cls}/{f.name} is not an image; an ImageFolder may hold only image files.")
            try:
                with Image.open(f) as im:
                    im.load()
                    images.append(im.convert("RGB") if im.mode not in ("L", "1", "I;16") else im.convert("L"))
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{cls}/{f.name} could not be read as an image.") from e
            labels.append(label)
    if not images:
        raise DataError(f"{root.name} holds no images.")
    size = size or images[0].size
    mode = "RGB" if any(im.mode == "RGB" for im in images) else "L"
    arr = np.stack([np.asarray(im.convert(mode).resize(size, Image.BILINEAR)) for im in images])
    return arr, np.array(labels), classes, size


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
        data = np.frombuffer(f.read(), dtype=dtypes[head[2]])
    if data.size != math.prod(dims):
        raise DataError(f"{path.name} is truncated: expected {math.prod(dims)} values, found {data.size}.")
    return data.reshape(dims)


def load_idx(images: str | Path, labels: str | Path, seed: int = SEED) -> DataSet:
    """MNIST-style image and label IDX files."""
    return split(read_idx(images), read_idx(labels), Path(images).name.split("-")[0].split(".")[0], seed)


MAX_ZIP_BYTES = 2 * 2**30   # uncompressed total
MAX_ZIP_FILES = 200_000
MAX_ZIP_RATIO = 200         # uncompressed / compressed, per member and for the whole zip: beyond it, a zip bomb


def safe_extract_zip(archive: str | Path, dest: str | Path) -> Path:
    """Extract a user's zip after checking every member: no absolute paths, no '..', no links,
    and bounded sizes (total, count, compression ratio), so a hostile zip writes nothing."""
    import stat
    import zipfile

    archive, dest = Path(archive), Path(dest)
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise DataError(f"{archive.name} is not a zip file.") from e
    with z:
        members = z.infolist()
        if len(members) > MAX_ZIP_FILES:
            raise DataError(f"{archive.name} holds {len(members)} files, more than the {MAX_ZIP_FILES} allowed.")
        total, packed = 0, 0
        for m in members:
            name = m.filename
            if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
                raise DataError(f"{archive.name} contains the unsafe path {name!r}; refusing to extract it.")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise DataError(f"{archive.name} contains a symbolic link ({name}); refusing to extract it.")
            total, packed = total + m.file_size, packed + m.compress_size
            if m.compress_size and m.file_size / m.compress_size > MAX_ZIP_RATIO and m.file_size > 2**20:
                raise DataError(f"{archive.name} looks like a zip bomb ({name} expands {m.file_size // m.compress_size}x).")
        if total > 2**20 and total > MAX_ZIP_RATIO * max(packed, 1):  # many members, each just under the bar
            raise DataError(f"{archive.name} looks like a zip bomb (its files together expand "
                            f"{total // max(packed, 1)}x); refusing to extract it.")
        if total > MAX_ZIP_BYTES:
            raise DataError(f"{archive.name} expands to {total >> 20} MB, more than the {MAX_ZIP_BYTES >> 20} MB allowed.")
        dest.mkdir(parents=True, exist_ok=True)
        z.extractall(dest)
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


BUILT_IN = ("digits", "mnist")


def load_data(source: str = "digits", seed: int = SEED) -> DataSet:
    """Resolve a data source: 'digits', 'mnist', an .npz, an ImageFolder directory, or a directory of IDX files."""
    if source == "digits":
        return load_digits(seed)
    if source == "mnist":
        return load_mnist(seed)
    path = Path(source)
    if not path.exists():
        raise DataError(f"No data at {source!r}; give 'digits', 'mnist', an .npz file, an ImageFolder or an IDX "
                        "directory.")
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path, seed)
        raise DataError(f"{path.name} is not a data set edgetrim reads; use an .npz with x and y.")
    idx = sorted(p for p in path.iterdir() if "idx" in p.name and "ubyte" in p.name)
    if idx:
        imgs = [p for p in idx if "idx3" in p.name]
        labs = [p for p in idx if "idx1" in p.name]
        test_imgs, test_labs = [p for p in imgs if p.name.startswith("t10k")], [p for p in labs if p.name.startswith("t10k")]
        if len(imgs) == len(labs) == 2 and len(test_imgs) == len(test_labs) == 1:  # train-* and t10k-*: MNIST's layout
            train_imgs, train_labs = [p for p in imgs if p not in test_imgs], [p for p in labs if p not in test_labs]
            return given({"train": (read_idx(train_imgs[0]), read_idx(train_labs[0])),
                          "test": (read_idx(test_imgs[0]), read_idx(test_labs[0]))}, path.name, seed)
        if len(imgs) != 1 or len(labs) != 1:
            raise DataError(f"{path.name} must hold one idx3 (images) and one idx1 (labels) file, or the train-* and "
                            "t10k-* pairs MNIST ships as.")
        return load_idx(imgs[0], labs[0], seed)
    return load_image_folder(path, seed=seed)
