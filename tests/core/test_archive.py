"""The compact archive's Deep Compression encodings: Huffman coding and relative indices, exact both ways."""
import numpy as np
import pytest
import torch

from core.runtimes import archive, huffman


@pytest.mark.parametrize("symbols", [np.zeros(50, dtype=np.int64),                       # one symbol only
                                     np.random.default_rng(0).integers(0, 17, 5000),      # flat
                                     np.random.default_rng(1).geometric(0.4, 20000) - 1])  # skewed
def test_huffman_round_trips_and_beats_fixed_width_on_skewed_data(symbols):
    alphabet = int(symbols.max()) + 1
    lengths, blob = huffman.encode(symbols, alphabet)
    assert np.array_equal(huffman.decode(lengths, blob, len(symbols)), symbols)
    counts = np.bincount(symbols, minlength=alphabet)
    assert len(blob) * 8 <= (counts * np.maximum(lengths, 1)).sum() + 8   # exactly the code lengths, padded to a byte
    if alphabet > 2 and len(symbols) == 20000:
        assert len(blob) * 8 < len(symbols) * np.ceil(np.log2(alphabet))


def test_relative_index_bridges_long_gaps_with_filler_zeros():
    positions, codes = np.array([0, 3, 40]), np.array([5, 6, 7])
    gaps, symbols = archive.relative_index(positions, codes, gap_bits=3, filler=9)
    # 0 -> gap 0; 3 -> gap 2; 40 -> 36 zeros skipped: four fillers of 8 positions (gap 7) then gap 4
    assert gaps.tolist() == [0, 2, 7, 7, 7, 7, 4]
    assert symbols.tolist() == [5, 6, 9, 9, 9, 9, 7]
    assert (np.cumsum(gaps + 1) - 1)[symbols != 9].tolist() == positions.tolist()


def test_a_pruned_shared_layer_is_stored_sparse_relative_and_decodes_bit_identically():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(300, 784, generator=g)
    w[torch.rand(300, 784, generator=g) < 0.92] = 0
    levels = torch.linspace(-2, 2, 32)
    nz = w != 0
    w[nz] = levels[(w[nz, None] - levels).abs().argmin(1)]
    meta, blobs = archive.encode(w)
    assert meta["enc"] == "sparse_relative"
    assert torch.equal(archive.decode(meta, blobs), w)
    bits_per_nonzero = sum(map(len, blobs)) * 8 / int(nz.sum())
    assert bits_per_nonzero < 11, bits_per_nonzero   # a mask + 5-bit codes: 12.5 + 5 bits per non-zero here
