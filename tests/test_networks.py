"""Networks at small resolution and narrow width: shapes, gradients, WBM semantics, sizes."""

import math

import pytest
import torch

from models.blendgan import BlendGenerator, indicator_to_layer
from models.discriminators import StyleLatentDiscriminator, make_discriminators
from models.psp import PSPEncoder
from models.style_encoder import GramEmbedding, StyleEncoder, gram_matrix
from models.stylegan2 import Discriminator, Generator, channel_table
from models.vgg import STYLE_LAYERS, VGG19Features

SMALL = dict(channel_base=256, channel_max=32)   # widths 32/32/32/16 up to 32x32
ENC = dict(style_dim=32, vgg_width=0.125, pool_size=32)
D = 32  # style_dim in the small tests


def small_blend(size=32, **kw):
    torch.manual_seed(0)
    return BlendGenerator(size, D, n_mlp=2, **SMALL, **kw)


def meta_count(module):
    sd = module.state_dict()
    return len(sd), sum(v.numel() for v in sd.values())


# ----------------------------------------------------------------------------- StyleGAN2
def test_channel_table_matches_rosinality():
    assert channel_table(1024) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256,
                                   256: 128, 512: 64, 1024: 32}
    assert channel_table(2048)[2048] == 16 and len(channel_table(4)) == 1
    with pytest.raises(ValueError):
        channel_table(48)


def test_paper_config_state_dict_sizes():
    """method 3.3b: 171 entries / 33,166,492 values (G), 64 / 29,012,769 (D)."""
    with torch.device("meta"):
        g, d = Generator(1024), Discriminator(1024)
    assert meta_count(g) == (171, 33_166_492)
    assert meta_count(d) == (64, 29_012_769)
    assert g.n_latent == 18 and g.num_layers == 17
    keys = set(g.state_dict())
    for k in ("style.8.weight", "input.input", "conv1.activate.bias", "to_rgb1.conv.weight",
              "convs.15.conv.modulation.bias", "convs.0.conv.blur.kernel",
              "to_rgbs.7.upsample.kernel", "noises.noise_16"):
        assert k in keys


@pytest.mark.parametrize("size", [8, 32])
def test_generator_discriminator_shapes_and_gradients(size):
    torch.manual_seed(0)
    g = Generator(size, D, n_mlp=2, **SMALL)
    d = Discriminator(size, **SMALL)
    img, latent = g([torch.randn(3, D)], return_latents=True)
    assert img.shape == (3, 3, size, size) and latent.shape == (3, g.n_latent, D)
    score = d(img)
    assert score.shape == (3, 1)
    score.sum().backward()
    for name, p in list(g.named_parameters()) + list(d.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_r1_and_path_length_double_backward():
    torch.manual_seed(0)
    g, d = Generator(16, D, n_mlp=2, **SMALL), Discriminator(16, **SMALL)
    real = torch.randn(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    grad.pow(2).sum().backward()
    # Every parameter but the output bias shapes the input gradient.
    missing = [n for n, p in d.named_parameters() if p.grad is None]
    assert missing == ["final_linear.1.bias"]
    img, latents = g([torch.randn(2, D)], return_latents=True)
    noise = torch.randn_like(img) / math.sqrt(16 * 16)
    (grad,) = torch.autograd.grad((img * noise).sum(), latents, create_graph=True)
    grad.pow(2).sum(2).mean(1).sqrt().mean().backward()
    assert g.convs[0].conv.weight.grad is not None


def test_style_mixing_and_odd_batch():
    g = Generator(16, D, n_mlp=2, **SMALL)
    z1, z2 = torch.randn(3, D), torch.randn(3, D)
    _, lat = g([z1, z2], inject_index=2, return_latents=True, randomize_noise=False)
    torch.testing.assert_close(lat[:, 1], g.style(z1))
    torch.testing.assert_close(lat[:, 2], g.style(z2))
    # Minibatch stddev with a batch not divisible by the group size.
    assert Discriminator(16, **SMALL)(torch.randn(3, 3, 16, 16)).shape == (3, 1)


# ----------------------------------------------------------------------------- BlendGAN
def test_indicator_scaling_rule():
    assert [indicator_to_layer(i, 18) for i in range(19)] == list(range(19))
    assert indicator_to_layer(18, 8) == 8 and indicator_to_layer(17, 8) == 7
    assert indicator_to_layer(0, 8) == 0 and indicator_to_layer(6, 8) == 2
    assert indicator_to_layer(torch.tensor([0, 9, 18]), 8).tolist() == [0, 4, 8]
    with pytest.raises(ValueError):
        indicator_to_layer(19, 18)


def test_tensor_indicators_are_range_checked_outside_training_mode():
    g = small_blend().eval()
    z, zs = torch.randn(2, D), torch.randn(2, D)
    with torch.no_grad():
        with pytest.raises(ValueError, match="0..18"):
            g(z, zs, indicator=torch.tensor([6, 19]))
        assert g(z, zs, indicator=torch.tensor([6, 18])).shape[0] == 2


def test_blend_indicator_18_is_the_face_generator():
    g = small_blend()
    with torch.no_grad():
        g.add_weight.uniform_(0, 1)
    z, zs = torch.randn(2, D), torch.randn(2, D)
    face = g.generate(z)
    assert torch.equal(face, g.generate(z, zs, indicator=18))
    assert not torch.equal(face, g.generate(z, zs, indicator=0))
    assert g.resolution == 32 and face.shape == (2, 3, 32, 32)
    per_sample = g.generate(z, zs, indicator=torch.tensor([18, 0]))
    assert torch.equal(per_sample[0], face[0]) and torch.equal(per_sample[1],
                                                              g.generate(z, zs, indicator=0)[1])
    assert face.min() >= -1 and face.max() <= 1


def test_blend_module_semantics():
    g = small_blend()  # n_latent = 8 at 32x32
    n = g.n_latent
    with torch.no_grad():
        g.add_weight.copy_(torch.linspace(-0.5, 1.5, n).view(1, n, 1))  # out of range on purpose
    w_f = torch.randn(2, n, D)
    w_s = torch.randn(2, D)
    out = g.blend(w_f, w_s, indicator=9)  # L = 4
    alpha = torch.linspace(-0.5, 1.5, n).clamp(0, 1)
    for l in range(n):
        a = 1.0 if l < 4 else alpha[l]
        torch.testing.assert_close(out[:, l], a * w_f[:, l] + (1 - a) * w_s)
    g.clamp_alpha_()
    assert g.add_weight.min() >= 0 and g.add_weight.max() <= 1


def test_blend_gradients_reach_only_active_alphas():
    g = small_blend()
    with torch.no_grad():
        g.add_weight.fill_(0.5)
        g.add_weight[0, -1, 0] = 1.0  # at the clamp boundary: must still get a gradient
    w_f, w_s = torch.randn(3, g.n_latent, D), torch.randn(3, D)
    out = g.blend(w_f, w_s, indicator=torch.tensor([9, 9, 18]))
    out.pow(2).sum().backward()
    grad = g.add_weight.grad[0, :, 0]
    assert (grad[:4] == 0).all()          # forced to the face code below L(9) = 4
    assert (grad[4:] != 0).all()          # the rest still learn
    torch.testing.assert_close(out[2], w_f[2])  # indicator 18: face only


def test_blend_forward_inputs():
    g = small_blend(style_encoder=ENC)
    z, zs = torch.randn(2, D), torch.randn(2, D)
    wplus = torch.randn(2, g.n_latent, D)
    assert g(w_face=wplus, z_style=zs, indicator=6).shape == (2, 3, 32, 32)
    style_img = torch.rand(2, 3, 40, 56) * 2 - 1
    img, lat = g(z, style_image=style_img, indicator=torch.tensor([0, 17]), return_latents=True)
    assert img.shape == (2, 3, 32, 32) and lat.shape == (2, g.n_latent, D)
    img = g([z, torch.randn(2, D)], zs, indicator=3, truncation=0.7,
            truncation_latent=g.mean_latent(64))
    assert img.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError):
        g(z, w_face=wplus)


def test_latent_style_codes_follow_the_recorded_sampling():
    """normal: the draws themselves; fitted: mean + L eps with the embedded encoder's statistics,
    recorded in init_kwargs so a loaded generator samples as it was trained."""
    eps = torch.randn(4096, D, generator=torch.Generator().manual_seed(0))
    assert torch.equal(small_blend(style_encoder=ENC).latent_style_codes(eps), eps)
    g = small_blend(style_encoder=ENC, latent_style="fitted")
    assert g.init_kwargs["latent_style"] == "fitted"
    a = torch.randn(D, D, generator=torch.Generator().manual_seed(1)) / D ** 0.5
    cov, mean = a @ a.T + 0.1 * torch.eye(D), torch.linspace(-1, 1, D)
    g.embedder.style_mean.copy_(mean)
    g.embedder.style_cov.copy_(cov)
    codes = g.latent_style_codes(eps)
    assert (codes.mean(0) - mean).abs().max() < 0.08
    torch.testing.assert_close(torch.cov(codes.T), cov, rtol=0, atol=0.08)
    with pytest.raises(ValueError, match="latent_style"):
        small_blend(latent_style="uniform")
    with pytest.raises(RuntimeError, match="statistics"):
        small_blend(latent_style="fitted").latent_style_codes(eps)


def test_truncation_applies_to_face_code_only():
    g = small_blend()
    with torch.no_grad():
        g.add_weight.fill_(0.0)  # everything from w_s beyond L(i)
    z, zs = torch.randn(2, D), torch.randn(2, D)
    centre = torch.randn(1, D)
    _, lat = g(z, zs, indicator=0, truncation=0.5, truncation_latent=centre, return_latents=True)
    torch.testing.assert_close(lat, g.embedding(zs).unsqueeze(1).expand_as(lat))
    _, lat = g(z, None, truncation=0.5, truncation_latent=centre, return_latents=True)
    torch.testing.assert_close(lat[:, 0], centre + 0.5 * (g.style(z) - centre))


# ----------------------------------------------------------------------------- discriminators
def test_style_latent_discriminator_projection():
    torch.manual_seed(0)
    d = StyleLatentDiscriminator(16, style_dim=D, **SMALL)
    x, zs = torch.randn(4, 3, 16, 16), torch.randn(4, D)
    h = d.features(x).sum((2, 3))
    expected = d.l_out(h) + (d.l_style(zs) * h).sum(1, keepdim=True)
    torch.testing.assert_close(d(x, zs), expected)
    assert not hasattr(d, "final_linear")
    ds = make_discriminators(16, style_dim=D, **SMALL)
    assert set(ds) == {"d_face", "d_style", "d_style_latent"}
    # D_style random by default (supplement A), a copy of D_face on request
    assert not all(torch.equal(a, b) for a, b in zip(ds["d_face"].parameters(),
                                                    ds["d_style"].parameters()))
    ds = make_discriminators(16, style_dim=D, d_style_init="copy", **SMALL)
    for a, b in zip(ds["d_face"].parameters(), ds["d_style"].parameters()):
        assert torch.equal(a, b) and a is not b
    with pytest.raises(ValueError, match="d_style_init"):
        make_discriminators(16, style_dim=D, d_style_init="face", **SMALL)


# ----------------------------------------------------------------------------- style encoder
def test_gram_dimension_at_full_width():
    with torch.device("meta"):
        assert GramEmbedding().dim == 610_304
    emb = GramEmbedding(pool_size=32)  # the real VGG-19 widths on a small input
    assert emb(torch.zeros(1, 3, 20, 20)).shape == (1, 610_304)


def test_gram_matrix_formula():
    f = torch.randn(2, 3, 4, 5)
    g = gram_matrix(f)
    flat = f.reshape(2, 3, 20)
    torch.testing.assert_close(g[1], flat[1] @ flat[1].T / 60)


def test_vgg_indices_follow_torchvision():
    vgg = VGG19Features(width=0.125)
    assert len(vgg.features) == 37
    assert all(isinstance(vgg.features[i], torch.nn.ReLU) for i in STYLE_LAYERS)
    assert isinstance(vgg.features[34], torch.nn.Conv2d)
    assert vgg.tap_channels() == [8, 16, 32, 64, 64]


def test_vgg_loads_torchvision_state_dict(tmp_path):
    src = VGG19Features(width=0.125)
    sd = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(4, 4)  # the classifier is ignored
    torch.save(sd, tmp_path / "vgg19.pth")
    dst = VGG19Features(width=0.125).load_torchvision(tmp_path / "vgg19.pth")
    x = torch.randn(1, 3, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(src(x), dst(x)))
    with pytest.raises(RuntimeError):
        VGG19Features(width=0.25).load_torchvision(tmp_path / "vgg19.pth")


def test_style_encoder_shapes_freezing_and_options():
    torch.manual_seed(0)
    enc = StyleEncoder(**ENC)
    assert enc.gram.dim == 64 + 256 + 1024 + 4096 + 4096
    imgs = torch.rand(3, 3, 45, 70) * 2 - 1
    z = enc(imgs)
    assert z.shape == (3, D)
    enc.project(z).pow(2).sum().backward()
    assert all(p.grad is None for p in enc.gram.vgg.parameters())
    assert all(p.grad is not None for p in enc.trainable_parameters())
    norm = StyleEncoder(**ENC, imagenet_normalize=True)
    norm.load_state_dict(enc.state_dict())
    assert not torch.allclose(norm(imgs), enc(imgs))
    enc.set_style_stats(torch.randn(100, D) * 2 + 3)
    s = enc.sample(2000, generator=torch.Generator().manual_seed(0))
    assert s.mean().item() == pytest.approx(3, abs=0.3)


# ----------------------------------------------------------------------------- pSp
def test_psp_encoder_shapes_and_names():
    torch.manual_seed(0)
    enc = PSPEncoder(n_styles=8, style_dim=D, widths=(8, 16, 16, 32), units=(1, 1, 2, 1),
                     input_size=64)
    enc.set_latent_avg(torch.ones(D))
    out = enc(torch.rand(2, 3, 90, 70) * 2 - 1)
    assert out.shape == (2, 8, D)
    out.sum().backward()
    keys = set(enc.state_dict())
    for k in ("encoder.input_layer.0.weight", "encoder.body.1.shortcut_layer.0.weight",
              "encoder.body.1.res_layer.5.fc1.weight", "encoder.styles.7.linear.weight",
              "encoder.latlayer1.weight", "encoder.latlayer2.bias", "latent_avg"):
        assert k in keys, k


def test_psp_paper_structure():
    with torch.device("meta"):
        enc = PSPEncoder()
    assert len(enc.encoder.body) == 24 and enc.encoder.taps == (6, 20, 23)
    convs = [len([m for m in s.convs if isinstance(m, torch.nn.Conv2d)]) for s in enc.encoder.styles]
    assert convs == [4] * 3 + [5] * 4 + [6] * 11  # from 16², 32², 64²
