"""Read an edgetrim archive (.etz) with numpy alone: the architecture it names and every weight, bit for bit.

This file needs only Python's standard library and numpy, so it can be copied beside a device-side or server-side
program that ships the small archive and expands it at load time:

    header, weights = read("model.etz")   # header: arch, arch_kwargs, input_shape, num_classes, name, tensors
    weights["classifier.1.weight"]        # a numpy array, exactly as the model held it

The format, byte by byte, is in docs/archive-format.md. edgetrim's own loader (core.inputs.models.load_archive) is
this reader plus torch.
"""
from __future__ import annotations

import json
import lzma
import math
import struct
from pathlib import Path

import numpy as np

MAGIC = b"EDGETRIM-ARCHIVE-1\n"   # the format's name and version: a new layout gets a new number
MAX_BYTES = 1 << 31               # an archive's decompressed size is bounded: a zip bomb is refused, not expanded
ENCODINGS = ("raw", "codebook", "huffman_codebook", "row_codebook", "row_grid", "sparse_raw", "sparse_codebook",
             "sparse_relative")


class ArchiveError(ValueError):
    """Not an archive this reader understands, or a damaged one; one sentence on which."""


def read(source: str | Path | bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, {tensor name: array}) of an archive file (or its bytes)."""
    name = "the archive" if isinstance(source, bytes) else Path(source).name
    blob = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not blob.startswith(MAGIC):
        if blob.startswith(MAGIC[:17]):  # b"EDGETRIM-ARCHIVE-" and another version
            version = blob[17:blob.find(b"\n", 17)].decode(errors="replace")
            raise ArchiveError(f"{name} is an edgetrim archive of format {version!r}; this reader reads format 1.")
        raise ArchiveError(f"{name} is not an edgetrim archive.")
    try:
        raw = lzma.LZMADecompressor().decompress(blob[len(MAGIC):], max_length=MAX_BYTES)
    except lzma.LZMAError as e:
        raise ArchiveError(f"{name} is a truncated or corrupt edgetrim archive.") from e
    if len(raw) < 4:
        raise ArchiveError(f"{name} is a truncated or corrupt edgetrim archive.")
    (size,) = struct.unpack(">I", raw[:4])
    try:
        header = json.loads(raw[4:4 + size])
        offset, weights = 4 + size, {}
        for meta in header["tensors"]:
            blobs = []
            for n in meta["blobs"]:
                blobs.append(raw[offset:offset + n])
                offset += n
            weights[meta["name"]] = decode_tensor(meta, blobs)
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise ArchiveError(f"{name} is a truncated or corrupt edgetrim archive ({type(e).__name__}).") from e
    return header, weights


def decode_tensor(meta: dict, blobs: list[bytes]) -> np.ndarray:
    """One tensor from its header entry (shape, dtype, encoding and its fields) and its blobs."""
    shape, dtype, enc = tuple(meta["shape"]), np.dtype(meta["dtype"]), meta["enc"]
    n = math.prod(shape)
    if enc == "raw":
        return np.frombuffer(blobs[0], dtype=dtype).reshape(shape).copy()
    if enc == "codebook":
        flat = np.frombuffer(blobs[0], dtype=np.float32)[unpack_codes(blobs[1], meta["bits"], n)]
    elif enc == "huffman_codebook":
        flat = np.frombuffer(blobs[0], dtype=np.float32)[huffman_decode(np.array(meta["lengths"]), blobs[1], n)]
    elif enc == "sparse_relative":
        book = np.append(np.frombuffer(blobs[0], dtype=np.float32), np.float32(0))  # the last code: a filler zero
        gaps = huffman_decode(np.array(meta["gap_lengths"]), blobs[1], meta["entries"])
        symbols = huffman_decode(np.array(meta["code_lengths"]), blobs[2], meta["entries"])
        flat = np.zeros(n, dtype=np.float32)
        flat[np.cumsum(gaps + 1) - 1] = book[symbols]
    elif enc == "row_grid":
        scales = np.frombuffer(blobs[0], dtype=np.float32)
        low = np.frombuffer(blobs[1], dtype=np.int16).astype(np.int32)
        codes = unpack_codes(blobs[2], meta["bits"], n).reshape(shape[0], -1).astype(np.int32)
        flat = ((codes + low[:, None]).astype(np.float32) * scales[:, None]).astype(np.float32).reshape(-1)
    elif enc == "row_codebook":
        books = np.frombuffer(blobs[0], dtype=np.float32).reshape(shape[0], meta["levels"])
        codes = unpack_codes(blobs[1], meta["bits"], n).reshape(shape[0], -1)
        flat = np.take_along_axis(books, codes.astype(np.int64), axis=1).reshape(-1)
    elif enc in ("sparse_raw", "sparse_codebook"):
        nz = np.unpackbits(np.frombuffer(blobs[0], dtype=np.uint8))[:n].astype(bool)
        flat = np.zeros(n, dtype=np.float32)
        if enc == "sparse_raw":
            flat[nz] = np.frombuffer(blobs[1], dtype=np.float32)
        else:
            flat[nz] = np.frombuffer(blobs[1], dtype=np.float32)[unpack_codes(blobs[2], meta["bits"], int(nz.sum()))]
    else:
        raise ArchiveError(f"Unknown tensor encoding {enc!r}; this reader knows {', '.join(ENCODINGS)}.")
    return flat.reshape(shape).copy()


def unpack_codes(blob: bytes, bits: int, n: int) -> np.ndarray:
    """`n` unsigned `bits`-bit codes packed most significant bit first, one after another."""
    planes = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[: n * bits].reshape(n, bits)
    return np.packbits(np.pad(planes, ((0, 0), (8 - bits, 0))), axis=1).reshape(n)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical Huffman code of each symbol, given its length (symbols sorted by (length, symbol))."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, prev = 0, 0
    for s in sorted((s for s in range(len(lengths)) if lengths[s] > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        codes[s], prev = code, int(lengths[s])
        code += 1
    return codes


def huffman_decode(lengths: np.ndarray, blob: bytes, n: int) -> np.ndarray:
    """The `n` symbols coded in `blob` under the canonical code of `lengths`: one table lookup per symbol, through
    a window as wide as the longest code."""
    width = int(lengths.max())
    codes = canonical_codes(lengths)
    table_sym = np.zeros(1 << width, dtype=np.int64)
    table_len = np.zeros(1 << width, dtype=np.int64)
    for s in np.flatnonzero(lengths):
        shift = width - int(lengths[s])
        lo = int(codes[s]) << shift
        table_sym[lo:lo + (1 << shift)], table_len[lo:lo + (1 << shift)] = s, lengths[s]
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8)).astype(np.int64)
    bits = np.concatenate([bits, np.zeros(width, dtype=np.int64)])
    window = np.zeros(len(bits) - width + 1, dtype=np.int64)  # window[i]: the `width` bits from bit i, as a number
    for j in range(width):
        window = (window << 1) | bits[j:j + len(window)]
    sym, size, win = table_sym.tolist(), table_len.tolist(), window.tolist()
    out, pos = [0] * n, 0
    for i in range(n):
        w = win[pos]
        out[i] = sym[w]
        pos += size[w]
    return np.array(out, dtype=np.int64)
