"""The user generation CLI on tiny random checkpoints (CPU, seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import tiny_checkpoints  # noqa: E402

from workflow import generate  # noqa: E402
from workflow.sampling import load_models, stylise  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    paths = tiny_checkpoints(root / "models")
    art = root / "art.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(art)
    paths["art"] = str(art)
    paths["root"] = root
    return paths


def run(*argv):
    assert generate.main([str(a) for a in argv]) == 0


def test_latent_grid_and_separate_files(ckpt):
    out, sep = ckpt["root"] / "latent.png", ckpt["root"] / "sep"
    run("latent", "--blendgan", ckpt["blendgan"], "--faces", 2, "--styles", 3, "--cell", 32,
        "--out", out, "--separate", sep, "--device", "cpu")
    assert Image.open(out).size[0] > 4 * 32 and len(list(sep.glob("*.png"))) == 6


def test_reference_grid_with_separate_style_encoder(ckpt):
    out = ckpt["root"] / "ref.png"
    run("reference", "--blendgan", ckpt["blendgan"], "--style-encoder", ckpt["style_encoder"],
        "--style", ckpt["art"], ckpt["art"], "--faces", 2, "--cell", 32, "--out", out)
    assert Image.open(out).size == (2 + 3 * 34, 2 + 3 * 34)  # refs row + 2 faces; natural + 2 styles


def test_sweep_ends_with_the_natural_face(ckpt):
    out = ckpt["root"] / "sweep.png"
    run("sweep", "--blendgan", ckpt["blendgan"], "--faces", 1, "--cell", 16, "--out", out)
    assert Image.open(out).size[0] == 2 + 19 * 18
    g = load_models(ckpt["blendgan"])["generator"]
    z = torch.randn(1, g.style_dim)
    zs = torch.randn(1, g.style_dim)
    sweep = stylise(g, zs.expand(19, -1), torch.arange(19), 0.75, z.expand(19, -1))
    assert torch.allclose(sweep[18], g.generate(z, None, 18, 0.75)[0], atol=1e-5)
    assert not torch.allclose(sweep[0], sweep[18])


def test_interpolation_gif(ckpt):
    out = ckpt["root"] / "anim.gif"
    run("interpolate", "--blendgan", ckpt["blendgan"], "--styles", 2, "--frames", 3, "--out", out)
    with Image.open(out) as im:
        assert im.n_frames == 6


def test_transfer_of_a_real_photo(ckpt):
    skimage = pytest.importorskip("skimage")
    pytest.importorskip("dlib")
    photo = ckpt["root"] / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    out = ckpt["root"] / "transfer.png"
    run("transfer", "--blendgan", ckpt["blendgan"], "--psp", ckpt["psp"], "--photo", photo,
        "--style", ckpt["art"], "--cell", 32, "--out", out)
    assert Image.open(out).size == (2 + 3 * 34, 2 + 2 * 34)  # crop, pSp, 1 style; refs row + 1 face
    out2 = ckpt["root"] / "transfer_aligned.png"
    run("transfer", "--blendgan", ckpt["blendgan"], "--psp", ckpt["psp"], "--photo", ckpt["art"],
        "--aligned", "--styles", 2, "--cell", 32, "--out", out2)
    assert out2.exists()


def test_transfer_without_psp_fails_clearly(ckpt):
    with pytest.raises(SystemExit, match="--psp"):
        generate.main(["transfer", "--blendgan", ckpt["blendgan"], "--photo", ckpt["art"],
                       "--aligned", "--out", str(ckpt["root"] / "x.png")])
