"""Sampling training batches deterministically per iteration (the images: ``models.images``).

``step_indices`` is an infinite, epoch-shuffled, step-addressable sampler: the global batch of
iteration ``step`` is a pure function of (seed, step), so resuming needs no sampler state, and
``StepBatchSampler`` hands each rank its contiguous share (the DistributedSampler role).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader


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
