"""The four trainers on tiny data: CLIs, losses falling on a fixed batch, checkpoints that load
with the public loaders, the probes, and BlendGAN under two gloo processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import (blendgan_cfg, encoder_cfg, loop, psp_cfg,  # noqa: E402
                           tiny_style_and_face, torchrun_two, write_truth, write_yaml)

from models.checkpoint import (load_checkpoint, load_generator, load_psp_encoder,  # noqa: E402
                               load_style_encoder)
from models.train import blendgan as bg  # noqa: E402
from models.train import finetune as ft  # noqa: E402
from models.train import psp as psp_train  # noqa: E402
from models.train import style_encoder as se  # noqa: E402
from models.train.config import from_dict  # noqa: E402
from models.train.distributed import Dist  # noqa: E402
from models.train.stats import read_stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CPU = Dist()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    style, truth, face = tiny_style_and_face(root)
    return {"root": root, "style": style, "face": face,
            "truth": write_truth(root / "truth.json", truth)}


@pytest.fixture(scope="module")
def encoder_ckpt(data):
    cfg = write_yaml(data["root"] / "se.yaml", encoder_cfg(loop=loop(total_images=8)))
    return se.main(["--config", str(cfg), "--data", str(data["style"]),
                    "--out", str(data["root"] / "se")])


@pytest.fixture(scope="module")
def blendgan_ckpt(data, encoder_ckpt):
    cfg = write_yaml(data["root"] / "bg.yaml",
                     blendgan_cfg(latent_style="fitted",
                                  loop=loop(total_images=8, eval_every=4, sample_every=8)))
    return bg.main(["--config", str(cfg), "--face", str(data["face"]), "--style",
                    str(data["style"]), "--style-encoder", str(encoder_ckpt),
                    "--out", str(data["root"] / "bg")])


def _falls(phase, batch, steps=12):
    losses = []
    for _ in range(steps):
        phase.optimizer.zero_grad(set_to_none=True)
        loss, _ = phase.loss(batch, 1)
        loss.backward()
        phase.optimizer.step()
        if phase.after_step:
            phase.after_step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("module", [se, bg, psp_train, ft])
def test_cli_help(module, capsys):
    with pytest.raises(SystemExit) as err:
        module.main(["--help"])
    assert err.value.code == 0
    assert "--config" in capsys.readouterr().out


def test_unknown_config_key_is_an_error(data, tmp_path, capsys):
    cfg = write_yaml(tmp_path / "bad.yaml", {"resolutoin": 16})
    args = ["--config", str(cfg), "--data", str(data["style"]), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as err:  # one line on stderr, exit status 2
        se.main(args)
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert "unknown key" in err_text and "resolutoin" in err_text
    with pytest.raises(ValueError, match="unknown key.*resolutoin"):  # --debug: the exception itself
        se.main([*args, "--debug"])


# ------------------------------------------------------------------------------ style encoder
def test_style_encoder_loss_falls_on_fixed_batch(data, tmp_path):
    cfg = from_dict(se.StyleEncoderConfig, encoder_cfg())
    t = se.StyleEncoderTrainer.from_paths(cfg, CPU, tmp_path, str(data["style"]))
    losses = _falls(t.phases()[0], t.get_batch(0))
    assert losses[-1] < losses[0] * 0.9, losses


def test_style_encoder_checkpoint(encoder_ckpt):
    enc = load_style_encoder(encoder_ckpt)
    assert enc(torch.zeros(1, 3, 16, 16)).shape == (1, 16)
    extra = load_checkpoint(encoder_ckpt, build=False)["extra"]
    assert len(extra["holdout_names"]) == 4 and extra["train_count"] == 20
    # Whitened over its 20 training images: stored mean 0, covariance I where the codes have
    # variance and below I in the floored directions, never above.
    assert enc.style_mean.abs().max() < 1e-3
    lam = torch.linalg.eigvalsh(enc.style_cov.double())
    assert lam.max() == pytest.approx(1.0, abs=1e-3) and lam.min() > -1e-4


def _encoder_with_offset_codes(seed=0):
    """An encoder and Gram-like inputs whose codes have a mean and correlated, unequal
    variances (the fold only touches the MLPs, so the VGG is skipped)."""
    torch.manual_seed(seed)
    enc = se.StyleEncoder(style_dim=8, n_mlp=2, vgg_width=0.0625, pool_size=16)
    with torch.no_grad():
        enc.mlp[-1].bias.add_(torch.randn(8))
        enc.mlp[-1].weight.mul_(torch.linspace(0.1, 3.0, 8)[:, None])
    return enc, lambda n: torch.randn(n, enc.gram.dim)


def test_whitening_fold_keeps_head_output_and_whitens_codes():
    enc, gram = _encoder_with_offset_codes()
    h = gram(256)
    with torch.no_grad():
        before_codes = enc.mlp(h)
        before_head = enc.project(before_codes)
        var = torch.cov(before_codes.T).diagonal()
        assert var.max() > 10 * var.min()  # far from whitened to begin with
        kept = se.whiten_output_(enc, before_codes, floor=1e-6)
        codes = enc.mlp(h)
        head = enc.project(codes)
    assert kept == 8
    torch.testing.assert_close(head, before_head, rtol=1e-4, atol=1e-4 * before_head.abs().max())
    assert codes.mean(0).abs().max() < 1e-4
    torch.testing.assert_close(torch.cov(codes.T), torch.eye(8), rtol=0, atol=1e-3)


def test_whitening_floor_leaves_empty_directions_unamplified():
    """Codes of 5 inputs span 4 directions: the other 4 are floored (variance ~0, not blown
    up to 1), and the head output is still unchanged."""
    enc, gram = _encoder_with_offset_codes(1)
    h = gram(5)
    with torch.no_grad():
        before_head = enc.project(enc.mlp(h))
        kept = se.whiten_output_(enc, enc.mlp(h), floor=1e-4)
        lam = torch.linalg.eigvalsh(torch.cov(enc.mlp(h).T.double()))
        head = enc.project(enc.mlp(h))
    assert kept == 4
    assert lam[-4:].sub(1).abs().max() < 1e-3 and lam[:4].abs().max() < 1e-3
    torch.testing.assert_close(head, before_head, rtol=1e-4, atol=1e-4 * before_head.abs().max())


# ------------------------------------------------------------------------------ BlendGAN
def test_blendgan_losses_fall_on_fixed_batch(data, encoder_ckpt, tmp_path):
    cfg = from_dict(bg.BlendGANConfig, blendgan_cfg())
    t = bg.BlendGANTrainer.from_paths(cfg, CPU, tmp_path, str(data["face"]),
                                      str(data["style"]), str(encoder_ckpt))
    phases = {p.name: p for p in t.phases()}
    batch = t.get_batch(0)
    for p in t.d_params:
        p.requires_grad_(True)
    d = _falls(phases["D_main"], batch)
    assert d[-1] < d[0], d
    for p in t.d_params:
        p.requires_grad_(False)
    g = _falls(phases["G_main"], batch)
    assert g[-1] < g[0], g
    assert 0 <= float(t.g.add_weight.min()) and float(t.g.add_weight.max()) <= 1


def test_blendgan_checkpoint_loads(blendgan_ckpt, data):
    g = load_generator(blendgan_ckpt)
    assert g.resolution == 16 and g.embedder is not None
    z = torch.randn(2, 16)
    zs = torch.randn(2, 16)
    assert torch.equal(g.generate(z), g.generate(z, zs, indicator=18))
    out = g.generate(z, zs, indicator=6)
    assert out.shape == (2, 3, 16, 16) and out.abs().max() <= 1
    assert load_style_encoder(blendgan_ckpt)(torch.zeros(1, 3, 16, 16)).shape == (1, 16)
    # latent-guided draws as in training: N(mean, cov) of the encoder's codes, recorded
    eps = torch.randn(3, 16)
    assert g.latent_style == "fitted"
    torch.testing.assert_close(g.latent_style_codes(eps), load_style_encoder(blendgan_ckpt).from_normal(eps))
    stats = read_stats(data["root"] / "bg" / "stats.jsonl")
    assert any("eval/fd_estyle_reference" in r for r in stats)
    assert any("G_main/face" in r for r in stats)
    assert list((data["root"] / "bg" / "samples").glob("*.png"))



def test_blendgan_two_process_ddp_equals_one_process(data, encoder_ckpt, tmp_path):
    """Global batch 4 as 1x4 and 2x2. Path length (per-rank subset, as in rosinality) is off
    and the minibatch-stddev group is 1, the two parts that depend on the split."""
    cfg = write_yaml(tmp_path / "c.yaml", blendgan_cfg(
        stddev_group=1, path_regularize=0.0, loop=loop(total_images=8, snapshot_every=0)))
    args = ["--config", str(cfg), "--face", str(data["face"]), "--style", str(data["style"]),
            "--style-encoder", str(encoder_ckpt)]
    one = bg.main(args + ["--out", str(tmp_path / "one")])
    torchrun_two("models.train.blendgan", [*args, "--out", str(tmp_path / "two")], timeout=240)
    a = load_checkpoint(one, build=False)["models"]
    b = load_checkpoint(tmp_path / "two" / "final.pt", build=False)["models"]
    for name in ("g", "d_face", "d_style", "d_style_latent"):
        for k, v in a[name]["state_dict"].items():
            assert torch.allclose(v, b[name]["state_dict"][k], rtol=1e-4, atol=1e-5), (name, k)


# ------------------------------------------------------------------------------ pSp
def test_psp_loss_falls_and_terms_switch_off(data, blendgan_ckpt, tmp_path):
    cfg = from_dict(psp_train.PSPConfig, psp_cfg())
    with pytest.warns(UserWarning, match="switched OFF"):
        t = psp_train.PSPTrainer.from_paths(cfg, CPU, tmp_path, str(data["face"]), str(blendgan_ckpt))
    assert t.weights["lpips"] == 0 and t.weights["id"] == 0 and t.weights["l2"] == 1
    losses = _falls(t.phases()[0], t.get_batch(0), steps=15)
    assert losses[-1] < losses[0], losses


def test_psp_cli_and_checkpoint(data, blendgan_ckpt, tmp_path):
    cfg = write_yaml(tmp_path / "psp.yaml", psp_cfg())
    final = psp_train.main(["--config", str(cfg), "--face", str(data["face"]),
                            "--generator", str(blendgan_ckpt), "--out", str(tmp_path / "psp")])
    enc = load_psp_encoder(final)
    g = load_generator(blendgan_ckpt)
    w = enc(torch.zeros(1, 3, 16, 16))
    assert w.shape == (1, g.n_latent, 16)
    vals = [r["eval/val_l2"] for r in read_stats(tmp_path / "psp" / "stats.jsonl")
            if "eval/val_l2" in r]
    assert len(vals) >= 2
    # Probe: held-out reconstruction error over training, as JSON.
    from workflow.evaluate import style_probe
    out = tmp_path / "psp_probe.json"
    style_probe.main(["psp", "--stats", str(tmp_path / "psp" / "stats.jsonl"), "--out", str(out)])
    traj = json.loads(out.read_text())["held_out_reconstruction"]["eval/val_l2"]
    assert traj["first"] == vals[0] and traj["last"] == vals[-1]


# ------------------------------------------------------------------------------ fine-tuning
def test_finetune_bad_reference_is_a_clear_error(data, blendgan_ckpt, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    common = ["--checkpoint", str(blendgan_ckpt), "--face", str(data["face"]),
              "--out", str(tmp_path / "ft")]
    for ref, reason in ((bad, "cannot read the image"), (tmp_path / "gone.png", "No such file")):
        with pytest.raises(SystemExit, match=f"{ref.name}.*{reason}"):
            ft.main(common + ["--reference", str(ref)])
    with pytest.raises(SystemExit, match="reference_index 999 outside 0..23"):
        ft.main(common + ["--reference-lmdb", str(data["style"]), "--reference-index", "999"])
    assert not (tmp_path / "ft" / "finetune.pt").exists()


def test_finetune_from_one_reference(data, blendgan_ckpt, tmp_path):
    cfg = write_yaml(tmp_path / "ft.yaml", {"loop": loop(batch=1, total_images=4, log_every=2,
                                                         snapshot_every=0, eval_every=2)})
    final = ft.main(["--config", str(cfg), "--checkpoint", str(blendgan_ckpt),
                     "--face", str(data["face"]), "--reference-lmdb", str(data["style"]),
                     "--reference-index", "3", "--out", str(tmp_path / "ft")])
    g = load_generator(final)
    assert g.generate(torch.randn(1, 16), torch.randn(1, 16), indicator=6).shape == (1, 3, 16, 16)
    assert g.latent_style == "fitted"  # sampled as the base model was trained
    stats = read_stats(tmp_path / "ft" / "stats.jsonl")
    assert sum("eval/ref_style_cosine" in r for r in stats) >= 2
    # Losses fall on a fixed batch for the fine-tuning trainer too.
    ftcfg = from_dict(ft.FinetuneConfig, {"loop": loop(batch=2)})
    ref = ft.LMDBImages(data["style"], 16)[3]
    t = ft.FinetuneTrainer.from_paths(ftcfg, CPU, tmp_path / "ft2", str(blendgan_ckpt),
                                      str(data["face"]), ref)
    phases = {p.name: p for p in t.phases()}
    batch = t.get_batch(0)
    assert torch.equal(batch["style"][0], batch["style"][1])  # only the reference
    for p in t.d_params:
        p.requires_grad_(True)
    d = _falls(phases["D_main"], batch)
    assert d[-1] < d[0], d


# ------------------------------------------------------------------------------ probes
def test_probes_run_on_tiny_truth(data, encoder_ckpt, blendgan_ckpt, tmp_path):
    from workflow.evaluate import style_probe
    out = tmp_path / "enc.json"
    style_probe.main(["encoder", "--checkpoint", str(encoder_ckpt), "--data", str(data["style"]),
                      "--truth", str(data["truth"]), "--out", str(out)])
    res = json.loads(out.read_text())
    for name in ("learned_encoder", "gram_baseline"):
        assert 0 <= res[name]["knn_style_accuracy"] <= 1
        assert 0 <= res[name]["knn_identity_accuracy"] <= 1
    assert res["heldout_images"] == 4 and res["chance_style"]["classes"] == 3
    out = tmp_path / "bg.json"
    style_probe.main(["blendgan", "--checkpoint", str(blendgan_ckpt), "--encoder",
                      str(encoder_ckpt), "--data", str(data["style"]), "--truth",
                      str(data["truth"]), "--stats", str(data["root"] / "bg" / "stats.jsonl"),
                      "--out", str(out)])
    res = json.loads(out.read_text())
    assert 0 <= res["reference_guided_label_agreement"] <= 1
    # The overall agreement is the per-style agreements weighted by each style's outputs.
    per_style, counts = res["agreement_per_reference_style"], res["outputs_per_reference_style"]
    assert set(per_style) == set(counts) and all(0 <= a <= 1 for a in per_style.values())
    assert sum(counts.values()) == res["references"] * res["outputs_per_reference"]
    weighted = sum(per_style[s] * n for s, n in counts.items()) / sum(counts.values())
    assert abs(weighted - res["reference_guided_label_agreement"]) < 1e-9
    assert "eval/fd_estyle_reference" in res["fd_estyle_over_training"]


def test_gradient_accumulation_runs_and_splits_batches(data, encoder_ckpt, tmp_path):
    cfg = from_dict(bg.BlendGANConfig, blendgan_cfg(loop=loop(batch=4, accum=2)))
    t = bg.BlendGANTrainer.from_paths(cfg, CPU, tmp_path, str(data["face"]),
                                      str(data["style"]), str(encoder_ckpt))
    batch = t.get_batch(0)
    parts = t.split(batch, 2)
    assert [p["face"].shape[0] for p in parts] == [2, 2]
    assert parts[0]["z_face_g"].shape[1] == 4 and len(parts[0]["noise_g"]) == t.g.num_layers
    # Natural rows of micro-batch 0 are natural rows 0..1 of the whole batch.
    assert torch.equal(parts[0]["z_face_g"][:, :2], batch["z_face_g"][:, :2])
    assert torch.equal(parts[1]["z_face_g"][:, 2:], batch["z_face_g"][:, 6:])
    cfg_path = write_yaml(tmp_path / "acc.yaml", blendgan_cfg(loop=loop(batch=4, accum=2,
                                                                         total_images=8)))
    final = bg.main(["--config", str(cfg_path), "--face", str(data["face"]), "--style",
                     str(data["style"]), "--style-encoder", str(encoder_ckpt),
                     "--out", str(tmp_path / "acc")])
    assert load_generator(final).resolution == 16


def test_psp_lpips_and_identity_terms_load_their_weights(tmp_path):
    """With weight files configured, pSp trains with LPIPS and ArcFace terms (small random nets)."""
    import torch

    from models.arcface import ArcFace, load_arcface
    from models.lpips import LPIPS
    from models.train.psp import PSPConfig, active_weights

    torch.manual_seed(0)
    torch.save(LPIPS().state_dict(), tmp_path / "lpips.pt")
    torch.save(ArcFace(widths=(8, 16, 24, 32), units=(1, 1, 1, 1), embedding=16).state_dict(),
               tmp_path / "arc.pth")
    cfg = PSPConfig(lpips_weights=str(tmp_path / "lpips.pt"), arcface_weights=str(tmp_path / "arc.pth"))
    assert active_weights(cfg) == {"l2": 1.0, "w_norm": 0.0, "lpips": 0.8, "id": 0.1}
    net = load_arcface(tmp_path / "arc.pth")
    assert net.init_kwargs["widths"] == [8, 16, 24, 32] and net.init_kwargs["units"] == [1, 1, 1, 1]
    x = torch.rand(2, 3, 32, 32, requires_grad=True) * 2 - 1
    (1 - (net.identity(x) * net.identity(x.detach().flip(0))).sum(1)).mean().backward()
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        active_weights(PSPConfig(lpips_weights=str(tmp_path / "missing.pt")))


def test_finetune_from_image_file_and_its_probe(data, blendgan_ckpt, tmp_path):
    """A user's own reference file (not an LMDB index): the checkpoint keeps its pixels, G
    starts from the EMA weights, and the probe reports before/after on the same reference."""
    from PIL import Image

    from workflow.evaluate import finetune_probe
    ref = ft.LMDBImages(data["style"], 16)[5]
    path = tmp_path / "ref.png"
    Image.fromarray(((ref.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(path)
    cfg = write_yaml(tmp_path / "ft.yaml", {"lr": 0.0005, "loop": loop(
        batch=1, total_images=2, log_every=1, snapshot_every=0, eval_every=2)})
    final = ft.main(["--config", str(cfg), "--checkpoint", str(blendgan_ckpt), "--face",
                     str(data["face"]), "--reference", str(path), "--out", str(tmp_path / "ft")])
    extra = load_checkpoint(final, build=False)["extra"]
    assert extra["reference_image"].dtype == torch.uint8
    assert (extra["reference_image"].float() / 127.5 - 1 - ref).abs().max() < 0.01
    first = read_stats(tmp_path / "ft" / "stats.jsonl")[0]
    assert first["eval/natural_drift"] == 0.0  # g starts as g_ema: nothing moved before training
    out = tmp_path / "probe.json"
    finetune_probe.main(["--base", str(blendgan_ckpt), "--finetune", str(final), "--style-lmdb",
                         str(data["style"]), "--face-lmdb", str(data["face"]), "--faces", "4",
                         "--references", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    for k in ("before", "after"):
        assert -1 <= res[k]["reference_cosine"] <= 1
        assert 0 <= res[k]["closer_than_reference"] <= 1
    assert res["natural_mean_abs_change"] > 0  # two training steps moved G
