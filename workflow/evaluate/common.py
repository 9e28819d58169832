"""Small helpers shared by the metrics and the figures: records, LMDB subsets, CLI options.

Networks, codes and pictures (load_models, face_codes, to_uint8, grid, ...) are
workflow.sampling's, shared with the user CLI and the web page.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from basics.files import write_json_atomic
from models.images import LMDBImages

GEN_BATCH = 16  # generator batch of the streamed metrics (the sample sets' as well)


def write_json(path, obj) -> None:
    """A metric record, atomically; numpy scalars, paths and tensors become plain JSON."""
    write_json_atomic(path, obj, indent=1, default=_jsonable)


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    if torch.is_tensor(x):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def not_computed(metric: str, reason: str, **record) -> dict:
    """The record of a metric whose network weights (or inputs) are missing: never faked."""
    return {"metric": metric, "computed": False, "reason": reason, **record}


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}


def return_freed_memory() -> None:
    """Serve allocations of 1 MB and more (a batch of 32 images at 256 is 6 MB as bytes, 25 MB as
    floats) from their own memory maps, given back to the system when freed. By default glibc
    raises that threshold after the first such free and serves later batches from the heap, where
    the small arrays kept between batches (features, codes) pin the freed holes: the resident set
    then grew with the number of batches (measured: 1.26 GB at 1,000 images, 0.67 GB at 250)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # -3: M_MMAP_THRESHOLD (malloc.h)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation with no fixed point (n >= 2): a random cyclic shift of a random order.
    The mismatched-pair baselines pair each item with another one's partner."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    shift = int(rng.integers(1, n))
    perm = np.empty(n, dtype=int)
    perm[order] = order[(np.arange(n) + shift) % n]
    return perm


def add_run_args(p, batch_help: str):
    """The options both streamed-FID CLIs share (workflow.evaluate.fid and .stargan_v2)."""
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--batch", type=int, default=GEN_BATCH, help=batch_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", required=True)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# ------------------------------------------------------------------------------- images
def lmdb_images(path, resolution: int, n: int | None = None, seed: int = 0,
                indices=None) -> tuple[torch.Tensor, list[str], list[int]]:
    """Up to n images of an LMDB (a seeded random subset), (N, 3, R, R) in [-1, 1]."""
    ds = LMDBImages(path, resolution)
    if indices is None:
        indices = lmdb_indices(path, n, seed)
    images = torch.stack([ds[i] for i in indices]) if indices else torch.empty(0, 3, resolution, resolution)
    return images, [ds.all_names[i] for i in indices], list(indices)


def lmdb_indices(path, n: int | None = None, seed: int = 0) -> list[int]:
    """Every index, or a seeded random subset of n (sorted): the selection of lmdb_images."""
    length = lmdb_length(path)
    if n is None or n >= length:
        return list(range(length))
    return sorted(np.random.default_rng(seed).choice(length, size=n, replace=False).tolist())


def lmdb_batches(path, resolution: int, indices: list[int], batch: int = 32):
    """The images at ``indices`` as (B, 3, R, R) tensors in [-1, 1], one batch at a time (a
    paper-scale reference set decoded whole would be 70,000 x 3 x 256² floats = 55 GB)."""
    ds = LMDBImages(path, resolution)
    for start in range(0, len(indices), batch):
        yield torch.stack([ds[i] for i in indices[start:start + batch]])


def lmdb_length(path) -> int:
    return len(LMDBImages(path, 8))


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1
