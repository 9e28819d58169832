"""The reference image a one-shot fine-tune (method 4.4) was trained on, as its probe
(finetune_probe.py) and its figure (figures.py oneshot) read it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.checkpoint import load_checkpoint
from models.images import load_image


def tuned_reference(finetune, resolution, path=None) -> torch.Tensor:
    """(1, 3, R, R) in [-1, 1]: --reference, else the pixels the fine-tune checkpoint trained on."""
    if path:
        return load_image(path, resolution)[None]
    extra = load_checkpoint(finetune, build=False)["extra"]
    if "reference_image" not in extra:
        raise SystemExit(f"{finetune}: no reference_image inside; pass --reference")
    ref = extra["reference_image"].float()[None] / 127.5 - 1
    return F.interpolate(ref, size=resolution, mode="bilinear", antialias=True) \
        if ref.shape[-1] != resolution else ref
