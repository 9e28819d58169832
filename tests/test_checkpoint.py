"""Checkpoint round-trips and compatibility with rosinality StyleGAN2, released BlendGAN, pSp."""

import argparse
import os
import pickle
from pathlib import Path

import pytest
import torch

from models.blendgan import BlendGenerator
from models.checkpoint import (export_released, infer_generator_kwargs, load_checkpoint,
                               load_generator, load_psp_encoder, load_style_encoder,
                               load_stylegan2, save_checkpoint)
from models.discriminators import StyleLatentDiscriminator
from models.layers import make_kernel
from models.psp import PSPEncoder
from models.style_encoder import StyleEncoder
from models.stylegan2 import Discriminator, Generator

SMALL = dict(channel_base=256, channel_max=32)
ENC = dict(style_dim=32, vgg_width=0.125, pool_size=32)
D = 32
PSP = dict(n_styles=8, style_dim=D, widths=(8, 16, 16, 32), units=(1, 1, 1, 1), input_size=64)


def blend(**kw):
    torch.manual_seed(0)
    g = BlendGenerator(32, D, n_mlp=2, **SMALL, **kw)
    with torch.no_grad():
        g.add_weight.uniform_(0, 1)
        g.embedding[1].weight.mul_(1.5)  # make the style branch differ from the face branch
    return g


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------- project format
def test_round_trip_every_model(tmp_path):
    torch.manual_seed(0)
    models = {
        "g_ema": blend(style_encoder=ENC),
        "d_face": Discriminator(32, **SMALL),
        "d_style_latent": StyleLatentDiscriminator(32, D, **SMALL),
        "style_encoder": StyleEncoder(**ENC),
        "psp": PSPEncoder(**PSP),
    }
    opt = torch.optim.Adam(models["d_face"].parameters(), lr=0.002, betas=(0.0, 0.99))
    models["d_face"](torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", models, config={"lr": 0.002, "size": 32},
                           extra={"step": 7, "opt_d": opt.state_dict()})
    assert not [p for p in path.parent.iterdir() if p.name != "ckpt.pt"]  # no temp files left
    ck = load_checkpoint(path)
    assert ck["config"] == {"lr": 0.002, "size": 32} and ck["extra"]["step"] == 7
    for name, m in models.items():
        assert type(ck["models"][name]) is type(m)
        assert ck["models"][name].init_kwargs == m.init_kwargs
        assert same_state(ck["models"][name], m), name
    opt2 = torch.optim.Adam(models["d_face"].parameters())
    opt2.load_state_dict(ck["extra"]["opt_d"])

    g = load_generator(path)
    z, zs = torch.randn(2, D), torch.randn(2, D)
    assert not g.training
    assert torch.equal(g.generate(z, zs, indicator=6), models["g_ema"].generate(z, zs, indicator=6))
    enc = load_style_encoder(path)
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    assert torch.equal(enc(x), models["style_encoder"](x))
    psp = load_psp_encoder(path)
    assert same_state(psp, models["psp"])


def test_project_checkpoint_with_plain_stylegan2_generator(tmp_path):
    torch.manual_seed(0)
    sg = Generator(32, D, n_mlp=2, **SMALL)
    save_checkpoint(tmp_path / "sg.pt", {"g_ema": sg})
    g = load_generator(tmp_path / "sg.pt")
    z = torch.randn(2, D)
    img, _ = sg([z], randomize_noise=False)
    torch.testing.assert_close(g.generate(z), img.clamp(-1, 1))


def test_generator_embedder_is_a_style_encoder_source(tmp_path):
    g = blend(style_encoder=ENC)
    save_checkpoint(tmp_path / "g.pt", {"g_ema": g})
    enc = load_style_encoder(tmp_path / "g.pt")
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    assert torch.equal(enc(x), g.embedder(x))
    save_checkpoint(tmp_path / "d.pt", {"d": Discriminator(8, **SMALL)})
    with pytest.raises(ValueError):
        load_style_encoder(tmp_path / "d.pt")
    with pytest.raises(ValueError):
        load_generator(tmp_path / "d.pt")


class Evil:  # a pickle that would run code if unpickled without weights_only
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_pickled_code_and_unknown_formats(tmp_path):
    torch.save({"g_ema": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights-only"):
        load_generator(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2, 3], protocol=2) + b"garbage")
    with pytest.raises(ValueError):
        load_generator(tmp_path / "junk.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="unrecognised"):
        load_generator(tmp_path / "other.pt")


# ------------------------------------------------------------------------- rosinality
def rosinality_state_dicts(size=1024, cm=2, style_dim=512, n_mlp=8, fill=torch.zeros):
    """Key set and shapes of rosinality's Generator/Discriminator written out independently
    of models/ (from stylegan2-pytorch's model.py layout)."""
    ch = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
          512: 32 * cm, 1024: 16 * cm}
    blur, up = make_kernel([1, 3, 3, 1]), make_kernel([1, 3, 3, 1]) * 4
    log = size.bit_length() - 1
    g = {}
    for i in range(1, n_mlp + 1):
        g[f"style.{i}.weight"], g[f"style.{i}.bias"] = fill(style_dim, style_dim), fill(style_dim)

    def styled(prefix, cin, cout, upsample):
        g[f"{prefix}.conv.weight"] = fill(1, cout, cin, 3, 3)
        if upsample:
            g[f"{prefix}.conv.blur.kernel"] = up.clone()
        g[f"{prefix}.conv.modulation.weight"] = fill(cin, style_dim)
        g[f"{prefix}.conv.modulation.bias"] = torch.ones(cin)
        g[f"{prefix}.noise.weight"] = fill(1)
        g[f"{prefix}.activate.bias"] = fill(cout)

    def to_rgb(prefix, cin, upsample):
        if upsample:
            g[f"{prefix}.upsample.kernel"] = up.clone()
        g[f"{prefix}.conv.weight"] = fill(1, 3, cin, 1, 1)
        g[f"{prefix}.conv.modulation.weight"] = fill(cin, style_dim)
        g[f"{prefix}.conv.modulation.bias"] = torch.ones(cin)
        g[f"{prefix}.bias"] = fill(1, 3, 1, 1)

    g["input.input"] = fill(1, ch[4], 4, 4)
    styled("conv1", ch[4], ch[4], False)
    to_rgb("to_rgb1", ch[4], False)
    for i in range((log - 2) * 2 + 1):
        r = 2 ** ((i + 5) // 2)
        g[f"noises.noise_{i}"] = fill(1, 1, r, r)
    cin = ch[4]
    for k, lv in enumerate(range(3, log + 1)):
        cout = ch[2 ** lv]
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        to_rgb(f"to_rgbs.{k}", cout, True)
        cin = cout

    d = {"convs.0.0.weight": fill(ch[size], 3, 1, 1), "convs.0.1.bias": fill(ch[size])}
    cin = ch[size]
    for j, lv in enumerate(range(log, 2, -1), start=1):
        cout = ch[2 ** (lv - 1)]
        d.update({f"convs.{j}.conv1.0.weight": fill(cin, cin, 3, 3),
                  f"convs.{j}.conv1.1.bias": fill(cin),
                  f"convs.{j}.conv2.0.kernel": blur.clone(),
                  f"convs.{j}.conv2.1.weight": fill(cout, cin, 3, 3),
                  f"convs.{j}.conv2.2.bias": fill(cout),
                  f"convs.{j}.skip.0.kernel": blur.clone(),
                  f"convs.{j}.skip.1.weight": fill(cout, cin, 1, 1)})
        cin = cout
    d.update({"final_conv.0.weight": fill(ch[4], cin + 1, 3, 3), "final_conv.1.bias": fill(ch[4]),
              "final_linear.0.weight": fill(ch[4], ch[4] * 16),
              "final_linear.0.bias": fill(ch[4]),
              "final_linear.1.weight": fill(1, ch[4]), "final_linear.1.bias": fill(1)})
    return g, d


def test_synthetic_1024_rosinality_checkpoint_loads_strictly(tmp_path):
    g_sd, d_sd = rosinality_state_dicts()
    assert (len(g_sd), len(d_sd)) == (171, 64)
    g_sd["style.3.weight"].fill_(0.3)           # markers: must land in the right places
    g_sd["to_rgbs.7.conv.weight"].fill_(0.7)
    d_sd["final_linear.0.weight"].fill_(0.5)
    avg = torch.full((512,), 0.25)
    torch.save({"g": g_sd, "g_ema": g_sd, "d": d_sd, "latent_avg": avg}, tmp_path / "sg2.pt")

    out = load_stylegan2(tmp_path / "sg2.pt")
    g, d = out["g_ema"], out["d"]
    assert g.init_kwargs["size"] == 1024 and g.n_latent == 18
    assert g.init_kwargs["channel_multiplier"] == 2 and g.init_kwargs["n_mlp"] == 8
    assert d.init_kwargs["size"] == 1024 and d.init_kwargs["channel_multiplier"] == 2
    assert (g.style[3].weight == 0.3).all() and (g.embedding[3].weight == 0.3).all()
    assert (g.to_rgbs[7].conv.weight == 0.7).all()
    assert (d.final_linear[0].weight == 0.5).all()
    assert (g.add_weight == 1).all() and g.add_weight.shape == (1, 18, 1)
    assert torch.equal(g.latent_avg, avg.view(1, 512))
    assert g.embedding[3].weight.data_ptr() != g.style[3].weight.data_ptr()  # a copy
    # A key too many or too few is an error, not a silent partial load.
    bad = dict(g_sd, extra=torch.zeros(1))
    with pytest.raises(KeyError, match="unexpected"):
        g.load_face_state_dict(bad)
    bad = {k: v for k, v in g_sd.items() if k != "noises.noise_3"}
    with pytest.raises(KeyError, match="missing"):
        g.load_face_state_dict(bad)


def test_small_rosinality_checkpoint_reproduces_stylegan2(tmp_path):
    torch.manual_seed(0)
    sg = Generator(64, D, n_mlp=3, channel_multiplier=1, channel_base=1024, channel_max=64)
    d = Discriminator(64, channel_base=1024, channel_max=64)
    avg = sg.mean_latent(256)[0]
    torch.save({"g": sg.state_dict(), "g_ema": sg.state_dict(), "d": d.state_dict(),
                "latent_avg": avg, "args": argparse.Namespace(size=64, lr=0.002)},  # as train.py
               tmp_path / "sg2.pt")
    g = load_generator(tmp_path / "sg2.pt")
    assert infer_generator_kwargs(sg.state_dict())["channel_base"] == 1024
    z = torch.randn(2, D)
    ref, _ = sg([z], randomize_noise=False, truncation=0.7, truncation_latent=avg)
    torch.testing.assert_close(g.generate(z, truncation=0.7), ref.clamp(-1, 1))
    # Style branch = copy of the face branch and alpha = 1: any z_s gives the natural face.
    assert torch.equal(g.generate(z, torch.randn(2, D), indicator=0), g.generate(z))
    loaded_d = load_stylegan2(tmp_path / "sg2.pt")["d"]
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded_d(x), d(x))


# ------------------------------------------------------------------------- released BlendGAN
def test_released_blendgan_export_import(tmp_path):
    # The released format cannot carry pool_size: importing assumes the reference's 256.
    g = blend(style_encoder=dict(ENC, pool_size=256))
    g.update_latent_avg(256)
    export_released(g, tmp_path / "blendgan.pt")
    raw = torch.load(tmp_path / "blendgan.pt", weights_only=True)
    keys = set(raw["g_ema"])
    assert {"add_weight", "embedding.1.weight", "style.1.weight",
            "embedder.embedder.feature_extractor.vgg_layers.0.weight",
            "embedder.embedder.feature_extractor.vgg_layers.34.bias",
            "embedder.embedder_mlp.3.weight"} <= keys
    assert not any(k.startswith(("latent_avg", "embedder.projector", "embedder.gram",
                                 "embedder.style_")) for k in keys)
    assert raw["g_ema"]["add_weight"].shape == (1, g.n_latent, 1)

    g2 = load_generator(tmp_path / "blendgan.pt")
    assert g2.embedder is not None and g2.embedder.projector is None
    z, zs = torch.randn(2, D), torch.randn(2, D)
    assert torch.equal(g2.generate(z, zs, indicator=6, truncation=0.75),
                       g.generate(z, zs, indicator=6, truncation=0.75))
    style = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(g2(z, style_image=style, indicator=3, randomize_noise=False),
                       g(z, style_image=style, indicator=3, randomize_noise=False))
    enc = load_style_encoder(tmp_path / "blendgan.pt")
    assert torch.equal(enc(style), g.embedder(style))

    # Without the top-level latent_avg (as released), the truncation centre is recomputed.
    torch.save({"g_ema": raw["g_ema"]}, tmp_path / "bare.pt")
    g3 = load_generator(tmp_path / "bare.pt")
    assert g3.latent_avg.abs().sum() > 0


# ------------------------------------------------------------------------- pSp
def test_psp_checkpoint_layout_loads(tmp_path):
    torch.manual_seed(0)
    src = PSPEncoder(**PSP)
    sd = {"encoder." + k: v for k, v in src.encoder.state_dict().items()}
    sd["decoder.style.1.weight"] = torch.zeros(2, 2)  # pSp also stores its decoder
    avg = torch.randn(PSP["n_styles"], D)
    torch.save({"state_dict": sd, "latent_avg": avg, "opts": {"output_size": 32}},
               tmp_path / "psp.pt")
    dst = PSPEncoder(**PSP).load_psp(tmp_path / "psp.pt").eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(dst(x), src.eval()(x) + avg)


# ------------------------------------------------------------------------- real weights
PRETRAINED = Path(os.environ.get("BLENDGAN_PRETRAINED_DIR", "pretrained"))


def test_real_stylegan2_ffhq_checkpoint():
    path = PRETRAINED / "stylegan2-ffhq-config-f.pt"
    if not path.exists():
        pytest.skip(f"{path} not present (set BLENDGAN_PRETRAINED_DIR to test real weights)")
    out = load_stylegan2(path)
    img = out["g_ema"].generate(torch.randn(1, 512), truncation=0.5)
    assert img.shape == (1, 3, 1024, 1024)
