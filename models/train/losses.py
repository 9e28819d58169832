"""Losses: StyleGAN2's non-saturating logistic pair, R1, path length; NT-Xent (SimCLR)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import autograd

from .distributed import Dist, all_reduce_mean_


def d_logistic_loss(real_pred, fake_pred):
    # .float(): logits from an autocast (bf16/fp16) forward are reduced in fp32 (no-op in fp32)
    return F.softplus(-real_pred.float()).mean() + F.softplus(fake_pred.float()).mean()


def g_nonsaturating_loss(fake_pred):
    return F.softplus(-fake_pred.float()).mean()


def d_r1_loss(real_pred, real_img):
    """E[|grad_x D(x)|^2] on reals (scale by gamma / 2 outside)."""
    (grad,) = autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def g_path_length(fake_img, latents, mean_path_length, decay: float = 0.01,
                  dist: Dist | None = None):
    """StyleGAN2 path-length penalty; returns (penalty, new running mean, path lengths).
    Under several processes the running mean moves by the global batch's mean length."""
    noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    (grad,) = autograd.grad((fake_img * noise).sum(), latents, create_graph=True)
    lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
    mean_now = lengths.detach().mean().reshape(1)
    if dist is not None:
        all_reduce_mean_([mean_now], dist)
    new_mean = mean_path_length + decay * (mean_now[0] - mean_path_length)
    penalty = (lengths - new_mean).pow(2).mean()
    return penalty, new_mean, lengths


def nt_xent(z1, z2, temperature: float = 0.2):
    """SimCLR loss for positive pairs (z1[k], z2[k]); the other 2N - 2 rows are negatives."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = (torch.arange(2 * n, device=z.device) + n) % (2 * n)  # row i's positive: i +- n
    return F.cross_entropy(sim, target)
