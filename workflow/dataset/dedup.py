"""Near-duplicate search over perceptual hashes, vectorised and blockwise.

Images are visited in a fixed order (the filter sorts the largest sources first). Image i is a
duplicate of the first earlier *kept* image j whose 64-bit hash lies within ``max_distance`` bits
and whose thumbnail signature correlates at ``min_correlation`` or more; otherwise it is kept.

``find_duplicates`` gives exactly the answer of ``find_duplicates_pairwise`` (the plain loop,
kept as the reference the fast search is tested and benchmarked against) without comparing
pairs in Python: Hamming distances come from XOR and popcount on uint64 arrays, tile by tile
over the lower triangle, so memory stays at one tile whatever the number of images. Only the
few pairs that pass the hash test are looked at one by one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

Match = tuple[int, int, float]  # (index of the kept image, Hamming distance, correlation)

TILE = 256  # rows and columns per tile: 256 x 256 uint64 = 0.5 MiB, cache-sized (measured best)
# Float32 correlations of a batch can differ from np.dot's in the last bits; pairs this close
# below the threshold are rechecked with np.dot, so decisions and recorded values match the loop.
SCREEN_MARGIN = 1e-3

_M1, _M2, _M4, _H01 = (np.uint64(v) for v in (0x5555555555555555, 0x3333333333333333,
                                              0x0F0F0F0F0F0F0F0F, 0x0101010101010101))


def hashes_to_uint64(hex_hashes: Sequence[str]) -> np.ndarray:
    """64-bit hex hashes (``str(imagehash.phash(img))``) as a uint64 array."""
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def popcount64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Set bits of each uint64 as uint8 (numpy >= 2 has it built in; older numpy: the SWAR bit
    trick)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x, out=out)
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    counts = (x * _H01) >> np.uint64(56)  # the product wraps mod 2^64, as the trick needs
    if out is None:
        return counts.astype(np.uint8)
    out[...] = counts
    return out


def near_pairs(hashes: np.ndarray, max_distance: int, tile: int = TILE):
    """All (i, j, distance) with j < i and Hamming distance <= max_distance, as three arrays
    sorted by i, then j."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    # One set of tile buffers, reused: allocating 0.5 MiB arrays per tile (page faults on every
    # fresh allocation) costs more than the arithmetic.
    xor = np.empty((tile, tile), np.uint64)
    dist = np.empty((tile, tile), np.uint8)
    hit = np.empty((tile, tile), bool)
    below_diagonal = np.tri(tile, k=-1, dtype=bool)
    found_i, found_j, found_d = [], [], []
    for r0 in range(0, n, tile):
        rows = hashes[r0:r0 + tile, None]
        for c0 in range(0, r0 + len(rows), tile):
            cols = hashes[None, c0:c0 + tile]
            shape = (rows.shape[0], cols.shape[1])
            x, d, h = (buf[:shape[0], :shape[1]] for buf in (xor, dist, hit))
            np.bitwise_xor(rows, cols, out=x)
            popcount64(x, out=d)
            np.less_equal(d, max_distance, out=h)
            if c0 == r0:  # the diagonal tile: only earlier columns
                h &= below_diagonal[:shape[0], :shape[1]]
            if h.any():
                i, j = np.nonzero(h)
                found_i.append(i + r0)
                found_j.append(j + c0)
                found_d.append(d[i, j])
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    i, j, d = (np.concatenate(a) for a in (found_i, found_j, found_d))
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64), d[order]


def _batched_correlation(signatures, i: np.ndarray, j: np.ndarray, chunk: int = 4096) -> np.ndarray:
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        a = np.stack([signatures[k] for k in i[s:s + chunk]])
        b = np.stack([signatures[k] for k in j[s:s + chunk]])
        out[s:s + chunk] = np.einsum("ij,ij->i", a, b)
    return out


def find_duplicates(hex_hashes: Sequence[str], signatures: Sequence[np.ndarray], max_distance: int,
                    min_correlation: float, tile: int = TILE) -> list[Match | None]:
    """For each image in visit order: the match that makes it a duplicate, or None (kept).
    ``signatures[k] @ signatures[m]`` is the correlation of images k and m."""
    i, j, dist = near_pairs(hashes_to_uint64(hex_hashes), max_distance, tile)
    screened = _batched_correlation(signatures, i, j) >= min_correlation - SCREEN_MARGIN
    i, j, dist = i[screened], j[screened], dist[screened]
    matches: list[Match | None] = [None] * len(hex_hashes)
    kept = np.ones(len(hex_hashes), dtype=bool)
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else []
    for s, e in zip(starts, list(starts[1:]) + [len(i)]):
        row = int(i[s])
        for col, d in zip(j[s:e], dist[s:e]):  # earlier images first, as the loop visits them
            if not kept[col]:
                continue
            corr = float(np.dot(signatures[row], signatures[col]))  # the loop's exact value
            if corr >= min_correlation:
                matches[row] = (int(col), int(d), corr)
                kept[row] = False
                break
    return matches


def find_duplicates_pairwise(hex_hashes: Sequence[str], signatures: Sequence[np.ndarray],
                             max_distance: int, min_correlation: float) -> list[Match | None]:
    """The reference: each image against every kept one through imagehash, in Python, as the
    filter did before (quadratic, about 3 us a pair)."""
    import imagehash

    kept: list[tuple[int, "imagehash.ImageHash"]] = []
    matches: list[Match | None] = []
    for row, hex_hash in enumerate(hex_hashes):
        h = imagehash.hex_to_hash(hex_hash)
        match = None
        for col, kh in kept:
            if h - kh <= max_distance:
                corr = float(np.dot(signatures[row], signatures[col]))
                if corr >= min_correlation:
                    match = (col, int(h - kh), corr)
                    break
        matches.append(match)
        if match is None:
            kept.append((row, h))
    return matches
