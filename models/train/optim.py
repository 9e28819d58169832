"""Optimiser and EMA helpers of the StyleGAN2 recipe."""

from __future__ import annotations

import torch
from torch import nn


def lazy_adam(params, lr: float, betas, reg_every: int = 0) -> torch.optim.Adam:
    """Adam with StyleGAN2's lazy-regularisation correction c = k / (k + 1): a regulariser
    run every k iterations (its loss scaled by k) then moves the weights as an every-step one."""
    c = reg_every / (reg_every + 1) if reg_every else 1.0
    params = list(params)
    if params and isinstance(params[0], dict):  # param groups may carry an "lr_mult"
        params = [{**{k: v for k, v in g.items() if k != "lr_mult"},
                   "lr": lr * c * g.get("lr_mult", 1.0)} for g in params]
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c))


@torch.no_grad()
def ema_update(ema: nn.Module, src: nn.Module, beta: float):
    """ema = beta * ema + (1 - beta) * src for parameters; buffers copied."""
    for pe, ps in zip(ema.parameters(), src.parameters()):
        pe.lerp_(ps.detach(), 1.0 - beta)
    for be, bs in zip(ema.buffers(), src.buffers()):
        be.copy_(bs)


def ema_beta(batch: int, half_life_images: float) -> float:
    """Per-step EMA decay for a half-life counted in images (0: the EMA copy follows exactly)."""
    return 0.5 ** (batch / max(half_life_images, 1e-8)) if half_life_images > 0 else 0.0
