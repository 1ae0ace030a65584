"""Canonical Huffman coding of small-alphabet symbol streams (Deep Compression's last stage).

Only the code length of each symbol is stored; codes are rebuilt canonically on both
sides. Encoding is vectorised with numpy; decoding reads one table entry per symbol
through a window of the longest code's length, so it stays fast for the millions of
symbols of a large layer.
"""
from __future__ import annotations

import heapq

import numpy as np

from core.inputs.etz import canonical_codes, huffman_decode as decode  # noqa: F401 (the decoder lives with the reader)

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
