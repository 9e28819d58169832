"""The paper's behaviours and the project's departures (docs/models.md, "Paper configuration"):
latent-guided draws, whitening, EMA, the truncation centre, the indicator rule at every
resolution against the released code's ``add_weight_index``, and what a released-format export
carries so that a model samples as it was trained."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_paper_config import paper_config  # noqa: E402
from train_helpers import (blendgan_cfg, encoder_cfg, loop, tiny_style_and_face,  # noqa: E402
                           write_yaml)

from models.blendgan import BlendGenerator, indicator_to_layer  # noqa: E402
from models.checkpoint import (RELEASED_SAMPLING_KEY, export_released,  # noqa: E402
                               load_checkpoint, load_generator)
from models.stylegan2 import Discriminator, Generator  # noqa: E402
from models.train import blendgan as bg  # noqa: E402
from models.train import style_encoder as se  # noqa: E402
from models.train.config import from_dict  # noqa: E402
from models.train.optim import ema_beta  # noqa: E402
from workflow.generate import DEFAULT_TRUNCATION, default_truncation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENC = dict(style_dim=16, vgg_width=0.0625, pool_size=256)


def released_blend(latent, style, alpha, add_weight_index):
    """The released code's blending (model.py, ``add_weight_index``), written from its rule:
    alpha is set to 1 below the index, then latent * alpha + style * (1 - alpha)."""
    a = alpha.clamp(0, 1).clone()
    a[:, :add_weight_index, :] = 1.0
    return latent * a + style.unsqueeze(1) * (1 - a)


def test_indicator_is_the_released_add_weight_index_at_1024():
    torch.manual_seed(0)
    g = BlendGenerator(1024, 8, n_mlp=1, channel_base=64, channel_max=4)
    assert g.n_latent == 18
    with torch.no_grad():
        g.add_weight.uniform_(0, 1)
    w_face, w_style = torch.randn(3, 18, 8), torch.randn(3, 8)
    for i in range(19):
        expected = released_blend(w_face, w_style, g.add_weight, i)
        assert torch.equal(g.blend(w_face, w_style, i), expected), i
        per_row = torch.full((3,), i)
        assert torch.equal(g.blend(w_face, w_style, per_row), expected), i


@pytest.mark.parametrize("size,n_latent,at_6", [(32, 8, 2), (64, 10, 3), (256, 14, 4),
                                                (512, 16, 5), (1024, 18, 6)])
def test_indicator_rule_at_other_resolutions(size, n_latent, at_6):
    """L(i) = floor(i * n / 18): i = 18 is natural, every i < 18 restyles at least one layer,
    and the first blended layer never decreases with i."""
    layers = [indicator_to_layer(i, n_latent) for i in range(19)]
    assert layers[18] == n_latent and max(layers[:18]) < n_latent
    assert layers[6] == at_6 and layers == sorted(layers) and layers[0] == 0
    tensor = indicator_to_layer(torch.arange(19), n_latent)
    assert tensor.tolist() == layers


def test_blendgan_ema_is_rosinalitys_per_step_decay_at_batch_8():
    cfg = bg.BlendGANConfig()
    assert cfg.loop.batch == 8
    assert ema_beta(cfg.loop.batch, cfg.ema_half_life_images) == pytest.approx(
        0.5 ** (32 / 10_000), rel=1e-12)


def test_paper_config_restores_the_papers_behaviours():
    cfg = paper_config()
    blend = from_dict(bg.BlendGANConfig, cfg["blendgan"])
    enc = from_dict(se.StyleEncoderConfig, cfg["style_encoder"])
    assert (blend.latent_style, blend.d_style_init, blend.latent_avg) == ("normal", "random",
                                                                          "checkpoint")
    assert ema_beta(blend.loop.batch, blend.ema_half_life_images) == pytest.approx(
        0.5 ** (32 / 10_000))
    assert enc.whiten is False
    # The dataclass defaults are the paper's too; the demo's departures are named options.
    assert (bg.BlendGANConfig().latent_style, se.StyleEncoderConfig().whiten) == ("normal", False)
    import yaml
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert demo["blendgan"]["latent_style"] == "fitted" and demo["style_encoder"]["whiten"] is True
    assert demo["blendgan"]["latent_avg"] == "estimate"


def fitted_generator():
    torch.manual_seed(1)
    g = BlendGenerator(16, 16, n_mlp=2, channel_base=64, channel_max=16, style_encoder=ENC,
                       latent_style="fitted")
    codes = torch.randn(64, 16) @ torch.randn(16, 16) + 3.0
    g.embedder.set_style_stats(codes)
    g.update_latent_avg(256)
    return g


def test_released_export_keeps_fitted_sampling_and_a_stored_truncation(tmp_path):
    g = fitted_generator()
    export_released(g, tmp_path / "fitted.pt", truncation=0.6,
                    trained_with={"latent_style": "fitted"})
    raw = torch.load(tmp_path / "fitted.pt", weights_only=True)
    assert raw["truncation"] == 0.6 and raw["trained_with"] == {"latent_style": "fitted"}
    assert raw[RELEASED_SAMPLING_KEY]["latent_style"] == "fitted"
    g2 = load_generator(tmp_path / "fitted.pt")
    assert g2.latent_style == "fitted"
    eps = torch.randn(4, 16)
    torch.testing.assert_close(g2.latent_style_codes(eps), g.latent_style_codes(eps))
    assert g2.stored_truncation == 0.6 and default_truncation(g2) == 0.6

    # The authors' files carry neither: N(0, I) draws, the paper's psi.
    del raw[RELEASED_SAMPLING_KEY], raw["truncation"], raw["trained_with"]
    torch.save(raw, tmp_path / "authors.pt")
    g3 = load_generator(tmp_path / "authors.pt")
    assert g3.latent_style == "normal" and torch.equal(g3.latent_style_codes(eps), eps)
    assert g3.stored_truncation is None and default_truncation(g3) == DEFAULT_TRUNCATION


def test_generate_cli_takes_the_stored_truncation(tmp_path):
    from workflow import generate

    g = fitted_generator()
    export_released(g, tmp_path / "g.pt", truncation=0.5)
    out = tmp_path / "grid.png"
    generate.main(["latent", "--blendgan", str(tmp_path / "g.pt"), "--faces", "1", "--styles",
                   "1", "--cell", "16", "--out", str(out), "--device", "cpu"])
    assert out.is_file()
    args = generate.build_parser().parse_args(["latent", "--blendgan", "x", "--out", "y"])
    assert args.truncation is None  # resolved from the checkpoint in main()


# ------------------------------------------------------------------ trainer records
@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviour")
    style, _, face = tiny_style_and_face(root)
    enc = se.main(["--config", str(write_yaml(root / "se.yaml", encoder_cfg(
        whiten=False, loop=loop(total_images=8)))), "--data", str(style), "--out", str(root / "se")])
    torch.manual_seed(0)
    sg = Generator(16, 16, n_mlp=2, channel_base=64, channel_max=16)
    d = Discriminator(16, channel_base=64, channel_max=16)
    avg = torch.full((16,), 0.25)  # a centre no estimate would give
    torch.save({"g_ema": sg.state_dict(), "d": d.state_dict(), "latent_avg": avg},
               root / "sg2.pt")
    return {"root": root, "style": style, "face": face, "encoder": enc, "sg2": root / "sg2.pt",
            "avg": avg}


def test_encoder_without_whitening_stores_its_raw_code_statistics(parts):
    enc = load_checkpoint(parts["encoder"])["models"]["style_encoder"]
    assert load_checkpoint(parts["encoder"], build=False)["config"]["whiten"] is False
    # Raw codes of a barely trained MLP: a mean far from 0, not a whitened covariance.
    assert enc.style_mean.abs().max() > 1e-2
    assert not torch.allclose(enc.style_cov, torch.eye(16), atol=1e-2)


def train_blendgan(parts, source):
    out = parts["root"] / f"bg-{source}"
    if (out / "final.pt").is_file():
        return out / "final.pt"
    cfg = write_yaml(out.with_suffix(".yaml"), blendgan_cfg(
        stylegan2_checkpoint=str(parts["sg2"]), latent_avg=source, loop=loop(total_images=4)))
    return bg.main(["--config", str(cfg), "--face", str(parts["face"]), "--style",
                    str(parts["style"]), "--style-encoder", str(parts["encoder"]),
                    "--out", str(out)])


@pytest.mark.parametrize("source", ["checkpoint", "estimate"])
def test_blendgan_records_its_behaviour_and_truncation_centre(parts, source):
    final = train_blendgan(parts, source)
    record = load_checkpoint(final, build=False)["extra"]["trained_with"]
    assert record["latent_style"] == "normal" and record["d_style_init"] == "random"
    assert record["style_encoder_whitened"] is False
    assert record["ema_half_life_images"] == 2_500
    assert record["indicator_rule"].startswith("L(i) = floor")
    g = load_generator(final)
    kept = torch.allclose(g.latent_avg[0], parts["avg"])
    assert kept == (source == "checkpoint")
    assert record["latent_avg"].startswith(source)


def test_export_cli_writes_the_trainers_record(parts, tmp_path):
    from models import checkpoint

    out = tmp_path / "released.pt"
    assert checkpoint.main(["export-released", str(train_blendgan(parts, "checkpoint")),
                            "--out", str(out)]) == 0
    raw = torch.load(out, weights_only=True)
    assert raw["trained_with"]["latent_avg"] == "checkpoint" and "truncation" not in raw
    assert load_generator(out).latent_style == "normal"


def test_blendgan_resume_with_path_length_equals_uninterrupted(parts, tmp_path):
    """The path-length phase draws from the global RNG; a resumed run's loader must not shift
    those draws (the step seed is set after the batch is fetched)."""
    cfg = write_yaml(tmp_path / "bg.yaml", blendgan_cfg(
        stylegan2_checkpoint=str(parts["sg2"]), path_regularize=2.0, g_reg_every=2,
        d_reg_every=2, loop=loop(total_images=16, snapshot_every=8)))
    args = ["--config", str(cfg), "--face", str(parts["face"]), "--style", str(parts["style"]),
            "--style-encoder", str(parts["encoder"])]
    whole = bg.main(args + ["--out", str(tmp_path / "whole")])
    bg.main(args + ["--out", str(tmp_path / "cut"), "--stop-after-images", "8"])
    assert not (tmp_path / "cut" / "final.pt").exists()
    resumed = bg.main(args + ["--out", str(tmp_path / "cut")])
    a = load_checkpoint(whole)["models"]
    b = load_checkpoint(resumed)["models"]
    for name in ("g", "d_face", "d_style_latent"):
        for key, value in a[name].state_dict().items():
            assert torch.equal(value, b[name].state_dict()[key]), (name, key)
