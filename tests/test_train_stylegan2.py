"""The natural-domain StyleGAN2 trainer and BlendGAN starting from its checkpoint; BlendGAN's
cached style codes against the encoder run per batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import (blendgan_cfg, encoder_cfg, loop, tiny_style_and_face,  # noqa: E402
                           write_yaml)

from models.checkpoint import load_generator, load_stylegan2  # noqa: E402
from models.train import blendgan as bg  # noqa: E402
from models.train import style_encoder as se  # noqa: E402
from models.train import stylegan2 as sg  # noqa: E402
from models.train.config import from_dict  # noqa: E402
from models.train.distributed import Dist  # noqa: E402
from models.train.stats import read_stats  # noqa: E402

CPU = Dist()


def stylegan2_cfg(**kw):
    cfg = dict(resolution=16, style_dim=16, n_mlp=2, channel_base=64, channel_max=16,
               r1=0.1, sample_faces=4, loop=loop(total_images=16))
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sg2")
    style, _, face = tiny_style_and_face(root)
    return {"root": root, "style": style, "face": face}


@pytest.fixture(scope="module")
def stylegan2_ckpt(data):
    cfg = write_yaml(data["root"] / "sg.yaml", stylegan2_cfg())
    return sg.main(["--config", str(cfg), "--data", str(data["face"]),
                    "--out", str(data["root"] / "sg"), "--final", str(data["root"] / "sg.pt")])


@pytest.fixture(scope="module")
def encoder_ckpt(data):
    cfg = write_yaml(data["root"] / "se.yaml", encoder_cfg(loop=loop(total_images=8)))
    return se.main(["--config", str(cfg), "--data", str(data["style"]),
                    "--out", str(data["root"] / "se")])


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        sg.main(["--help"])
    assert e.value.code == 0 and "--data" in capsys.readouterr().out


def test_losses_fall_on_fixed_batch(data, tmp_path):
    t = sg.StyleGAN2Trainer.from_paths(from_dict(sg.StyleGAN2Config, stylegan2_cfg()), CPU,
                                       tmp_path, str(data["face"]))
    phases = {p.name: p for p in t.phases()}
    assert list(phases) == ["G_main", "G_reg", "D_main", "D_reg"]
    batch = t.get_batch(0)
    for params, name in ((t.d.parameters(), "D_main"), (t.g.parameters(), "G_main")):
        for p in list(t.g.parameters()) + list(t.d.parameters()):
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        losses = []
        for _ in range(10):
            phases[name].optimizer.zero_grad(set_to_none=True)
            loss, _ = phases[name].loss(batch, 1)
            loss.backward()
            phases[name].optimizer.step()
            losses.append(float(loss.detach()))
        assert losses[-1] < losses[0], (name, losses)


def test_checkpoint_is_rosinality_format(stylegan2_ckpt, data):
    raw = torch.load(stylegan2_ckpt, map_location="cpu", weights_only=True)
    assert {"g", "d", "g_ema", "latent_avg"} <= set(raw)
    assert raw["latent_avg"].shape == (16,)
    assert raw["extra"]["images"] == 16 and raw["config"]["resolution"] == 16
    ck = load_stylegan2(stylegan2_ckpt)  # strict: no missing or unexpected key
    assert ck["d"].size == 16 and ck["g_ema"].resolution == 16
    g = load_generator(stylegan2_ckpt)
    z = torch.randn(3, 16)
    out = g.generate(z)
    assert out.shape == (3, 3, 16, 16) and out.abs().max() <= 1
    assert torch.equal(out, g.generate(z, torch.randn(3, 16), indicator=18))
    assert any("D_main/loss" in r for r in read_stats(data["root"] / "sg" / "stats.jsonl"))
    assert list((data["root"] / "sg" / "samples").glob("*.png"))


def test_init_checkpoint_continues_a_released_file(stylegan2_ckpt, data, tmp_path):
    """A released file (g_ema and d only) starts G, its EMA and D; wrong widths are refused."""
    from models.train.release import release
    shipped = tmp_path / "shipped.pt"
    release(stylegan2_ckpt, shipped)
    raw = torch.load(shipped, map_location="cpu", weights_only=True)
    assert "g" not in raw
    cfg = from_dict(sg.StyleGAN2Config, stylegan2_cfg(init_checkpoint=str(shipped)))
    t = sg.StyleGAN2Trainer.from_paths(cfg, CPU, tmp_path / "run", str(data["face"]))
    for net, key in ((t.g, "g_ema"), (t.g_ema, "g_ema"), (t.d, "d")):
        for k, v in raw[key].items():
            assert torch.equal(net.state_dict()[k], v), (key, k)
    fresh = sg.StyleGAN2Trainer.from_paths(from_dict(sg.StyleGAN2Config, stylegan2_cfg()), CPU,
                                           tmp_path / "fresh", str(data["face"]))
    assert not all(torch.equal(a, b) for a, b in zip(fresh.d.parameters(), t.d.parameters()))
    wide = from_dict(sg.StyleGAN2Config, stylegan2_cfg(init_checkpoint=str(shipped), channel_max=32))
    with pytest.raises(ValueError, match="does not fit"):
        sg.StyleGAN2Trainer.from_paths(wide, CPU, tmp_path / "wide", str(data["face"]))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(shipped.read_bytes()[:4096])
    bad = from_dict(sg.StyleGAN2Config, stylegan2_cfg(init_checkpoint=str(broken)))
    with pytest.raises(ValueError, match="broken.pt: not a readable PyTorch file"):
        sg.StyleGAN2Trainer.from_paths(bad, CPU, tmp_path / "bad", str(data["face"]))


def test_release_of_the_last_snapshot_equals_release_of_the_final_file(stylegan2_ckpt, data,
                                                                      tmp_path):
    from models.train.release import release
    snap = sorted((data["root"] / "sg" / "snapshots").glob("snapshot-*.pt"))[-1]
    rec = release(snap, tmp_path / "snap.pt")
    release(stylegan2_ckpt, tmp_path / "final.pt")
    a, b = (torch.load(tmp_path / n, map_location="cpu", weights_only=True)
            for n in ("snap.pt", "final.pt"))
    assert rec["images"] == 16 and "g" not in a
    assert torch.equal(a["latent_avg"], b["latent_avg"])
    for key in ("g_ema", "d"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert load_generator(tmp_path / "snap.pt").resolution == 16
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for bad, why in (("absent.pt", "No such file"), ("notes.txt", "weights-only torch file")):
        with pytest.raises(ValueError, match=f"{bad}: .*{why}"):
            release(tmp_path / bad, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_widened_file_computes_the_same_and_trains_at_the_new_widths(stylegan2_ckpt, data,
                                                                     tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    import widen_stylegan2 as widen
    wide = tmp_path / "wide.pt"
    diff = widen.widen(stylegan2_ckpt, wide, channel_base=128)  # 8 -> 16 channels at 16 px
    assert max(diff.values()) < 1e-5
    raw = torch.load(wide, map_location="cpu", weights_only=True)
    assert raw["g_ema"]["convs.2.conv.weight"].shape[1:3] == (16, 16)
    old, new = load_generator(stylegan2_ckpt), load_generator(wide)
    z = torch.randn(3, 16)
    torch.testing.assert_close(new.generate(z), old.generate(z), atol=1e-5, rtol=0)
    cfg = from_dict(sg.StyleGAN2Config, stylegan2_cfg(init_checkpoint=str(wide), channel_base=128))
    t = sg.StyleGAN2Trainer.from_paths(cfg, CPU, tmp_path / "run", str(data["face"]))
    assert torch.equal(t.d.state_dict()["convs.0.0.weight"], raw["d"]["convs.0.0.weight"])
    with pytest.raises(ValueError, match="nothing to widen"):
        widen.widen(stylegan2_ckpt, tmp_path / "same.pt", channel_base=64)
    with pytest.raises(ValueError, match="4 px width would change"):
        widen.widen(stylegan2_ckpt, tmp_path / "cap.pt", channel_base=128, channel_max=32)
    assert not (tmp_path / "same.pt").exists() and not (tmp_path / "cap.pt").exists()


def test_blendgan_starts_from_the_stylegan2_checkpoint(stylegan2_ckpt, encoder_ckpt, data,
                                                       tmp_path):
    cfg = from_dict(bg.BlendGANConfig, blendgan_cfg(stylegan2_checkpoint=str(stylegan2_ckpt)))
    t = bg.BlendGANTrainer.from_paths(cfg, CPU, tmp_path, str(data["face"]),
                                      str(data["style"]), str(encoder_ckpt))
    natural = load_generator(stylegan2_ckpt)
    z = torch.randn(4, 16)
    torch.testing.assert_close(t.g_ema.generate(z), natural.generate(z))
    raw = torch.load(stylegan2_ckpt, map_location="cpu", weights_only=True)
    for k, v in raw["d"].items():
        assert torch.equal(t.ds[0].state_dict()[k], v), k  # D_face from the checkpoint's d


def test_cached_style_codes_equal_codes_of_the_batch(encoder_ckpt, data, tmp_path):
    """The code table gives what E_style gives on the step's (flipped) style images."""
    kw = dict(blendgan_cfg(), loop=loop(batch=8))
    paths = str(data["face"]), str(data["style"]), str(encoder_ckpt)
    cached = bg.BlendGANTrainer.from_paths(from_dict(bg.BlendGANConfig, kw), CPU, tmp_path / "a",
                                           *paths)
    plain = bg.BlendGANTrainer.from_paths(
        from_dict(bg.BlendGANConfig, dict(kw, cache_style_codes=False)), CPU, tmp_path / "b",
        *paths)
    assert cached.code_table is not None and plain.code_table is None
    for step in (0, 3, 7):  # 24 images, batch 8: steps cross epochs
        a, b = cached.get_batch(step), plain.get_batch(step)
        assert torch.equal(a["style"], b["style"])
        torch.testing.assert_close(a["z_real"], b["z_real"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a["z_real"], plain.embed(a["style"]), rtol=1e-5, atol=1e-5)
