"""Where the training step's tensors live: host -> device copies and memory layout."""

from __future__ import annotations

import torch
from torch import nn


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy that does not block the host on CUDA (pinned, non_blocking; a plain
    ``.to(device)`` of a host tensor waits for the GPU queue to drain); nothing when ``x`` is
    already there. Same values either way. Every copy inside the training step goes here."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def channels_last_(obj):
    """4-D tensors (also inside dicts/lists) -> channels_last memory format (values unchanged)."""
    if torch.is_tensor(obj):
        return obj.contiguous(memory_format=torch.channels_last) if obj.ndim == 4 else obj
    if isinstance(obj, dict):
        return {k: channels_last_(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(channels_last_(v) for v in obj)
    return obj


@torch.no_grad()
def module_channels_last_(module: nn.Module) -> nn.Module:
    """4-D parameters and buffers -> channels_last, in place (same Parameter objects, so
    optimisers keep them). ``Module.to(memory_format=...)`` cannot be used: it refuses the
    5-D modulated-conv weights."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.ndim == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return module
