"""Supplement D ablation: a BlendGAN whose z_s is the raw Gram vector, its checkpoint, Figure 4
from two generators, and content leakage on generated images (CPU, tiny networks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import tiny_checkpoints, tiny_gram_checkpoint  # noqa: E402
from train_helpers import (blendgan_cfg, encoder_cfg, loop, make_lmdb, tiny_style_and_face,  # noqa: E402
                           write_truth, write_yaml)

from models.blendgan import BlendGenerator  # noqa: E402
from models.checkpoint import load_checkpoint, load_generator, save_checkpoint  # noqa: E402
from models.style_encoder import GramEmbedding  # noqa: E402
from models.train import blendgan as bg  # noqa: E402
from models.train import style_encoder as se  # noqa: E402
from models.train.config import from_dict  # noqa: E402
from models.train.distributed import Dist  # noqa: E402
from workflow.evaluate import ablation, figures  # noqa: E402

CPU = Dist()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gram")
    style, _, face = tiny_style_and_face(root)
    cfg = write_yaml(root / "se.yaml", encoder_cfg(loop=loop(total_images=8)))
    enc = se.main(["--config", str(cfg), "--data", str(style), "--out", str(root / "se")])
    return {"root": root, "style": style, "face": face, "encoder": enc}


def gram_cfg(**kw):
    return blendgan_cfg(style_embedding="gram", reference_fraction=1.0, **kw)


@pytest.fixture(scope="module")
def gram_ckpt(data):
    cfg = write_yaml(data["root"] / "gram.yaml",
                     gram_cfg(loop=loop(total_images=8, eval_every=4, sample_every=8)))
    return bg.main(["--config", str(cfg), "--face", str(data["face"]), "--style",
                    str(data["style"]), "--style-encoder", str(data["encoder"]),
                    "--out", str(data["root"] / "bg_gram")])


def test_gram_generator_takes_gram_width_and_refuses_gaussian_codes():
    kw = dict(vgg_width=0.0625, pool_size=16)
    g = BlendGenerator(16, style_dim=16, n_mlp=2, channel_base=64, channel_max=16,
                       style_encoder=kw, style_embedding="gram")
    dim = GramEmbedding(**kw).dim
    assert g.style_input_dim == dim and g.embedding[1].weight.shape == (16, dim)
    assert g.embedding[2].weight.shape == (16, 16)  # w stays style_dim
    z = torch.randn(2, 16)
    out = g.generate(z, g.style_code(torch.rand(2, 3, 16, 16) * 2 - 1), indicator=0)
    assert out.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="reference-guided only"):
        g.generate(z, torch.randn(2, 16), indicator=0)
    g.copy_face_mapping_to_style()  # the wide first layer has no counterpart: left alone
    assert torch.equal(g.embedding[2].weight, g.style[2].weight)


def test_gram_option_needs_reference_fraction_one(data, tmp_path):
    cfg = from_dict(bg.BlendGANConfig, blendgan_cfg(style_embedding="gram"))
    with pytest.raises(ValueError, match="reference_fraction: 1"):
        bg.BlendGANTrainer.from_paths(cfg, CPU, tmp_path, str(data["face"]),
                                      str(data["style"]), str(data["encoder"]))


def test_gram_training_step_and_checkpoint_round_trip(data, gram_ckpt):
    ck = load_checkpoint(gram_ckpt)
    assert ck["config"]["style_embedding"] == "gram"
    dim = ck["models"]["style_encoder"].gram.dim
    assert ck["models"]["d_style_latent"].l_style.weight.shape[1] == dim
    stats = [json.loads(line) for line in (Path(gram_ckpt).parent / "stats.jsonl").read_text().splitlines()]
    evals = [s for s in stats if "eval/fd_estyle_reference" in s]
    assert evals and not any("eval/fd_estyle_latent" in s for s in evals)
    # The public loader alone (no training config) gives a reference-guided generator.
    g = load_generator(gram_ckpt)
    assert g.style_embedding == "gram" and isinstance(g.embedder, GramEmbedding)
    assert g.style_input_dim == dim
    ref = torch.rand(3, 3, 16, 16) * 2 - 1
    out = g.generate(torch.randn(3, 16), g.style_code(ref), indicator=0)
    assert out.shape == (3, 3, 16, 16) and torch.isfinite(out).all()
    save_checkpoint(data["root"] / "again.pt", {"g_ema": g})
    again = load_generator(data["root"] / "again.pt")
    z = torch.randn(2, 16)
    assert torch.equal(again.generate(z, g.style_code(ref[:2]), 0), g.generate(z, g.style_code(ref[:2]), 0))


def test_gram_checkpoint_drives_workflow_generate(data, gram_ckpt, tmp_path):
    from workflow import generate
    refs = []
    for i in range(2):
        p = tmp_path / f"ref{i}.png"
        Image.fromarray(np.full((16, 16, 3), 60 * i + 40, np.uint8)).save(p)
        refs.append(str(p))
    out = tmp_path / "ref.png"
    assert generate.main(["reference", "--blendgan", str(gram_ckpt), "--style", *refs,
                          "--faces", "2", "--out", str(out)]) == 0
    assert out.exists()


# ------------------------------------------------------------------ Figure 4 and the metric
@pytest.fixture(scope="module")
def two_generators(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig4")
    lmdb_path, truth = make_lmdb(root / "style", n=24, size=32)
    return {"root": root, "lmdb": lmdb_path, "truth": write_truth(root / "truth.json", truth),
            "learned": tiny_checkpoints(root / "models")["blendgan"],
            "gram": tiny_gram_checkpoint(root / "models")}


def test_figure4_from_two_tiny_checkpoints(two_generators):
    t, out = two_generators, two_generators["root"] / "ablation.png"
    assert figures.main(["ablation", "--blendgan", t["learned"], "--gram-blendgan", t["gram"],
                         "--style-lmdb", str(t["lmdb"]), "--truth", str(t["truth"]),
                         "--faces", "2", "--styles", "3", "--cell", "20", "--out", str(out)]) == 0
    # header row + 2 faces; (natural + 3 references) x 2 panels + the gap column
    assert Image.open(out).size == (2 + 9 * 22, 14 + 2 + 3 * 22)
    with pytest.raises(SystemExit, match="--gram-blendgan"):
        figures.main(["ablation", "--blendgan", t["learned"], "--style-lmdb", str(t["lmdb"]),
                      "--out", str(out)])
    with pytest.raises(SystemExit, match="Gram-embedding"):  # the learned one passed as Gram
        figures.main(["ablation", "--blendgan", t["learned"], "--gram-blendgan", t["learned"],
                      "--style-lmdb", str(t["lmdb"]), "--out", str(out)])


def test_references_of_distinct_identities(two_generators):
    t = two_generators
    _, names = ablation.pick_references(t["lmdb"], 16, 4, 0, t["truth"])
    truth = json.loads(Path(t["truth"]).read_text())["datasets"]["style"]
    assert len({truth[n]["identity"] for n in names}) == 4  # make_lmdb has 4 identities


def test_leakage_scores_known_answers():
    rng = np.random.default_rng(0)
    F, R, d = 6, 5, 32
    nat, ref = rng.normal(size=(F, d)), rng.normal(size=(R, d))
    # Full leakage: every output is its reference's content (plus a little noise).
    leak = ablation.leakage_scores(nat, ref, ref[None].repeat(F, 0) + 0.05 * rng.normal(size=(F, R, d)))
    assert leak["reference_retrieval"] == 1.0 and leak["closer_to_reference"] == 1.0
    assert leak["reference_gap"] > 0.9 and abs(leak["natural_gap"]) < 0.2
    # No leakage: every output is its natural face's content.
    keep = ablation.leakage_scores(nat, ref, nat[:, None].repeat(R, 1) + 0.05 * rng.normal(size=(F, R, d)))
    assert keep["natural_retrieval"] == 1.0 and keep["closer_to_reference"] == 0.0
    assert keep["natural_gap"] > 0.9 and abs(keep["reference_gap"]) < 0.2
    assert keep["chance_reference_retrieval"] == pytest.approx(1 / R) and keep["n_outputs"] == F * R
    # Half-way blends: both gaps positive, each below its pure case.
    mix = ablation.leakage_scores(nat, ref, 0.5 * (nat[:, None] + ref[None]))
    assert 0 < mix["reference_gap"] < leak["reference_gap"]
    assert 0 < mix["natural_gap"] < keep["natural_gap"]


def test_ablation_metric_cli(two_generators):
    t, out = two_generators, two_generators["root"] / "abl.json"
    assert ablation.main(["--blendgan", t["learned"], "--gram-blendgan", t["gram"],
                          "--style-lmdb", str(t["lmdb"]), "--truth", str(t["truth"]),
                          "--faces", "3", "--references", "3", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["computed"] and set(rec["results"]) == {"gram", "learned"}
    assert rec["results"]["gram"]["style_input_dim"] > rec["results"]["learned"]["style_input_dim"]
    assert rec["settings"]["indicator"] == 0 and rec["inputs"]["gram_blendgan"] == t["gram"]
    assert all(r["reference_sensitivity"] >= 0 for r in rec["results"].values())
    assert ablation.main(["--blendgan", t["learned"], "--gram-blendgan", "none",
                          "--style-lmdb", str(t["lmdb"]), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["computed"] is False and "Gram-embedding" in rec["reason"]


def test_gram_trainer_from_a_stylegan2_checkpoint(data, tmp_path):
    """Paper path: G and D_face from rosinality weights; only the wide Gram layer starts random."""
    import argparse

    from models.stylegan2 import Discriminator, Generator
    torch.manual_seed(0)
    sg = Generator(16, 16, n_mlp=2, channel_base=64, channel_max=16)
    d = Discriminator(16, channel_base=64, channel_max=16)
    torch.save({"g": sg.state_dict(), "g_ema": sg.state_dict(), "d": d.state_dict(),
                "latent_avg": sg.mean_latent(64)[0], "args": argparse.Namespace(size=16)},
               tmp_path / "sg2.pt")
    cfg = from_dict(bg.BlendGANConfig, gram_cfg(stylegan2_checkpoint=str(tmp_path / "sg2.pt")))
    t = bg.BlendGANTrainer.from_paths(cfg, CPU, tmp_path / "out", str(data["face"]),
                                      str(data["style"]), str(data["encoder"]))
    dim = t.encoder.gram.dim
    for g in (t.g, t.g_ema):
        assert g.embedding[1].weight.shape == (16, dim)
        assert torch.equal(g.embedding[2].weight, sg.style[2].weight)  # copied (method 4.2)
        assert torch.equal(g.conv1.conv.weight, sg.conv1.conv.weight)  # face branch loaded
    assert t.ds[2].l_style.weight.shape == (t.ds[2].final_channels, dim)
    batch = t.get_batch(0)
    assert batch["z_style"].shape == (cfg.loop.batch, dim)
    assert torch.equal(batch["z_style"], batch["z_real"])  # reference-guided only
