"""Canonical Huffman coding of small-alphabet symbol streams (Deep Compression's last stage).

Only the code length of each symbol is stored; codes are rebuilt canonically on both
sides. Encoding is vectorised with numpy; decoding reads one table entry per symbol
through a window of the longest code's length, so it stays fast for the millions of
symbols of a large layer.
"""
from __future__ import annotations

import heapq

import numpy as np

MAX_CODE_BITS = 20  # beyond this the decoding table would be too large; the caller picks another encoding


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length of each symbol (0 for symbols that never occur)."""
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = [i for i in range(len(counts)) if counts[i] > 0]
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    heap = [(int(counts[i]), i, [i]) for i in used]
    heapq.heapify(heap)
    tiebreak = len(counts)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (c1 + c2, tiebreak, s1 + s2))
        tiebreak += 1
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each symbol, given its length (symbols sorted by (length, symbol))."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, prev = 0, 0
    for s in sorted((s for s in range(len(lengths)) if lengths[s] > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        codes[s], prev = code, int(lengths[s])
        code += 1
    return codes


def encode(symbols: np.ndarray, alphabet: int) -> tuple[np.ndarray, bytes] | None:
    """(code lengths, packed bits) of `symbols` (ints in [0, alphabet)); None if a code would be too long."""
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    if lengths.max() > MAX_CODE_BITS:
        return None
    codes = canonical_codes(lengths)
    lens = lengths[symbols]
    starts = np.cumsum(lens) - lens
    owner = np.repeat(np.arange(len(symbols)), lens)
    within = np.arange(int(lens.sum())) - starts[owner]
    bits = (codes[symbols][owner] >> (lens[owner] - 1 - within)) & 1
    return lengths, np.packbits(bits.astype(np.uint8)).tobytes()


def decode(lengths: np.ndarray, blob: bytes, n: int) -> np.ndarray:
    """The `n` symbols coded in `blob` under the canonical code of `lengths`."""
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
    # window[i] = the `width` bits starting at bit i, as an integer
    window = np.zeros(len(bits) - width + 1, dtype=np.int64)
    for j in range(width):
        window = (window << 1) | bits[j:j + len(window)]
    sym, size, win = table_sym.tolist(), table_len.tolist(), window.tolist()
    out, pos = [0] * n, 0
    for i in range(n):
        w = win[pos]
        out[i] = sym[w]
        pos += size[w]
    return np.array(out, dtype=np.int64)
