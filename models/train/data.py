"""Reading the method 2.5 LMDB datasets and sampling batches deterministically per iteration.

``LMDBImages`` reads like rosinality's MultiResolutionDataset (key ``f"{size}-{index:05d}"``),
picking the smallest stored size >= the requested resolution and resizing when they differ.
``step_indices`` is an infinite, epoch-shuffled, step-addressable sampler: the global batch of
iteration ``step`` is a pure function of (seed, step), so resuming needs no sampler state, and
``StepBatchSampler`` hands each rank its contiguous share (the DistributedSampler role).
"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path

import lmdb
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

MAX_PIXELS = 64_000_000
_ENVS: dict = {}  # (path, pid) -> lmdb environment: LMDB allows one handle per process


def _env(path: str):
    key = (path, os.getpid())
    if key not in _ENVS:
        # a forked loader worker inherits the parent's handle, which LMDB forbids using (and
        # py-lmdb refuses to open the path twice): close the inherited copy in this process
        for other in [k for k in _ENVS if k[0] == path and k[1] != key[1]]:
            _ENVS.pop(other).close()
        _ENVS[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    return _ENVS[key]


def image_to_uint8(img: Image.Image, resolution: int | None = None) -> torch.Tensor:
    """PIL image -> (3, R, R) uint8."""
    img = img.convert("RGB")
    if resolution and img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1]; float input is returned as it is."""
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def image_to_tensor(img: Image.Image, resolution: int | None = None) -> torch.Tensor:
    """PIL image -> (3, R, R) float in [-1, 1]."""
    return to_unit(image_to_uint8(img, resolution))


def load_image(path, resolution: int | None = None) -> torch.Tensor:
    """An image file as (3, R, R) in [-1, 1]; unreadable files raise ValueError naming them."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as img:
            return image_to_tensor(img, resolution)
    except (OSError, Image.DecompressionBombError) as e:  # missing, not an image, truncated
        raise ValueError(f"{path}: cannot read the image ({e.__class__.__name__}: {e})") from e


class LMDBImages(Dataset):
    """Images of a packed LMDB at ``resolution`` (the smallest stored size that is at least as
    large, resized), as floats in [-1, 1], or as uint8 from ``as_uint8()``."""

    def __init__(self, path, resolution: int, indices=None):
        self.path = str(path)
        self.resolution = resolution
        self.uint8 = False
        with _env(self.path).begin() as txn:
            length = int(txn.get(b"length").decode())
            raw = txn.get(b"metadata")
        self.metadata = json.loads(raw) if raw else {}
        self.width = int(self.metadata.get("index_width", 5))
        sizes = sorted(self.metadata.get("sizes") or [resolution])
        fits = [s for s in sizes if s >= resolution]
        self.stored = fits[0] if fits else sizes[-1]
        self.all_names = list(self.metadata.get("names") or [str(i) for i in range(length)])
        self.indices = list(range(length)) if indices is None else list(indices)

    @property
    def names(self) -> list[str]:
        return [self.all_names[i] for i in self.indices]

    def as_uint8(self) -> "LMDBImages":
        """The same images as uint8 (training loaders: their workers then skip the float
        conversion and move, pin and copy a quarter of the bytes; ``to_unit`` converts on the
        device, with the same values)."""
        view = copy.copy(self)
        view.uint8 = True
        return view

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = self.indices[i]
        key = f"{self.stored}-{str(index).zfill(self.width)}".encode()
        with _env(self.path).begin() as txn:
            blob = txn.get(key)
        if blob is None:
            raise KeyError(f"{self.path}: missing key {key.decode()}")
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with Image.open(io.BytesIO(blob)) as img:
                return (image_to_uint8 if self.uint8 else image_to_tensor)(img, self.resolution)
        except (OSError, Image.DecompressionBombError) as e:  # truncated or not an image
            raise ValueError(f"{self.path}: key {key.decode()}: cannot decode the image "
                             f"({e.__class__.__name__}: {e})") from e


def split_indices(length: int, holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) index lists: a seeded random ``holdout`` images are kept out."""
    holdout = max(0, min(holdout, length - 1))
    perm = torch.randperm(length, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[holdout:]), sorted(perm[:holdout])


def step_indices(length: int, batch: int, seed: int, step: int) -> list[int]:
    """Positions (0..length-1) of iteration ``step``'s global batch: consecutive slices of an
    endless stream of per-epoch permutations."""
    out = []
    start = step * batch
    while len(out) < batch:
        epoch, offset = divmod(start + len(out), length)
        perm = torch.randperm(length, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out += perm[offset:offset + batch - len(out)].tolist()
    return out


class StepBatchSampler:
    """Infinite batch sampler from ``start_step``: this rank's slice of each global batch."""

    def __init__(self, length, batch, seed, start_step=0, rank=0, world=1):
        self.length, self.batch, self.seed = length, batch, seed
        self.step, self.rank, self.world = start_step, rank, world

    def __iter__(self):
        step = self.step
        b = self.batch // self.world
        while True:
            idx = step_indices(self.length, self.batch, self.seed, step)
            yield idx[self.rank * b:(self.rank + 1) * b]
            step += 1


class StepLoader:
    """Batches addressed by iteration; restarts its iterator if asked for a step out of order."""

    def __init__(self, dataset, batch, seed, rank=0, world=1, workers=0, pin_memory=None,
                 prefetch: int = 4):
        self.dataset, self.batch, self.seed = dataset, batch, seed
        self.rank, self.world, self.workers = rank, world, workers
        # pinned batches let the trainer's copy to the GPU run without blocking the host
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.prefetch = prefetch
        self._it, self._next = None, None

    def get(self, step: int) -> torch.Tensor:
        if self._it is None or step != self._next:
            sampler = StepBatchSampler(len(self.dataset), self.batch, self.seed, step,
                                       self.rank, self.world)
            extra = {"prefetch_factor": self.prefetch} if self.workers > 0 else {}
            loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.workers,
                                persistent_workers=False, pin_memory=self.pin_memory, **extra)
            self._it = iter(loader)
        self._next = step + 1
        return next(self._it)


def check_lmdb(path) -> Path:
    path = Path(path)
    if not (path / "data.mdb").exists():
        raise FileNotFoundError(f"{path}: not an LMDB folder (no data.mdb)")
    return path
