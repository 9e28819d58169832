"""The three BlendGAN discriminators (method 3.3).

D_face and D_style are plain StyleGAN2 discriminators (``stylegan2.Discriminator``; D_face loads
the checkpoint's ``d``; D_style is randomly initialised as supplement A says, or a copy of D_face
as an option). D_style_latent shares the trunk and replaces
the head with a projection on z_s: out = l_out(h) + <l_style(z_s), h>, h the sum-pooled 4x4
features (names ``l_out``, ``l_style`` as in the released BlendGAN code).
"""

from __future__ import annotations

import copy

from torch import nn

from .layers import EqualLinear
from .stylegan2 import Discriminator


class StyleLatentDiscriminator(Discriminator):
    def __init__(
        self,
        size: int,
        style_dim: int = 512,         # width of z_s
        channel_multiplier: int = 2,
        blur_kernel=(1, 3, 3, 1),
        channel_base: int = 16384,
        channel_max: int = 512,
        stddev_group: int = 4,
    ):
        super().__init__(size, channel_multiplier, blur_kernel, channel_base, channel_max,
                         stddev_group)
        self.init_kwargs["style_dim"] = style_dim
        del self.final_linear  # the projection head replaces the fully connected head
        c = self.final_channels
        self.l_out = EqualLinear(c, 1)
        self.l_style = EqualLinear(style_dim, c)

    def forward(self, x, z_style):
        h = self.features(x).sum(dim=(2, 3))
        return self.l_out(h) + (self.l_style(z_style) * h).sum(dim=1, keepdim=True)


D_STYLE_INITS = ("random", "copy")


def make_discriminators(size: int, style_dim: int = 512, d_face: nn.Module | None = None,
                        d_style_init: str = "random", **kwargs) -> dict[str, nn.Module]:
    """D_face (given or random), D_style (random, method 4.2, or a copy of D_face) and
    D_style_latent (random)."""
    if d_style_init not in D_STYLE_INITS:
        raise ValueError(f"d_style_init must be one of {D_STYLE_INITS}, got {d_style_init!r}")
    d_face = d_face if d_face is not None else Discriminator(size, **kwargs)
    d_style = copy.deepcopy(d_face) if d_style_init == "copy" else Discriminator(size, **kwargs)
    return {
        "d_face": d_face,
        "d_style": d_style,
        "d_style_latent": StyleLatentDiscriminator(size, style_dim, **kwargs),
    }


__all__ = ["D_STYLE_INITS", "Discriminator", "StyleLatentDiscriminator", "make_discriminators"]
