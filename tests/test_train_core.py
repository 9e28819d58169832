"""Training-loop core: configs, sampler, views, snapshots (corruption), resume, 2-process DDP."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import encoder_cfg, loop, make_lmdb, torchrun_two, write_yaml  # noqa: E402

from models.checkpoint import load_checkpoint, load_style_encoder  # noqa: E402
from models.train import style_encoder as se  # noqa: E402
from models.train.augment import AffineAugment  # noqa: E402
from models.train.config import LoopConfig, from_dict, load_config  # noqa: E402
from models.train.seeding import step_generator  # noqa: E402
from models.train.snapshots import latest_valid_snapshot, write_snapshot  # noqa: E402
from models.train.stats import read_stats  # noqa: E402
from models.images import LMDBImages, to_unit  # noqa: E402
from models.train.data import StepBatchSampler, StepLoader, step_indices  # noqa: E402
from models.train.losses import nt_xent  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def style_lmdb(tmp_path_factory):
    path, _ = make_lmdb(tmp_path_factory.mktemp("style"), n=24, size=16)
    return path


# ------------------------------------------------------------------------------ config
def test_config_rejects_unknown_keys_and_coerces(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        from_dict(se.StyleEncoderConfig, {"resolutoin": 64})
    with pytest.raises(ValueError, match="loop.*unknown key"):
        from_dict(se.StyleEncoderConfig, {"loop": {"bacth": 8}})
    cfg = load_config(se.StyleEncoderConfig, write_yaml(tmp_path / "c.yaml", {"betas": [0, 0.9]}),
                      overrides=["loop.batch=16", "temperature=0.5"])
    assert cfg.betas == (0.0, 0.9) and cfg.loop.batch == 16 and cfg.temperature == 0.5
    assert isinstance(cfg.loop, LoopConfig)
    with pytest.raises(Exception):
        cfg.temperature = 1.0  # frozen
    # Paper scale is the defaults (method 4.1).
    paper = se.StyleEncoderConfig()
    assert (paper.loop.batch, paper.loop.total_images, paper.temperature) == (256, 128_000_000, 0.2)


# ------------------------------------------------------------------------------ data
def test_step_sampler_is_a_deterministic_epoch_stream():
    a = [step_indices(10, 4, 0, s) for s in range(5)]
    assert a == [step_indices(10, 4, 0, s) for s in range(5)]
    flat = sum(a, [])
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    # Ranks get contiguous, disjoint shares of the global batch.
    r0 = next(iter(StepBatchSampler(10, 4, 0, 3, rank=0, world=2)))
    r1 = next(iter(StepBatchSampler(10, 4, 0, 3, rank=1, world=2)))
    assert r0 + r1 == step_indices(10, 4, 0, 3)


def test_lmdb_reader_resizes_and_names(style_lmdb):
    ds = LMDBImages(style_lmdb, 8)
    x = ds[0]
    assert x.shape == (3, 8, 8) and -1 <= x.min() and x.max() <= 1
    assert ds.names[0] == "img_000.png" and len(ds) == 24


@pytest.mark.parametrize("resolution", [8, 16])  # resized, and as stored
def test_uint8_loading_gives_the_same_values_after_to_unit(style_lmdb, resolution):
    ds = LMDBImages(style_lmdb, resolution, indices=[3, 5])
    raw = ds.as_uint8()
    assert raw.indices == ds.indices and not ds.uint8  # a view; the float dataset is unchanged
    for i in range(len(ds)):
        assert raw[i].dtype == torch.uint8
        assert torch.equal(to_unit(raw[i]), ds[i])


def test_an_undecodable_lmdb_image_is_named(tmp_path):
    import lmdb
    path, _ = make_lmdb(tmp_path, n=4, size=8)
    with lmdb.open(str(path), subdir=True) as env:
        with env.begin(write=True) as txn:
            meta = json.loads(txn.get(b"metadata"))
            key = f"{max(meta['sizes'])}-{str(2).zfill(meta.get('index_width', 5))}"  # = 8
            assert txn.get(key.encode()) is not None
            txn.put(key.encode(), b"not an image")
    ds = LMDBImages(path, 8)
    for view in (ds, ds.as_uint8()):
        with pytest.raises(ValueError, match=f"{path}: key {key}: cannot decode the image"):
            view[2]
    assert view[1].dtype == torch.uint8  # the other images still load


def test_worker_processes_load_the_same_uint8_batches(style_lmdb):
    """What the trainers run with loop.workers > 0: forked workers reopen the LMDB."""
    ds = LMDBImages(style_lmdb, 8).as_uint8()
    inline = StepLoader(ds, 4, seed=3, workers=0, pin_memory=False)
    forked = StepLoader(ds, 4, seed=3, workers=2, pin_memory=False)
    for step in (0, 1, 2, 7):  # 7: out of order, the loader restarts its iterator there
        a, b = inline.get(step), forked.get(step)
        assert a.dtype == b.dtype == torch.uint8 and torch.equal(a, b)


def test_affine_views_are_identity_without_randomness():
    aug = AffineAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, rotate=0.0, translate=0.0)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    y = aug.apply(x, aug.params(3, torch.Generator().manual_seed(0)))
    assert torch.allclose(x, y, atol=1e-5)
    views = AffineAugment().apply(x, AffineAugment().params(3, step_generator(0, 1)))
    assert views.shape == x.shape and not torch.allclose(views, x)


def test_nt_xent_prefers_matching_pairs():
    z = torch.randn(8, 16)
    assert nt_xent(z, z + 0.01 * torch.randn(8, 16)) < nt_xent(z, torch.randn(8, 16))


# ------------------------------------------------------------------------------ snapshots
def test_corrupt_snapshot_is_detected_and_previous_used(tmp_path):
    from models.stylegan2 import Discriminator
    d = Discriminator(8, channel_base=16, channel_max=4)
    for images in (8, 16, 24):
        with torch.no_grad():
            d.final_linear[1].bias.fill_(images)
        write_snapshot(tmp_path, images, {"d": d}, {}, {"step": images // 8}, keep=2)
    snaps = sorted(tmp_path.glob("snapshot-*.pt"))
    assert [p.name for p in snaps] == ["snapshot-000000000016.pt", "snapshot-000000000024.pt"]
    # Flip bytes in the newest: its checksum no longer matches.
    blob = bytearray(snaps[-1].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    snaps[-1].write_bytes(bytes(blob))
    messages = []
    path, payload = latest_valid_snapshot(tmp_path, log=messages.append)
    assert path == snaps[0] and payload["extra"]["step"] == 2
    assert any("checksum mismatch" in msg for msg in messages)
    # A truncated file with a stale sidecar, and a file without a sidecar, are skipped too.
    snaps[0].write_bytes(snaps[0].read_bytes()[:100])
    assert latest_valid_snapshot(tmp_path, log=messages.append) is None


# ------------------------------------------------------------------------------ resume
def _params(path):
    return load_checkpoint(path, build=False)["models"]["style_encoder"]["state_dict"]


def test_stop_and_resume_equals_uninterrupted(tmp_path, style_lmdb):
    cfg = write_yaml(tmp_path / "c.yaml", encoder_cfg(loop=loop(total_images=24, snapshot_every=0)))
    base = ["--config", str(cfg), "--data", str(style_lmdb)]
    full = se.main(base + ["--out", str(tmp_path / "full")])
    assert se.main(base + ["--out", str(tmp_path / "cut"), "--stop-after-images", "8"]) is None
    assert not (tmp_path / "cut" / "final.pt").exists()
    resumed = se.main(base + ["--out", str(tmp_path / "cut")])
    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The stats log of the resumed run has each logged image count once.
    imgs = [r["images"] for r in read_stats(tmp_path / "cut" / "stats.jsonl") if "E_main/nt_xent" in r]
    assert imgs == sorted(set(imgs)) == [8, 16, 24]
    enc = load_style_encoder(resumed)
    assert enc(torch.rand(2, 3, 20, 24) * 2 - 1).shape == (2, 16)
    assert not torch.equal(enc.style_cov, torch.eye(16))  # z_s statistics were stored


def test_stats_report_the_time_spent_waiting_for_data(tmp_path, style_lmdb, monkeypatch):
    from models.train import data
    slow_get = data.StepLoader.get

    def starving(self, step):
        time.sleep(0.05)
        return slow_get(self, step)

    monkeypatch.setattr(data.StepLoader, "get", starving)
    cfg = write_yaml(tmp_path / "c.yaml", encoder_cfg(loop=loop(total_images=16, snapshot_every=0)))
    se.main(["--config", str(cfg), "--data", str(style_lmdb), "--out", str(tmp_path / "o")])
    rows = [r for r in read_stats(tmp_path / "o" / "stats.jsonl") if "sec_per_iter" in r]
    assert len(rows) == 2
    for r in rows:
        assert 0.05 <= r["sec_data_per_iter"] <= r["sec_per_iter"]


# ------------------------------------------------------------------------------ DDP

def test_two_process_ddp_equals_one_process(tmp_path, style_lmdb):
    """Same global batch (8), one process vs two gloo processes: same parameters after 2
    updates (negatives come from the global batch, gradients are averaged)."""
    cfg = write_yaml(tmp_path / "c.yaml", encoder_cfg(loop=loop(batch=8, total_images=16)))
    args = ["--config", str(cfg), "--data", str(style_lmdb)]
    single = se.main(args + ["--out", str(tmp_path / "one")])
    proc = torchrun_two("models.train.style_encoder", [*args, "--out", str(tmp_path / "two")], timeout=180)
    assert "2 process(es)" in proc.stdout
    # Trained weights: the last snapshots (the final checkpoint folds in a whitening, which
    # amplifies float noise in the training set's near-empty directions).
    a, b = (latest_valid_snapshot(tmp_path / run / "snapshots")[1]["models"]["style_encoder"]
            ["state_dict"] for run in ("one", "two"))
    moved = 0
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), (k, (a[k] - b[k]).abs().max())
        moved += int(k.startswith("mlp."))
    assert moved
    # Final, whitened encoders: the same codes up to that amplified noise.
    x = torch.stack([LMDBImages(style_lmdb, 16)[i] for i in range(24)])
    with torch.no_grad():
        za, zb = load_style_encoder(single)(x), load_style_encoder(tmp_path / "two" / "final.pt")(x)
    assert (za - zb).norm(dim=1).max() < 1e-2 * za.norm(dim=1).mean(), (za - zb).abs().max()
