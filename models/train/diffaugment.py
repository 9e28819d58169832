"""Differentiable augmentation of every image a discriminator sees (DiffAugment, Zhao et al. 2020).

With a few hundred training images a discriminator memorises the reals within a few epochs
and stops teaching the generator. Augmenting reals *and* fakes with the same random,
differentiable transforms, in every D call (losses and R1 alike), keeps it from memorising,
while the generator still learns the un-augmented distribution: the transforms are applied
to both sides and G is trained through them. Off (empty policy) at paper scale, where AAHQ
and FFHQ are tens of thousands of images; the demo's small sets use it.

Policy: a comma-separated subset of ``color`` (brightness, saturation, contrast),
``translation`` (integer shifts up to 1/8 of the side, zero fill) and ``cutout`` (a zeroed
square of half the side). Draws use torch's global generator on the images' device, which
the training loop seeds per (seed, step, rank).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str | None) -> tuple[str, ...]:
    names = tuple(p.strip() for p in (text or "").split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"diff_augment: unknown transform(s) {unknown}; choose from {POLICIES}")
    return names


def _rand(x: torch.Tensor, *shape) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + (_rand(x, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Whole-pixel shifts by nearest sampling (exact copies of pixels, zeros outside)."""
    n, _, h, w = x.shape
    limit = torch.tensor([w, h], device=x.device, dtype=x.dtype) * ratio
    shift = torch.round((_rand(x, 2) * 2 - 1) * limit)  # pixels, (n, 2)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = -2 * shift / torch.tensor([w, h], device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (_rand(x) * (h + 1 - ch % 2)).floor().view(n, 1, 1)
    cx = (_rand(x) * (w + 1 - cw % 2)).floor().view(n, 1, 1)
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    inside = ((ys - cy).abs() < ch / 2) & ((xs - cx).abs() < cw / 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    for name in policy:
        x = TRANSFORMS[name](x)
    return x
