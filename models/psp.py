"""pSp encoder (method 3.4): IR-SE50 backbone + feature pyramid + map-to-style blocks -> W+.

Module names follow pixel2style2pixel (``input_layer``, ``body``, ``styles``, ``latlayer1/2``,
``shortcut_layer``, ``res_layer``, SE ``fc1/fc2``) so the ``encoder.*`` weights of a pSp
checkpoint load strictly. Widths and depths are configurable for tests and the demo.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualLinear

IR_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}  # residual units per depth
IR_MODES = ("ir", "ir_se")  # plain IR blocks, or with squeeze-excitation (pSp's default)


class SEModule(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        w = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * w


class BottleneckIR(nn.Module):
    """ArcFace-style improved residual unit, optionally with squeeze-excitation (IR-SE)."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = True):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth))
        layers = [nn.BatchNorm2d(in_channel),
                  nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
                  nn.PReLU(depth),
                  nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
                  nn.BatchNorm2d(depth)]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class GradualStyleBlock(nn.Module):
    """Strided convs down to 1x1, then an equalized linear layer: one w-vector."""

    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        self.out_c = out_c
        num_pools = max(1, int(math.log2(spatial)))
        modules = [nn.Conv2d(in_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(out_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.out_c))


class GradualStyleEncoder(nn.Module):
    def __init__(
        self,
        n_styles: int = 18,          # w-vectors to predict (the generator's n_latent)
        style_dim: int = 512,
        num_layers: int = 50,        # IR depth: 50, 100 or 152 (ignored when units is given)
        mode: str = "ir_se",         # "ir_se" (pSp default) or "ir"
        widths=(64, 128, 256, 512),  # channels of the four stages
        units=None,                  # residual units per stage, e.g. (1, 1, 1, 1) in tests
        input_size: int = 256,       # spatial size the backbone sees
        coarse_ind: int = 3,         # styles [0, coarse) from the 1/16 map,
        middle_ind: int = 7,         # [coarse, middle) from 1/8, the rest from 1/4
    ):
        super().__init__()
        if mode not in IR_MODES:
            raise ValueError(f"mode must be one of {IR_MODES}, got {mode!r}")
        units = tuple(units or IR_UNITS[num_layers])
        widths = tuple(int(w) for w in widths)
        self.n_styles, self.style_dim = n_styles, style_dim
        self.coarse_ind, self.middle_ind = min(coarse_ind, n_styles), min(middle_ind, n_styles)
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        modules, in_c = [], widths[0]
        for depth, n in zip(widths, units):
            for j in range(n):
                modules.append(BottleneckIR(in_c, depth, 2 if j == 0 else 1, se=mode == "ir_se"))
                in_c = depth
        self.body = nn.Sequential(*modules)
        # Outputs of stages 2, 3 and 4 feed the pyramid (indices 6, 20, 23 for IR-50).
        ends = [sum(units[:k + 1]) - 1 for k in range(4)]
        self.taps = (ends[1], ends[2], ends[3])
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            spatial = input_size // (16 if i < self.coarse_ind else 8 if i < self.middle_ind else 4)
            self.styles.append(GradualStyleBlock(widths[3], style_dim, spatial))
        self.latlayer1 = nn.Conv2d(widths[2], widths[3], kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], widths[3], kernel_size=1, stride=1, padding=0)

    @staticmethod
    def _upsample_add(x, y):
        return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y

    def forward(self, x):
        x = self.input_layer(x)
        feats = {}
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.taps:
                feats[i] = x
        c1, c2, c3 = (feats[t] for t in self.taps)
        latents = [self.styles[j](c3) for j in range(self.coarse_ind)]
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        latents += [self.styles[j](p2) for j in range(self.coarse_ind, self.middle_ind)]
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        latents += [self.styles[j](p1) for j in range(self.middle_ind, self.n_styles)]
        return torch.stack(latents, dim=1)


class PSPEncoder(nn.Module):
    """Image in [-1, 1] (any size) -> W+ (N, n_styles, style_dim) = encoder output + latent_avg."""

    def __init__(
        self,
        n_styles: int = 18,
        style_dim: int = 512,
        num_layers: int = 50,
        mode: str = "ir_se",
        widths=(64, 128, 256, 512),
        units=None,
        input_size: int = 256,       # input is average-pooled to this size (method 3.4)
        coarse_ind: int = 3,
        middle_ind: int = 7,
    ):
        super().__init__()
        self.init_kwargs = dict(n_styles=n_styles, style_dim=style_dim, num_layers=num_layers,
                                mode=mode, widths=list(widths),
                                units=list(units) if units else None, input_size=input_size,
                                coarse_ind=coarse_ind, middle_ind=middle_ind)
        self.input_size = input_size
        self.encoder = GradualStyleEncoder(n_styles, style_dim, num_layers, mode, widths, units,
                                           input_size, coarse_ind, middle_ind)
        # The generator's mean w (method 3.4): set from the generator or the pSp checkpoint.
        self.register_buffer("latent_avg", torch.zeros(n_styles, style_dim))

    @torch.no_grad()
    def set_latent_avg(self, latent_avg: torch.Tensor):
        self.latent_avg.copy_(latent_avg.reshape(-1, self.latent_avg.shape[1])
                              .expand_as(self.latent_avg))

    def forward(self, image):
        x = F.adaptive_avg_pool2d(image, (self.input_size, self.input_size))
        return self.encoder(x) + self.latent_avg.unsqueeze(0)

    def load_psp(self, path: str | os.PathLike, map_location="cpu"):
        """Load the ``encoder.*`` weights and ``latent_avg`` of a pixel2style2pixel checkpoint."""
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        sd = ckpt.get("state_dict", ckpt)
        enc = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
        own = self.encoder.state_dict()
        for k, v in own.items():  # checkpoints from old torch lack BatchNorm step counters
            if k.endswith("num_batches_tracked") and k not in enc:
                enc[k] = v
        try:
            self.encoder.load_state_dict(enc, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"{path}: encoder weights do not match this PSPEncoder: {err}") from None
        if ckpt.get("latent_avg") is not None:
            self.set_latent_avg(ckpt["latent_avg"])
        return self
