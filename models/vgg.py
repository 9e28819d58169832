"""VGG-19 ``features`` in plain PyTorch (no torchvision), torchvision module indices.

``features.{i}`` holds the same module as ``torchvision.models.vgg19().features[i]``, so a
torchvision state dict (``vgg19-dcbb9e9d.pth``: keys ``features.*`` and ``classifier.*``) loads
from a file. ``width`` scales every layer's channels (the demo uses narrow, random VGGs).
"""

from __future__ import annotations

import os

import torch
from torch import nn

VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
             512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
# relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 (method 3.1).
STYLE_LAYERS = (3, 8, 17, 26, 35)


def vgg19_widths(width: float = 1.0) -> list:
    return [c if c == "M" else max(1, int(round(c * width))) for c in VGG19_CFG]


class VGG19Features(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        self.width = width
        layers, in_c = [], 3
        for c in vgg19_widths(width):
            if c == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not in place: tapped activations must survive the next layer for double backward.
                layers += [nn.Conv2d(in_c, c, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_c = c
        self.features = nn.Sequential(*layers)

    def tap_channels(self, taps=STYLE_LAYERS) -> list[int]:
        """Channels of the activations at ``taps`` (the ReLU after each listed conv)."""
        out = []
        for t in taps:
            conv = self.features[t - 1]
            out.append(conv.out_channels)
        return out

    def forward(self, x, taps=STYLE_LAYERS) -> list[torch.Tensor]:
        """Activations after the modules at indices ``taps`` (stops after the last one)."""
        wanted, outs = set(taps), {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                outs[i] = x
            if i >= max(taps):
                break
        return [outs[t] for t in taps]

    def load_torchvision(self, path: str | os.PathLike, map_location="cpu"):
        """Load a torchvision VGG-19 state dict (whole model or ``features`` only) from a file."""
        state = torch.load(path, map_location=map_location, weights_only=True)
        if "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        if not feats:  # a bare features dict: keys "0.weight", ...
            feats = {k: v for k, v in state.items() if k.split(".")[0].isdigit()}
        try:
            self.features.load_state_dict(feats, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"{path}: not a VGG-19 (width {self.width}) state dict: {err}") from None
        return self
