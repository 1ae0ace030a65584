"""Image files read a batch at a time: an ImageFolder (a folder or its zip) of any size held as a file list.

core.inputs.data builds splits from what this module lists; it sits below data (data imports it, never the other
way), so the error type both raise lives here. One listing serves both readers (the same files, order, labels and
refusals in memory and streamed) and one decode path gives the same pixels. Names are kept in a numpy bytes array,
not a list of str: DataLoader workers forked from the process share it without touching a page, and it costs a few
dozen bytes an image. A zip is read at the offsets its directory gives, each worker through its own file handle,
so no worker holds the zip's directory either.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
MAX_STREAM_FILES = 20_000_000   # images in one streamed folder or zip
MAX_IMAGE_BYTES = 64 * 2**20    # one image file (PIL's decompression-bomb limit stays on as well)
MAX_ZIP_RATIO = 200             # uncompressed / compressed, per member and for the whole zip: beyond it, a zip bomb
NUM_WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
GRAY = ("L", "1", "I;16")       # modes read as one channel; every other becomes RGB


class DataError(ValueError):
    """Bad user data; the message is one sentence saying what to fix."""


@dataclass(frozen=True)
class Listing:
    """The images of one split folder: names relative to `base`, labels, and what identifies each file's bytes
    without reading them (a file: size, mtime in ns; a zip member: size, CRC, header offset, packed size, method)."""
    base: str             # the split folder inside the source: '' or 'train/' (a zip's own top folder too)
    names: np.ndarray     # 'S' bytes: class/file
    y: np.ndarray         # int64
    stamps: np.ndarray    # int64, N x 2 (files) or N x 5 (zip members)
    classes: list[str]

    def take(self, idx: np.ndarray) -> "Listing":
        return Listing(self.base, self.names[idx], self.y[idx], self.stamps[idx], self.classes)


Entries = Callable[[str], dict[str, tuple[bool, tuple[int, ...]]]]  # folder -> {name: (is a folder, stamp)}


def folder_entries(root: Path) -> Entries:
    """A folder's entries: name -> (is a folder, (size, mtime_ns)); one stat a file, no byte read."""
    def entries(rel: str):
        out = {}
        with os.scandir(root / rel) as it:
            for e in it:
                if e.is_dir():
                    out[e.name] = (True, ())
                    continue
                try:
                    st = e.stat()
                    out[e.name] = (False, (st.st_size, st.st_mtime_ns))
                except OSError:  # a broken link: refused by name when it is read
                    out[e.name] = (False, (0, 0))
        return out
    return entries


def list_image_folder(entries: Entries, name: str) -> dict[str, Listing]:
    """root/<class>/<image> as {'': Listing}, or root/train|val|test/<class>/<image> as {'train': ..., 'test': ...}:
    classes are train's (or the root's) sorted folder names, files sorted by name; hidden files are skipped."""
    top = entries("")
    if top.get("train", (False,))[0] and top.get("test", (False,))[0]:
        parts = {"train": _list_split(entries, "train/", "train", None, 0)}
        for k in ("val", "test"):
            if top.get(k, (False,))[0]:
                before = sum(len(p.y) for p in parts.values())
                parts[k] = _list_split(entries, f"{k}/", k, parts["train"].classes, before)
        return parts
    return {"": _list_split(entries, "", name, None, 0)}


def _list_split(entries: Entries, base: str, name: str, classes: list[str] | None, before: int) -> Listing:
    here = entries(base)
    found = sorted(n for n, (is_dir, _) in here.items() if is_dir and not n.startswith("."))
    if classes is not None and set(found) - set(classes):
        raise DataError(f"{name}/ has classes the train/ folder lacks: {sorted(set(found) - set(classes))[:3]}.")
    defines = classes is None
    classes = classes or found
    if len(classes) < 2:
        raise DataError(f"{name} needs one sub-folder per class, at least two; found {len(classes)}.")
    names, labels, stamps = [], [], []
    for label, cls in enumerate(classes):
        if cls not in found:
            continue
        files = entries(f"{base}{cls}/")
        n = len(names)
        for f in sorted(files):
            is_dir, stamp = files[f]
            if f.startswith(".") or is_dir:
                continue
            if Path(f).suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{cls}/{f} is not an image; an ImageFolder may hold only image files.")
            if stamp[0] > MAX_IMAGE_BYTES:
                raise DataError(f"{base}{cls}/{f} is {stamp[0] >> 20} MB, more than the {MAX_IMAGE_BYTES >> 20} MB "
                                "one image may be.")
            names.append(os.fsencode(f"{cls}/{f}"))
            labels.append(label)
            stamps.append(stamp)
        if defines and len(names) == n:
            raise DataError(f"{base}{cls}/ holds no images; give every class folder at least one, or remove it.")
        if before + len(names) > MAX_STREAM_FILES:
            raise DataError(f"{name} holds more than the {MAX_STREAM_FILES:,} images edgetrim reads from one folder.")
    if not names:
        raise DataError(f"{name} holds no images.")
    return Listing(base, np.array(names, dtype=bytes), np.array(labels, dtype=np.int64),
                   np.array(stamps, dtype=np.int64), list(classes))


# ---- zips ------------------------------------------------------------------------------------

def check_zip(z: zipfile.ZipFile, archive: str, max_files: int, max_bytes: int | None, verb: str = "extract") -> None:
    """Refuse a zip with an unsafe member name (absolute, '..', a drive), a link, a member or a whole that expands
    more than MAX_ZIP_RATIO times (a zip bomb), more than `max_files` members or (if given) `max_bytes` in all."""
    members = z.infolist()
    if len(members) > max_files:
        raise DataError(f"{archive} holds {len(members)} files, more than the {max_files} allowed.")
    total, packed = 0, 0
    for m in members:
        name = m.filename
        if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
            raise DataError(f"{archive} contains the unsafe path {name!r}; refusing to {verb} it.")
        if stat.S_ISLNK(m.external_attr >> 16):
            raise DataError(f"{archive} contains a symbolic link ({name}); refusing to {verb} it.")
        total, packed = total + m.file_size, packed + m.compress_size
        if m.compress_size and m.file_size / m.compress_size > MAX_ZIP_RATIO and m.file_size > 2**20:
            raise DataError(f"{archive} looks like a zip bomb ({name} expands {m.file_size // m.compress_size}x).")
    if total > 2**20 and total > MAX_ZIP_RATIO * max(packed, 1):  # many members, each just under the bar
        raise DataError(f"{archive} looks like a zip bomb (its files together expand "
                        f"{total // max(packed, 1)}x); refusing to {verb} it.")
    if max_bytes is not None and total > max_bytes:
        raise DataError(f"{archive} expands to {total >> 20} MB, more than the {max_bytes >> 20} MB allowed.")


def zip_top(names: Iterable[str]) -> str:
    """The one folder a zip holds ('name/'), or '' when it holds several entries: as safe_extract_zip roots it."""
    tops = {n.split("/", 1)[0] for n in names if not n.startswith((".", "__MACOSX"))}
    top = next(iter(tops)) if len(tops) == 1 else ""
    return f"{top}/" if top and any(n.startswith(f"{top}/") for n in names) else ""


def list_zip(path: Path) -> tuple[str, dict[str, Listing]]:
    """The ImageFolder a zip holds, listed from its directory (checked by `check_zip`; nothing extracted):
    (its name, its splits as `list_image_folder` gives them). Members must be stored or deflated, unencrypted."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path.name} is not a zip file.") from e
    with z:
        check_zip(z, path.name, MAX_STREAM_FILES, None, "read")
        infos = z.infolist()
    top = zip_top([m.filename for m in infos])
    tree: dict[str, dict[str, tuple[bool, tuple[int, ...]]]] = {"": {}}
    for m in infos:
        if not m.filename.startswith(top) or "__MACOSX" in m.filename.split("/"):
            continue
        parts = m.filename[len(top):].rstrip("/").split("/")
        if parts == [""]:
            continue
        for i, p in enumerate(parts[:-1]):  # every folder above the member
            tree.setdefault("".join(f"{q}/" for q in parts[:i]), {})[p] = (True, ())
            tree.setdefault("".join(f"{q}/" for q in parts[:i + 1]), {})
        folder = "".join(f"{q}/" for q in parts[:-1])
        if m.is_dir():
            tree[folder][parts[-1]] = (True, ())
            tree.setdefault(folder + parts[-1] + "/", {})
            continue
        if (m.flag_bits & 1 or m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)) and \
                Path(m.filename).suffix.lower() in IMAGE_SUFFIXES:
            raise DataError(f"{path.name} holds {m.filename} encrypted or compressed in a way edgetrim does not "
                            "stream; zip it stored or deflated, without a password.")
        tree[folder][parts[-1]] = (False, (m.file_size, m.CRC, m.header_offset, m.compress_size, m.compress_type))
    del infos
    name = top.rstrip("/") or path.stem
    parts = list_image_folder(lambda rel: tree.get(rel, {}), name)
    return name, {k: Listing(top + v.base, v.names, v.y, v.stamps, v.classes) for k, v in parts.items()}


def _pread(f, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):  # no shared file offset: threads and forked processes may read at once
        return os.pread(f.fileno(), n, offset)
    f.seek(offset)
    return f.read(n)


def _read_member(f, stamp: np.ndarray) -> bytes:
    """One member's bytes, read at its local header; its size and CRC checked (a bad member is refused)."""
    size, crc, offset, packed, method = (int(v) for v in stamp)
    head = _pread(f, 30, offset)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise ValueError("no local header where the zip's directory points")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    data = _pread(f, packed, offset + 30 + name_len + extra_len)
    if method == zipfile.ZIP_DEFLATED:
        data = zlib.decompressobj(-15).decompress(data, size + 1)
    if len(data) != size or zlib.crc32(data) != (crc & 0xFFFFFFFF):
        raise ValueError("its bytes do not match the zip's size and CRC")
    return data


# ---- decoding --------------------------------------------------------------------------------

def normalised(im):
    """The decoded image as both readers keep it: gray stays one channel ('L'), everything else becomes RGB."""
    return im.convert("RGB") if im.mode not in GRAY else im.convert("L")


class Images(Dataset):
    """A DataLoader's dataset whose items are whole batches: images[indices] is a uint8 N x C x H x W tensor,
    decoded with PIL and resized (bilinear) to `size` as the in-memory reader does, or, when a file cannot be read,
    the sentence that names it (an exception raised in a worker reaches the caller wrapped in a traceback)."""

    def __init__(self, source: str, listing: Listing, zipped: bool, mode: str, size: tuple[int, int]):
        self.source, self.base, self.names, self.zipped = source, listing.base, listing.names, zipped
        self.stamps = listing.stamps if zipped else None  # where each member sits; a folder needs nothing
        self.mode, self.size = mode, size
        self._handle: tuple[int, object] | None = None

    def take(self, idx: np.ndarray) -> "Images":
        out = Images.__new__(Images)
        out.__dict__.update(self.__dict__, names=self.names[idx], _handle=None,
                            stamps=None if self.stamps is None else self.stamps[idx])
        return out

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1 if self.mode == "L" else 3, self.size[1], self.size[0])

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self):
        return {**self.__dict__, "_handle": None}  # each process opens the zip itself

    def __getitem__(self, idx) -> torch.Tensor | str:
        idx = list(idx)
        c, h, w = self.shape
        out = np.empty((len(idx), c, h, w), dtype=np.uint8)
        try:
            for j, i in enumerate(idx):
                a = self.decode(i)
                out[j] = a if c == 1 else a.transpose(2, 0, 1)
        except DataError as e:
            return str(e)
        return torch.from_numpy(out)

    def label(self, i: int) -> str:
        name = f"{self.base}{os.fsdecode(self.names[i])}"
        return f"{name} in {Path(self.source).name}" if self.zipped else name

    def read(self, i: int) -> bytes:
        if not self.zipped:
            with open(os.path.join(self.source, self.base + os.fsdecode(self.names[i])), "rb") as f:
                size = os.fstat(f.fileno()).st_size  # it may have grown since it was listed
                if size > MAX_IMAGE_BYTES:
                    raise DataError(f"{self.label(i)} is {size >> 20} MB, more than the {MAX_IMAGE_BYTES >> 20} MB "
                                    "one image may be.")
                return f.read(size)
        if self._handle is None or self._handle[0] != os.getpid():  # each process opens the zip once
            self._handle = (os.getpid(), open(self.source, "rb"))
        return _read_member(self._handle[1], self.stamps[i])

    def opened(self, i: int):
        """Image i decoded as both readers keep it (before the resize to `size`)."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(self.read(i))) as im:
                im.load()
                return normalised(im)
        except DataError:
            raise
        except Image.DecompressionBombError as e:
            raise DataError(f"{self.label(i)} has more pixels than PIL decodes safely ({Image.MAX_IMAGE_PIXELS:,}); "
                            "shrink it or remove it.") from e
        except Exception as e:  # unreadable, truncated, removed since it was listed: one sentence naming the file
            why = (str(e).splitlines() or [type(e).__name__])[0].rstrip(".")[:120]
            raise DataError(f"{self.label(i)} could not be read as an image ({why}).") from e

    def decode(self, i: int) -> np.ndarray:
        from PIL import Image

        return np.asarray(self.opened(i).convert(self.mode).resize(self.size, Image.BILINEAR))


def first_look(source: str, listing: Listing, zipped: bool, samples: int = 64) -> tuple[str, tuple[int, int]]:
    """(mode, size) a streamed folder is read at, from the first image of each class and `samples` spread over the
    rest, without reading every image: RGB if any of them is in colour, else L (the in-memory reader looks at every
    image; a gray folder whose few colour images all escape the sample is read gray); the first image's size."""
    probe = Images(source, listing, zipped, "L", (1, 1))
    firsts = np.flatnonzero(np.r_[True, listing.y[1:] != listing.y[:-1]])
    spread = np.linspace(0, len(listing.y) - 1, min(samples, len(listing.y))).round().astype(np.int64)
    seen = [probe.opened(int(i)) for i in np.union1d(firsts, spread)]
    return ("RGB" if any(im.mode == "RGB" for im in seen) else "L"), seen[0].size


def shared_floats(x: torch.Tensor) -> torch.Tensor:
    """x (uint8) / 255 as float32, written straight into shared memory when in a DataLoader worker, as torch's
    own collate does (the batch then reaches the loop without another copy); the same floats as
    x.to(torch.float32).div_(255.0)."""
    if torch.utils.data.get_worker_info() is None:
        return x.to(torch.float32).div_(255.0)
    elem = torch.empty(0)
    out = elem.new(elem._typed_storage()._new_shared(x.numel())).resize_(x.shape)
    return out.copy_(x).div_(255.0)


def read_batches(images: Dataset, chunks: list, workers: int | None = None) -> Iterator[torch.Tensor]:
    """images[chunk] for each chunk of indices, in order, made by `workers` DataLoader processes (NUM_WORKERS when
    None; 0: in this process; also 0 inside a daemon process, which may not start any); a str item is an error."""
    workers = min(NUM_WORKERS if workers is None else workers, len(chunks))
    if multiprocessing.current_process().daemon:
        workers = 0
    loader = DataLoader(images, batch_size=None, sampler=chunks, num_workers=workers)
    for b in loader:
        if isinstance(b, str):
            raise DataError(b)
        yield b
