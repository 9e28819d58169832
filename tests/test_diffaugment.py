"""Differentiable augmentation: exact shifts, the cutout square, gradients, policies."""
import pytest
import torch

from models.train.diffaugment import (POLICIES, cutout, diff_augment, parse_policy,
                                      translation)


def test_translation_moves_whole_pixels_and_fills_zeros():
    x = torch.arange(1, 65, dtype=torch.float32).view(1, 1, 8, 8).repeat(16, 3, 1, 1)
    torch.manual_seed(0)
    y = translation(x)
    for img, out in zip(x, y):
        # every nonzero output pixel is an input pixel from a shift of at most 1 (1/8 of 8)
        found = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shifted = torch.roll(img, (dy, dx), (1, 2))
                keep = out != 0
                if torch.equal(out[keep], shifted[keep]):
                    found = True
        assert found
    assert (y == 0).any()  # some sample moved: zeros came in at an edge


def test_cutout_zeroes_a_quarter_square():
    x = torch.ones(8, 3, 16, 16)
    y = cutout(x)
    zeroed = (y[:, 0] == 0).float().sum((1, 2))
    assert ((zeroed > 0) & (zeroed <= 64)).all()  # an 8x8 square, clipped at the border
    assert torch.equal(y[:, 0], y[:, 2])  # the same square in every channel


def test_gradients_reach_the_input_and_policies_parse():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    diff_augment(x, parse_policy("color, translation,cutout")).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parse_policy("") == () and parse_policy(None) == ()
    assert set(parse_policy(",".join(POLICIES))) == set(POLICIES)
    with pytest.raises(ValueError, match="flip"):
        parse_policy("color,flip")


def test_same_seed_same_augmentation():
    x = torch.randn(4, 3, 16, 16)
    policy = parse_policy("color,translation,cutout")
    torch.manual_seed(3)
    a = diff_augment(x, policy)
    torch.manual_seed(3)
    assert torch.equal(a, diff_augment(x, policy))
