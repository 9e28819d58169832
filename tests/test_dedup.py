"""The vectorised duplicate search gives exactly the answers of the pairwise loop it replaced."""
from __future__ import annotations

import numpy as np
import pytest

from workflow.dataset import dedup


def clustered_set(n_clusters: int, per_cluster: int, dim: int, seed: int):
    """Hex hashes and unit signatures in clusters: members differ from their cluster's hash by
    0..14 bits (either side of a 10-bit threshold) and correlate from ~0.98 to 1.0 (either side
    of 0.995), with exact copies among them, so every branch of the search is taken."""
    rng = np.random.default_rng(seed)
    hashes, signatures = [], []
    for _ in range(n_clusters):
        base_hash = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        base_sig = rng.standard_normal(dim)
        for _ in range(per_cluster):
            h = base_hash
            for bit in rng.choice(64, size=int(rng.integers(0, 15)), replace=False):
                h ^= 1 << int(bit)
            noise = rng.choice([0.0, 0.02, 0.05, 0.08, 0.2])
            sig = (base_sig + noise * rng.standard_normal(dim)).astype(np.float32)
            sig -= sig.mean()
            hashes.append(f"{h:016x}")
            signatures.append(sig / np.linalg.norm(sig))
    order = rng.permutation(len(hashes))
    return [hashes[k] for k in order], [signatures[k] for k in order]


@pytest.mark.parametrize("tile", [7, 64, dedup.TILE, 2048])
def test_vectorised_search_equals_the_pairwise_loop(tile):
    hashes, signatures = clustered_set(n_clusters=40, per_cluster=12, dim=256, seed=tile)
    fast = dedup.find_duplicates(hashes, signatures, 10, 0.995, tile=tile)
    slow = dedup.find_duplicates_pairwise(hashes, signatures, 10, 0.995)
    assert fast == slow  # same kept images, same matches, bit-identical correlations
    found = [m for m in slow if m]
    assert 50 < len(found) < len(hashes) - 50  # both outcomes are well represented
    assert max(m[1] for m in found) == 10 and min(m[2] for m in found) < 0.996
    close = len(dedup.near_pairs(dedup.hashes_to_uint64(hashes), 10)[0])
    assert close > 2 * len(found)  # many hash-close pairs fail the correlation check


def test_near_pairs_lists_every_close_pair_once():
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, size=300, dtype=np.uint64) & np.uint64(0xFFFF)  # many close
    i, j, d = dedup.near_pairs(hashes, 6, tile=32)
    expected = [(a, b, bin(int(hashes[a]) ^ int(hashes[b])).count("1"))
                for a in range(len(hashes)) for b in range(a)
                if bin(int(hashes[a]) ^ int(hashes[b])).count("1") <= 6]
    assert list(zip(i.tolist(), j.tolist(), d.tolist())) == expected


def test_popcount_bit_trick_matches_the_builtin(monkeypatch):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.integers(0, 2**63, size=1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1),
                        np.array([0, 2**64 - 1, 1 << 63], dtype=np.uint64)])
    expected = [bin(int(v)).count("1") for v in x]
    assert dedup.popcount64(x).tolist() == expected
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy < 2: the SWAR path
    assert dedup.popcount64(x).tolist() == expected
    out = np.empty(len(x), np.uint8)
    assert dedup.popcount64(x, out=out) is out and out.tolist() == expected


def test_hex_hashes_round_trip_through_imagehash():
    imagehash = pytest.importorskip("imagehash")
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64), dtype=np.uint8))
    h = imagehash.phash(img)
    value = int(dedup.hashes_to_uint64([str(h)])[0])
    assert value.bit_length() <= 64
    assert bin(value).count("1") == int(np.count_nonzero(h.hash))
