"""StyleGAN2 generator and discriminator (config-f), rosinality/stylegan2-pytorch layout.

With default arguments the state dicts have exactly the keys and shapes of
``stylegan2-ffhq-config-f.pt`` (generator 171 entries, discriminator 64 entries at 1024).
Widths: ``channels(res) = min(channel_max, channel_base * channel_multiplier // res)``, which
reproduces rosinality's table (512 up to 32², then 256·m at 64² ... 16·m at 1024²) and lets the
demo use narrow networks (e.g. channel_base=1024, channel_max=64).
"""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from .layers import (ConstantInput, ConvLayer, EqualLinear, PixelNorm, ResBlock, StyledConv,
                     ToRGB)


def channel_table(size: int, channel_multiplier: int = 2, channel_base: int = 16384,
                  channel_max: int = 512) -> dict[int, int]:
    """Feature-map width per resolution 4 .. size."""
    if size < 4 or size & (size - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {size}")
    out = {}
    res = 4
    while res <= size:
        out[res] = max(1, min(channel_max, channel_base * channel_multiplier // res))
        res *= 2
    return out


def mapping_network(style_dim: int, n_mlp: int, lr_mlp: float) -> nn.Sequential:
    """PixelNorm + n_mlp equalized linear layers (keys ``1..n_mlp``)."""
    layers = [PixelNorm()]
    for _ in range(n_mlp):
        layers.append(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu"))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Mapping ``style`` + synthesis network; forward mirrors rosinality's signature."""

    def __init__(
        self,
        size: int,                    # output resolution (power of two)
        style_dim: int = 512,         # z and w width
        n_mlp: int = 8,               # mapping layers
        channel_multiplier: int = 2,  # config-f: 2
        blur_kernel=(1, 3, 3, 1),     # FIR taps for up/down-sampling
        lr_mlp: float = 0.01,         # mapping learning-rate multiplier
        channel_base: int = 16384,    # width numerator (see channel_table)
        channel_max: int = 512,       # width cap
    ):
        super().__init__()
        blur_kernel = [int(k) for k in blur_kernel]
        self.init_kwargs = dict(size=size, style_dim=style_dim, n_mlp=n_mlp,
                                channel_multiplier=channel_multiplier, blur_kernel=blur_kernel,
                                lr_mlp=lr_mlp, channel_base=channel_base, channel_max=channel_max)
        self.size = size
        self.style_dim = style_dim
        self.style = mapping_network(style_dim, n_mlp, lr_mlp)
        self.channels = channel_table(size, channel_multiplier, channel_base, channel_max)

        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim,
                                blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)

        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept for rosinality attribute parity
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2 ** res, 2 ** res))

        in_channel = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2 ** i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim,
                                         blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2  # 18 at 1024

    @property
    def resolution(self) -> int:
        return self.size

    def make_noise(self):
        device = self.input.input.device
        noises = [torch.randn(1, 1, 4, 4, device=device)]
        for i in range(3, self.log_size + 1):
            for _ in range(2):
                noises.append(torch.randn(1, 1, 2 ** i, 2 ** i, device=device))
        return noises

    @torch.no_grad()
    def mean_latent(self, n_latent: int, seed: int | None = None):
        """Mean of ``style`` over n_latent Gaussian codes, shape (1, style_dim)."""
        device = self.input.input.device
        gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        z = torch.randn(n_latent, self.style_dim, generator=gen).to(device)
        return self.style(z).mean(0, keepdim=True)

    def get_latent(self, z):
        return self.style(z)

    def constant_noise(self):
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def mix_latents(self, styles, inject_index=None):
        """One w (N, D) broadcast to all layers, a W+ tensor (N, n_latent, D) as is, or two w
        codes switched at ``inject_index`` (random in 1..n_latent-1 if None): style mixing.
        A tensor ``inject_index`` (0-dim or per row; n_latent = no mixing) selects with
        torch.where: the same values, but one static graph whatever its value, so torch.compile
        and CUDA graphs never re-specialise on the switch layer."""
        if len(styles) < 2:
            w = styles[0]
            return w if w.ndim == 3 else w.unsqueeze(1).repeat(1, self.n_latent, 1)
        if torch.is_tensor(inject_index):
            layer = torch.arange(self.n_latent, device=styles[0].device)
            first = (layer < inject_index.reshape(-1, 1)).unsqueeze(-1)  # (1 or N, n_latent, 1)
            return torch.where(first, styles[0].unsqueeze(1), styles[1].unsqueeze(1))
        if inject_index is None:
            inject_index = random.randint(1, self.n_latent - 1)
        a = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        b = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([a, b], 1)

    def synthesis(self, latent, noise=None, randomize_noise: bool = True):
        """W+ latent (N, n_latent, D) -> image (N, 3, size, size)."""
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.constant_noise()
        out = self.input(latent)
        out = self.conv1(out, latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2],
                                                        noise[1::2], noise[2::2], self.to_rgbs):
            out = conv1(out, latent[:, i], noise=noise1)
            out = conv2(out, latent[:, i + 1], noise=noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip

    def forward(self, styles, return_latents=False, inject_index=None, truncation=1.0,
                truncation_latent=None, input_is_latent=False, noise=None, randomize_noise=True):
        if torch.is_tensor(styles):
            styles = [styles]
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        latent = self.mix_latents(styles, inject_index)
        image = self.synthesis(latent, noise, randomize_noise)
        return (image, latent) if return_latents else (image, None)


class Discriminator(nn.Module):
    """Residual discriminator with minibatch-stddev; keys ``convs.*``, ``final_conv``,
    ``final_linear`` as in rosinality."""

    def __init__(
        self,
        size: int,                    # input resolution (power of two)
        channel_multiplier: int = 2,
        blur_kernel=(1, 3, 3, 1),
        channel_base: int = 16384,
        channel_max: int = 512,
        stddev_group: int = 4,        # minibatch-stddev group size
    ):
        super().__init__()
        blur_kernel = [int(k) for k in blur_kernel]
        self.init_kwargs = dict(size=size, channel_multiplier=channel_multiplier,
                                blur_kernel=blur_kernel, channel_base=channel_base,
                                channel_max=channel_max, stddev_group=stddev_group)
        self.size = size
        channels = channel_table(size, channel_multiplier, channel_base, channel_max)
        convs = [ConvLayer(3, channels[size], 1)]
        in_channel = channels[size]
        for i in range(int(math.log2(size)), 2, -1):
            out_channel = channels[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = stddev_group
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, channels[4], 3)
        self.final_channels = channels[4]
        self._make_head(channels[4])

    def _make_head(self, channels: int):
        self.final_linear = nn.Sequential(
            EqualLinear(channels * 4 * 4, channels, activation="fused_lrelu"),
            EqualLinear(channels, 1),
        )

    def minibatch_stddev(self, out):
        batch, channel, height, width = out.shape
        # Largest group <= stddev_group that divides the batch (rosinality assumes it does).
        group = min(batch, self.stddev_group)
        while batch % group:
            group -= 1
        stddev = out.reshape(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)
        stddev = stddev.repeat(group, 1, height, width)
        return torch.cat([out, stddev], 1)

    def features(self, x):
        """Trunk: image -> final_conv output (N, C4, 4, 4)."""
        return self.final_conv(self.minibatch_stddev(self.convs(x)))

    def forward(self, x):
        out = self.features(x)
        return self.final_linear(out.reshape(out.shape[0], -1))
