"""Times the duplicate search: the pairwise Python loop against the vectorised, blockwise one.

    python scripts/bench_dedup.py [--n 70000] [--loop-n 3000] [--dim 64] [--out J]

Synthetic set: random 64-bit hashes of which a tenth are near copies of another one (0..14
bits flipped, correlations either side of the threshold), unit signatures of `--dim` values
(the filter's are 4,096; their length only matters for the few hash-close pairs). The loop is
quadratic, so it runs on the first `--loop-n` images and its time at `--n` is extrapolated by
the number of pairs; the fast search runs on all `--n`, and both give the same answers on the
subset (checked here, and in tests/test_dedup.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from basics.files import write_json_atomic
from workflow.dataset.dedup import find_duplicates, find_duplicates_pairwise


def synthetic(n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, size=n, dtype=np.uint64)
    signatures = rng.standard_normal((n, dim)).astype(np.float32)
    copies = rng.choice(n, size=n // 10, replace=False)
    for k in copies:
        src = int(rng.integers(0, n))
        flips = rng.choice(64, size=int(rng.integers(0, 15)), replace=False)
        values[k] = values[src] ^ np.uint64(sum(1 << int(b) for b in flips))
        signatures[k] = signatures[src] + rng.choice([0.0, 0.05, 0.3]) * rng.standard_normal(dim)
    signatures -= signatures.mean(1, keepdims=True)
    signatures /= np.linalg.norm(signatures, axis=1, keepdims=True)
    return [f"{int(v):016x}" for v in values], list(signatures)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=70_000)
    p.add_argument("--loop-n", type=int, default=3000, help="images the quadratic loop is timed on")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--hamming", type=int, default=10)
    p.add_argument("--correlation", type=float, default=0.995)
    p.add_argument("--out", help="write the figures as JSON here")
    a = p.parse_args(argv)
    hashes, signatures = synthetic(a.n, a.dim)
    sub = (hashes[:a.loop_n], signatures[:a.loop_n], a.hamming, a.correlation)
    loop_matches, loop_s = timed(find_duplicates_pairwise, *sub)
    fast_sub, fast_sub_s = timed(find_duplicates, *sub)
    assert fast_sub == loop_matches, "the vectorised search disagrees with the loop"
    fast_all, fast_s = timed(find_duplicates, hashes, signatures, a.hamming, a.correlation)
    pairs = lambda n: n * (n - 1) / 2
    result = {
        "n": a.n, "loop_n": a.loop_n, "dim": a.dim,
        "loop_seconds_at_loop_n": round(loop_s, 2),
        "loop_us_per_pair": round(loop_s / pairs(a.loop_n) * 1e6, 3),
        "loop_seconds_at_n_extrapolated": round(loop_s * pairs(a.n) / pairs(a.loop_n), 1),
        "vectorised_seconds_at_loop_n": round(fast_sub_s, 3),
        "vectorised_seconds_at_n": round(fast_s, 2),
        "duplicates_at_n": sum(m is not None for m in fast_all),
        "identical_at_loop_n": True,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "numpy": np.__version__, "load_average": os.getloadavg()[0]},
    }
    print(json.dumps(result, indent=1))
    if a.out:
        write_json_atomic(a.out, result)


if __name__ == "__main__":
    main()
