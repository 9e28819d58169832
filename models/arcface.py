"""ArcFace IR-SE50: the face-identity network of pSp's identity loss (method 4.3) and of the
content-preservation metric (method 5), loading pSp's `model_ir_se50.pth` strictly.

Layout and names follow pSp's `Backbone`: `input_layer`, `body` (IR-SE bottlenecks) and
`output_layer` (BatchNorm2d, Dropout, Flatten, Linear(512*7*7, 512), BatchNorm1d), on 112x112
faces; features are L2-normalised. Widths and units are configurable so tests can build a
small copy with weights they make.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .psp import IR_UNITS, BottleneckIR


class ArcFace(nn.Module):
    def __init__(
        self,
        num_layers: int = 50,        # IR depth (ignored when units is given)
        widths=(64, 128, 256, 512),  # channels of the four stages
        units=None,                  # residual units per stage
        embedding: int = 512,        # feature size
        input_size: int = 112,       # faces are pooled to this size
    ):
        super().__init__()
        units = tuple(units or IR_UNITS[num_layers])
        self.init_kwargs = dict(num_layers=num_layers, widths=list(widths),
                                units=list(units), embedding=embedding, input_size=input_size)
        self.input_size = input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        modules, in_c = [], widths[0]
        for depth, n in zip(widths, units):
            for j in range(n):
                modules.append(BottleneckIR(in_c, depth, 2 if j == 0 else 1, se=True))
                in_c = depth
        self.body = nn.Sequential(*modules)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(in_c), nn.Dropout(0.6), nn.Flatten(),
            nn.Linear(in_c * side * side, embedding), nn.BatchNorm1d(embedding, affine=True))
        self.requires_grad_(False)
        self.eval()

    def forward(self, faces):
        """Faces (N, 3, H, W) in [-1, 1], already cropped -> unit-norm features (N, embedding)."""
        x = F.adaptive_avg_pool2d(faces, (self.input_size, self.input_size))
        x = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(x, dim=1)

    def identity(self, images):
        """Features of FFHQ-aligned images of any size: pSp's crop [35:223, 32:220] at 256 px."""
        size = images.shape[-1]
        t, b = round(35 * size / 256), round(223 * size / 256)
        left, right = round(32 * size / 256), round(220 * size / 256)
        return self(images[:, :, t:b, left:right])

    def train(self, mode: bool = True):
        return super().train(False)  # a frozen loss network: BatchNorm stays in eval mode


def infer_arcface_kwargs(sd: dict) -> dict:
    """Stage widths, units per stage and input size from a state dict's shapes.

    Stages are told apart by their widths, as in every IR-SE network pSp uses (64/128/256/512).
    """
    depths = []
    i = 0
    while f"body.{i}.res_layer.1.weight" in sd:
        depths.append(int(sd[f"body.{i}.res_layer.1.weight"].shape[0]))
        i += 1
    if not depths or "output_layer.3.weight" not in sd:
        raise RuntimeError("not an ArcFace IR-SE state dict (no body.* / output_layer.3.*)")
    widths, units = [], []
    for d in depths:
        if widths and widths[-1] == d:
            units[-1] += 1
        else:
            widths.append(d)
            units.append(1)
    emb, flat = sd["output_layer.3.weight"].shape
    side = round((flat / widths[-1]) ** 0.5)
    return dict(widths=widths, units=units, embedding=int(emb), input_size=side * 16)


def load_arcface(path: str | os.PathLike, map_location="cpu") -> ArcFace:
    """pSp's model_ir_se50.pth (a plain state dict), loaded strictly; the shape is read from it."""
    sd = torch.load(path, map_location=map_location, weights_only=True)
    sd = sd.get("state_dict", sd)
    try:
        net = ArcFace(**infer_arcface_kwargs(sd))
    except RuntimeError as err:
        raise RuntimeError(f"{path}: {err}") from None
    own = net.state_dict()
    for k, v in own.items():  # files from old torch lack BatchNorm step counters
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"{path}: not an ArcFace IR-SE50 state dict: {err}") from None
    return net.to(map_location)
