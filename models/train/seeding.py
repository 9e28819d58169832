"""Randomness addressed by iteration: a resumed run draws what an uninterrupted one would.

Every random draw of an iteration comes from a generator seeded by (seed, step, stream), made
for the global batch (the same on every rank); draws made inside the models come from the
global RNGs, reseeded per (iteration, rank).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def _mix(*parts: int) -> int:
    h = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def step_generator(seed: int, step: int, stream: str = "") -> torch.Generator:
    """A CPU generator for one iteration's global-batch draws (same on every rank)."""
    return torch.Generator().manual_seed(_mix(seed, step, stream))


def seed_step(seed: int, step: int, rank: int):
    """Seed the global RNGs per (iteration, rank), for draws made inside models."""
    s = _mix(seed, step, "global", rank)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % (2 ** 32))
