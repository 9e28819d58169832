"""StyleGAN2 custom ops in plain PyTorch: upfirdn2d and fused bias + leaky ReLU.

Every path here is built from differentiable torch ops, so autograd gives first and second
derivatives (R1 and path-length regularisation need double backward) on any device.
``upfirdn2d`` has two implementations, picked per call (nothing is compiled at import):

- ``"ref"``:  zero-insertion, padding, one depthwise correlation, subsampling. Literal and slow;
  this is the definition the tests check against.
- ``"fast"``: the same result with a strided transposed conv (upsampling) or a strided conv
  (downsampling), so no multiply-adds are spent on inserted zeros or discarded outputs.

``impl=None`` uses the module default (``set_default_impl``), which is ``"fast"``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_IMPLS = ("ref", "fast")
_default_impl = "fast"


def set_default_impl(impl: str) -> None:
    """Choose the upfirdn2d implementation used when a call passes ``impl=None``."""
    global _default_impl
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    _default_impl = impl


def _pads(pad) -> tuple[int, int, int, int]:
    """(pad0, pad1) for both axes, or (x0, x1, y0, y1) as in rosinality's upfirdn2d."""
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return pad
    raise ValueError(f"pad must have 2 or 4 entries, got {pad}")


def _depthwise(kernel: torch.Tensor, channels: int, flip: bool) -> torch.Tensor:
    k = torch.flip(kernel, [0, 1]) if flip else kernel
    return k.to(dtype=kernel.dtype)[None, None].expand(channels, 1, *k.shape)


def _upfirdn2d_ref(x, kernel, up, down, pad):
    px0, px1, py0, py1 = pad
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    # Upsample by inserting up-1 zeros after every sample.
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)
    # Pad (negative values crop), then a true convolution: correlate with the flipped kernel.
    x = F.pad(x, [px0, px1, py0, py1])
    x = F.conv2d(x, _depthwise(kernel, c, flip=True), groups=c)
    return x[:, :, ::down, ::down]


def _upfirdn2d_fast(x, kernel, up, down, pad):
    px0, px1, py0, py1 = pad
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    if up == 1:
        x = F.pad(x, [px0, px1, py0, py1])
        return F.conv2d(x, _depthwise(kernel, c, flip=True), stride=down, groups=c)
    if down == 1:
        # conv_transpose2d is the "full" convolution of the zero-inserted signal; shift and crop
        # it to the window the reference produces (out[m] = full[m + k - 1 - pad0]).
        full = F.conv_transpose2d(x, _depthwise(kernel, c, flip=False), stride=up, groups=c)
        fh, fw = full.shape[2:]
        return F.pad(full, [px0 - (kw - 1), w * up + px1 - fw, py0 - (kh - 1), h * up + py1 - fh])
    return _upfirdn2d_ref(x, kernel, up, down, pad)


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0),
              impl: str | None = None) -> torch.Tensor:
    """Upsample by ``up`` (zero insertion), pad, convolve with the 2-D FIR ``kernel``, keep every
    ``down``-th sample. x: (N, C, H, W); kernel: (kh, kw); same semantics as rosinality/NVlabs."""
    impl = impl or _default_impl
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if kernel.ndim != 2:
        raise ValueError("kernel must be 2-D (use make_kernel for separable 1-D taps)")
    kernel = kernel.to(x.dtype)
    fn = _upfirdn2d_fast if impl == "fast" else _upfirdn2d_ref
    return fn(x, kernel, int(up), int(down), _pads(pad))


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                     negative_slope: float = 0.2, scale: float = math.sqrt(2)) -> torch.Tensor:
    """leaky_relu(x + bias) * scale, bias broadcast over dim 1 (the channel axis).

    Plain torch ops: XLA/Inductor fuse them when the caller compiles the model, and autograd
    handles the double backward (a hand-written kernel would need its own second derivative).
    """
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by scaled leaky ReLU (rosinality parameter name: bias)."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2,
                 scale: float = math.sqrt(2)):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x):
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)
