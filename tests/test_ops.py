"""Ops and equalized-lr layers against direct formulas, including double backward."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.layers import (Blur, Downsample, EqualConv2d, EqualLinear, ModulatedConv2d,
                           Upsample, make_kernel)
from models.ops import FusedLeakyReLU, fused_leaky_relu, set_default_impl, upfirdn2d

IMPLS = ["ref", "fast"]


def upfirdn2d_direct(x, k, up, down, px0, px1, py0, py1):
    """Loop-level definition: zero-insert, pad (negative crops), full 2-D convolution, subsample."""
    x, k = np.asarray(x, dtype=np.float64), np.asarray(k, dtype=np.float64)
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    u = np.pad(u, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[:, :, max(-py0, 0):u.shape[2] - max(-py1, 0), max(-px0, 0):u.shape[3] - max(-px1, 0)]
    kh, kw = k.shape
    oh, ow = u.shape[2] - kh + 1, u.shape[3] - kw + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = u[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = (patch * k[::-1, ::-1]).sum((2, 3))  # convolution, not correlation
    return out[:, :, ::down, ::down]


CASES = [  # up, down, (px0, px1, py0, py1), kernel size
    (1, 1, (1, 1, 1, 1), 3),
    (2, 1, (2, 1, 2, 1), 4),     # Upsample of a [1,3,3,1] kernel
    (1, 2, (1, 1, 1, 1), 4),     # Downsample
    (1, 1, (2, 2, 2, 2), 4),     # Blur after a transposed conv
    (2, 1, (-1, 2, 0, 1), 3),    # negative pad crops; asymmetric per axis
    (1, 2, (0, -1, 2, 0), 3),
    (2, 2, (1, 1, 1, 1), 4),     # both: falls back to the reference
    (3, 1, (1, 2, 2, 1), 5),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("up,down,pad,ks", CASES)
def test_upfirdn2d_matches_definition(impl, up, down, pad, ks):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    k = torch.randn(ks, ks, generator=g, dtype=torch.float64)  # asymmetric: catches flips
    out = upfirdn2d(x, k, up=up, down=down, pad=pad, impl=impl)
    ref = upfirdn2d_direct(x.numpy(), k.numpy(), up, down, *pad)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (2, 1))])
def test_upfirdn2d_double_backward(impl, up, down, pad):
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    k = make_kernel([1, 3, 3, 1]).double()
    fn = lambda t: upfirdn2d(t, k, up=up, down=down, pad=pad, impl=impl)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)  # random projections: fast


def test_default_impl_switch():
    x = torch.randn(1, 2, 6, 6)
    k = make_kernel([1, 3, 3, 1])
    try:
        set_default_impl("ref")
        a = upfirdn2d(x, k, up=2, pad=(2, 1))
        set_default_impl("fast")
        b = upfirdn2d(x, k, up=2, pad=(2, 1))
    finally:
        set_default_impl("fast")
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        set_default_impl("cuda-magic")


def test_resampling_layers_keep_constant_level():
    x = torch.ones(1, 1, 8, 8)
    up = Upsample([1, 3, 3, 1])(x)
    down = Downsample([1, 3, 3, 1])(x)
    assert up.shape[-1] == 16 and down.shape[-1] == 4
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.ones_like(up[..., 2:-2, 2:-2]))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.ones_like(down[..., 1:-1, 1:-1]))
    blur = Blur([1, 3, 3, 1], pad=(2, 1))(x)
    assert blur.shape == x.shape


def test_fused_leaky_relu_formula_and_double_backward():
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    out = fused_leaky_relu(x, b)
    y = x + b.view(1, -1, 1, 1)
    expected = torch.where(y >= 0, y, 0.2 * y) * math.sqrt(2)
    torch.testing.assert_close(out, expected)
    assert torch.autograd.gradcheck(fused_leaky_relu, (x, b))
    assert torch.autograd.gradgradcheck(fused_leaky_relu, (x, b))
    # 2-D input (EqualLinear) broadcasts the bias over dim 1 as well.
    layer = FusedLeakyReLU(4)
    assert layer(torch.randn(5, 4)).shape == (5, 4)


def test_equal_linear_scaling():
    torch.manual_seed(0)
    for lr_mul in (1.0, 0.01):
        layer = EqualLinear(256, 64, bias_init=0.5, lr_mul=lr_mul)
        # Stored weight ~ N(0, 1/lr_mul^2); runtime weight ~ N(0, 1/fan_in) whatever lr_mul.
        assert layer.weight.std().item() == pytest.approx(1 / lr_mul, rel=0.05)
        x = torch.randn(8, 256)
        expected = x @ (layer.weight * lr_mul / math.sqrt(256)).T + layer.bias * lr_mul
        torch.testing.assert_close(layer(x), expected)
    act = EqualLinear(16, 8, activation="fused_lrelu")
    x = torch.randn(3, 16)
    y = x @ (act.weight / 4).T + act.bias
    torch.testing.assert_close(act(x), F.leaky_relu(y, 0.2) * math.sqrt(2))


def test_equal_conv_scaling():
    conv = EqualConv2d(6, 5, 3, padding=1)
    x = torch.randn(2, 6, 8, 8)
    expected = F.conv2d(x, conv.weight / math.sqrt(6 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_modulated_conv_matches_per_sample_formula():
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 6, 3, style_dim=8)
    x, w = torch.randn(3, 4, 8, 8), torch.randn(3, 8)
    out = conv(x, w)
    s = conv.modulation(w)
    for n in range(3):
        weight = conv.weight[0] / math.sqrt(4 * 9) * s[n].view(1, 4, 1, 1)
        weight = weight / torch.sqrt(weight.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        torch.testing.assert_close(out[n:n + 1], F.conv2d(x[n:n + 1], weight, padding=1),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(upsample=True), dict(downsample=True)])
def test_modulated_conv_resampling_is_per_sample(kw):
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 5, 3, style_dim=8, **kw)
    x, w = torch.randn(3, 4, 8, 8), torch.randn(3, 8)
    out = conv(x, w)
    assert out.shape[-1] == (16 if kw.get("upsample") else 4)
    for n in range(3):
        torch.testing.assert_close(out[n:n + 1], conv(x[n:n + 1], w[n:n + 1]),
                                   rtol=1e-4, atol=1e-5)


def test_modulated_conv_double_backward():
    conv = ModulatedConv2d(2, 2, 3, style_dim=3, upsample=True).double()
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: conv(a, b), (x, w), fast_mode=True)
