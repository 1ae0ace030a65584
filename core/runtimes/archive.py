"""The compact archive: a pruned, quantized model stored as small as its numbers allow.

Every float tensor is stored in whichever exact encoding is smallest:
  raw float32 | one codebook + packed k-bit codes (or Huffman-coded codes) | one codebook
  per output channel + packed codes | one scale per output channel + packed integer codes
  (k-bit quantized weights) | a 1-bit non-zero mask + raw non-zeros | a mask + codebook +
  codes | Deep Compression's sparse format: relative indices (gaps of a few bits, a filler
  zero where a gap overflows) and codebook codes, both Huffman-coded,
and the whole file is then LZMA-compressed. Codebooks (the Deep Compression
overhead) are counted in the file, so the archive's size is a real number of bytes.
Decoding is exact: the reloaded model gives identical outputs. The header also
records the architecture and every tensor shape, so a structurally pruned model is
rebuilt at its pruned width.
"""
from __future__ import annotations

import json
import lzma
import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from core.inputs import etz
from core.inputs.models import LoadedModel, ModelLoadError, load_archive, read_archive, resize_like_  # noqa: F401 (read here)
from core.inputs.train import accuracy
from core.runtimes import huffman
from core.runtimes.pytorch_io import time_module
from core.runtimes.runtime import Runtime

# above this many raw bytes LZMA's default preset: on the ResNet-18 (42.6 MB of weights) preset 9e took 137.5 s for
# 20,606,676 bytes, preset 6 88.1 s for 20,604,688; small models keep 9e, so their archives are unchanged
BIG_PAYLOAD = 16 * 2**20
MAGIC = etz.MAGIC
MAX_CODEBOOK = 256


# ---- bit packing ----------------------------------------------------------------------

def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    bitplanes = np.unpackbits(codes.astype(np.uint8)[:, None], axis=1)[:, 8 - bits:]
    return np.packbits(bitplanes.reshape(-1)).tobytes()


def _bits(levels: int) -> int:
    return max(1, math.ceil(math.log2(max(levels, 2))))


# ---- encodings: each returns (meta, blobs) or None if it does not apply ------------------

def _codebook(values: np.ndarray):
    book, codes = np.unique(values, return_inverse=True)
    if len(book) > MAX_CODEBOOK:
        return None
    b = _bits(len(book))
    return {"book": len(book), "bits": b}, [book.astype(np.float32).tobytes(), pack_codes(codes, b)]


def _row_codebook(values: np.ndarray, rows: int):
    per_row = [np.unique(r, return_inverse=True) for r in values.reshape(rows, -1)]
    levels = max(len(b) for b, _ in per_row)
    if levels > MAX_CODEBOOK:
        return None
    books = np.zeros((rows, levels), dtype=np.float32)
    for i, (b, _) in enumerate(per_row):
        books[i, :len(b)] = b
    codes = np.concatenate([c for _, c in per_row])
    b = _bits(levels)
    return {"levels": levels, "bits": b}, [books.tobytes(), pack_codes(codes, b)]


def _grid_scale(row: np.ndarray) -> np.float32 | None:
    """A float32 scale s with row == float32(k * s) exactly for whole numbers k, |k| <= 255, if one exists.

    That is how k-bit quantization (symmetric or affine, per channel) computes its values; the
    scale is recovered from the largest value and checked bit for bit, so decoding is exact."""
    levels = np.unique(row)
    nonzero = levels[levels != 0]
    if len(nonzero) == 0:
        return np.float32(1.0)
    gaps = np.diff(levels)
    step = gaps[gaps > 0].min() if len(levels) > 1 else abs(nonzero[0])
    big = nonzero[np.argmax(np.abs(nonzero))]
    k_big = np.round(big / step)
    if k_big == 0 or abs(k_big) > 255:
        return None
    guess = np.float32(big / k_big)
    for s in (guess, *np.nextafter(guess, np.float32([np.inf, -np.inf])).astype(np.float32)):
        k = np.round(row / s)
        if np.abs(k).max() <= 255 and np.array_equal((k.astype(np.float32) * s).astype(np.float32), row):
            return np.float32(s)
    return None


def _row_grid(values: np.ndarray, rows: int):
    """Per output channel: one float32 scale and packed integer codes (k-bit quantized weights)."""
    grid = values.reshape(rows, -1)
    scales = []
    for r in grid:
        s = _grid_scale(r)
        if s is None:
            return None
        scales.append(s)
    scales = np.array(scales, dtype=np.float32)
    k = np.round(grid / scales[:, None]).astype(np.int32)
    low = k.min(axis=1)
    span = int((k - low[:, None]).max()) + 1
    if span > 256:
        return None
    b = _bits(span)
    return {"bits": b}, [scales.tobytes(), low.astype(np.int16).tobytes(),
                         pack_codes((k - low[:, None]).reshape(-1), b)]


def _huffman_codebook(values: np.ndarray):
    """One codebook, codes Huffman-coded: fewer bits for the common values."""
    book, codes = np.unique(values, return_inverse=True)
    if len(book) > MAX_CODEBOOK or len(book) < 2:
        return None
    coded = huffman.encode(codes, len(book))
    if coded is None:
        return None
    return {"book": len(book), "lengths": coded[0].tolist()}, [book.astype(np.float32).tobytes(), coded[1]]


def relative_index(positions: np.ndarray, codes: np.ndarray, gap_bits: int, filler: int):
    """(gaps, symbols): each non-zero as the count of zeros skipped before it (< 2^gap_bits) and its code;
    a longer run of zeros is bridged by filler entries (gap 2^gap_bits - 1, symbol `filler`, value 0)."""
    top = (1 << gap_bits) - 1
    gap = np.diff(positions, prepend=-1) - 1
    fillers = gap // (top + 1)
    owner = np.repeat(np.arange(len(positions)), fillers + 1)
    within = np.arange(len(owner)) - (np.cumsum(fillers + 1) - (fillers + 1))[owner]
    last = within == fillers[owner]
    return (np.where(last, (gap - fillers * (top + 1))[owner], top),
            np.where(last, codes[owner], filler))


def _sparse_relative(flat: np.ndarray):
    """Deep Compression's sparse storage: relative indices + codebook codes, both Huffman-coded;
    the gap width (1-8 bits) that gives the fewest bytes."""
    positions = np.flatnonzero(flat)
    if len(positions) == 0:
        return None
    book, codes = np.unique(flat[positions], return_inverse=True)
    if len(book) > MAX_CODEBOOK:
        return None
    best = None
    for gap_bits in range(1, 9):
        gaps, symbols = relative_index(positions, codes, gap_bits, filler=len(book))
        coded_gaps, coded_codes = huffman.encode(gaps, 1 << gap_bits), huffman.encode(symbols, len(book) + 1)
        if coded_gaps is None or coded_codes is None:
            continue
        size = len(coded_gaps[1]) + len(coded_codes[1]) + 2 * int(coded_gaps[0].size + coded_codes[0].size)
        if best is None or size < best[0]:
            meta = {"book": len(book), "gap_bits": gap_bits, "entries": len(gaps),
                    "gap_lengths": coded_gaps[0].tolist(), "code_lengths": coded_codes[0].tolist()}
            best = (size, meta, [book.astype(np.float32).tobytes(), coded_gaps[1], coded_codes[1]])
    return best and best[1:]


def encode(t: torch.Tensor) -> tuple[dict, list[bytes]]:
    """The smallest exact encoding of one tensor."""
    arr = t.detach().cpu().contiguous().numpy()
    meta = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
    if arr.dtype != np.float32 or arr.size < 64:
        return {**meta, "enc": "raw"}, [arr.tobytes()]
    flat = arr.reshape(-1)
    nz = flat != 0
    options = [("raw", {}, [flat.tobytes()])]
    for name, enc in (("codebook", _codebook(flat)), ("huffman_codebook", _huffman_codebook(flat)),
                      ("row_codebook", _row_codebook(flat, arr.shape[0]) if arr.ndim > 1 else None),
                      ("row_grid", _row_grid(flat, arr.shape[0]) if arr.ndim > 1 else None)):
        if enc:
            options.append((name, *enc))
    if nz.mean() < 0.9:
        mask = np.packbits(nz).tobytes()
        options.append(("sparse_raw", {}, [mask, flat[nz].tobytes()]))
        enc = _codebook(flat[nz]) if nz.any() else None
        if enc:
            options.append(("sparse_codebook", enc[0], [mask, *enc[1]]))
        enc = _sparse_relative(flat)
        if enc:
            options.append(("sparse_relative", *enc))
    name, extra, blobs = min(options, key=lambda o: sum(len(b) for b in o[2]))
    return {**meta, "enc": name, **extra}, blobs


def decode(meta: dict, blobs: list[bytes]) -> torch.Tensor:
    return torch.from_numpy(etz.decode_tensor(meta, blobs))


# ---- files ------------------------------------------------------------------------------

def write_archive(model: LoadedModel, path: str | Path) -> Path:
    """Write `model` (an nn.Module with a known architecture) as a compact archive."""
    if model.arch is None:
        raise ModelLoadError(f"{model.name} is a fixed graph with no rebuildable architecture; "
                             "the compact archive needs an architecture name.")
    tensors, payload = [], []
    for name, t in model.module.state_dict().items():
        meta, blobs = encode(t)
        tensors.append({"name": name, **meta, "blobs": [len(b) for b in blobs]})
        payload += blobs
    header = json.dumps({"arch": model.arch, "arch_kwargs": model.arch_kwargs, "input_shape": list(model.input_shape),
                         "num_classes": model.num_classes, "name": model.name, "tensors": tensors}).encode()
    raw = struct.pack(">I", len(header)) + header + b"".join(payload)
    path = Path(path)
    path.write_bytes(MAGIC + lzma.compress(raw, preset=6 if len(raw) > BIG_PAYLOAD else 9 | lzma.PRESET_EXTREME))
    return path


def _load_module(path: str | Path, threads: int | None = None) -> nn.Module:
    return load_archive(path).module.eval()


# edgetrim's own transport file, run by PyTorch after decoding (the deploy step is not stored: weights only)
RUNTIME = Runtime(name="archive", package="torch", suffix=".etz", kept_as="archive", measures_file=False,
                  version=lambda: f"{torch.__version__} (edgetrim archive)", why_unavailable=lambda: None,
                  why_not=lambda model, deploy: None if model.arch else "the archive needs an architecture edgetrim builds",
                  write=lambda model, deploy, path, calibration=None: write_archive(model, path),
                  load=_load_module, score=accuracy, time=time_module)
