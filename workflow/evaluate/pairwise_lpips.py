"""Mean pairwise LPIPS of a set of images: the diversity of method 5 (lpips.py) and of the
StarGAN v2 protocol (stargan_v2.py)."""

from __future__ import annotations

from itertools import combinations

import torch

from models.lpips import LPIPS


@torch.no_grad()
def mean_pairwise(net: LPIPS, images: torch.Tensor) -> float:
    """Mean LPIPS over all unordered pairs of a set of images."""
    pairs = list(combinations(range(len(images)), 2))
    if not pairs:
        return float("nan")
    i, j = map(list, zip(*pairs))
    return float(net(images[i], images[j]).mean())
