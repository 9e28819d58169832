"""Affine-only views for the contrastive style encoder (method 4.1).

Random resized crop, horizontal flip, small rotation and translation, composed into one
affine matrix per sample and applied with ``grid_sample`` (reflection padding, so no black
corners). Never colour transforms: colour *is* style. All draws come from a given generator,
so views are reproducible per iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineAugment:
    scale: tuple[float, float] = (0.25, 1.0)  # crop area fraction [decision: strong crops
                                              # keep texture/colour, lose layout]
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio
    flip: float = 0.5                # probability of a horizontal flip
    rotate: float = 10.0             # max rotation, degrees
    translate: float = 0.05          # max shift, fraction of the side

    def params(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n, 2, 3) affine matrices mapping output to input coordinates in [-1, 1]."""
        u = torch.rand(n, 6, generator=gen)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]
        log_r = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * u[:, 1]
        r = torch.exp(log_r)
        sw = torch.sqrt(area * r).clamp(max=1.0)
        sh = torch.sqrt(area / r).clamp(max=1.0)
        cx = (1 - sw) * (2 * u[:, 2] - 1)  # crop centre keeps the crop inside the image
        cy = (1 - sh) * (2 * u[:, 3] - 1)
        flip = torch.where(u[:, 4] < self.flip, -1.0, 1.0)
        ang = torch.deg2rad(self.rotate * (2 * torch.rand(n, generator=gen) - 1))
        shift = self.translate * 2 * (2 * torch.rand(n, 2, generator=gen) - 1)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos * sw * flip
        theta[:, 0, 1] = -sin * sh
        theta[:, 1, 0] = sin * sw * flip
        theta[:, 1, 1] = cos * sh
        theta[:, 0, 2] = cx + shift[:, 0]
        theta[:, 1, 2] = cy + shift[:, 1]
        return theta

    def apply(self, images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Warp ``images`` by ``theta`` (``params`` draws it on the host: copy it to the
        images' device first)."""
        grid = F.affine_grid(theta.to(dtype=images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)


def hflip(images: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Flip the samples whose flag (a bool tensor on the images' device) is set."""
    return torch.where(flags.view(-1, 1, 1, 1), images.flip(3), images)
