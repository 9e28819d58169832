"""LPIPS (Zhang et al. 2018, AlexNet variant, v0.1) with every weight read from a file: the
perceptual distance of the diversity metric (method 5) and of pSp's LPIPS loss (method 4.3).

Weights: our state dict (``features.{0,3,6,8,10}.*`` of torchvision's AlexNet and
``lin{0..4}.model.1.weight`` of the lpips package), the lpips package's full ``LPIPS`` state
dict (``net.sliceK.N.*``), or the package's linear layers alone plus a torchvision AlexNet
backbone file.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = (64, 192, 384, 256, 256)
MIN_SIZE = 64


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())
        self.taps = (1, 4, 7, 9, 11)  # after each ReLU, as lpips' slices
        for k, c in enumerate(CHANNELS):
            self.add_module(f"lin{k}", nn.Sequential())
            getattr(self, f"lin{k}").model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([.458, .448, .450]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def _feats(self, x):
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a, b):
        """Images in [-1, 1] -> (N,) distances. Images under 64 px (demo scale) are upsampled
        to 64 first: AlexNet's strides leave nothing of a 16 px image."""
        if min(a.shape[-2:]) < MIN_SIZE:
            a, b = (F.interpolate(t, size=(MIN_SIZE, MIN_SIZE), mode="bilinear",
                                  align_corners=False) for t in (a, b))
        fa, fb = self._feats(a), self._feats(b)
        return sum(getattr(self, f"lin{k}").model[1]((x - y) ** 2).mean((2, 3)).squeeze(1)
                   for k, (x, y) in enumerate(zip(fa, fb)))


def _remap(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        m = re.fullmatch(r"net\.slice\d\.(\d+)\.(weight|bias)", k)
        if m:
            out[f"features.{m.group(1)}.{m.group(2)}"] = v
        elif k.startswith("scaling_layer."):
            continue
        else:
            out[k] = v
    return out


def load_lpips(path, map_location="cpu", backbone=None) -> LPIPS:
    """``path``: our file or the lpips package's full state dict; or the lpips package's
    linear layers alone (``lin*`` keys, e.g. lpips-v0.1-alex.pth) with ``backbone`` =
    torchvision's AlexNet state dict (alexnet-owt-7be5be79.pth)."""
    sd = torch.load(path, map_location=map_location, weights_only=True)
    sd = _remap(sd.get("state_dict", sd))
    if backbone:
        tv = torch.load(backbone, map_location=map_location, weights_only=True)
        sd.update({k: v for k, v in tv.items() if k.startswith("features.")})
    net = LPIPS()
    own = net.state_dict()
    for key in ("shift", "scale"):
        sd.setdefault(key, own[key])
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"{path}: not an LPIPS (AlexNet) weights file: {err}") from None
    return net.eval()
