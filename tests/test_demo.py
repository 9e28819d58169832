"""Tests of the offline demo data (workflow/demo): determinism, landmarks, planted defects, styles."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workflow.demo import defects as D
from workflow.demo.generate import draw_labels, generate
from workflow.demo.identity import qsize_px, qsize_units, rng_for, sample_identity
from workflow.demo.styles import STYLE_NAMES, Scene, render

SMALL = dict(seed=3, n_style=60, n_face=40, canvas=448, identities=20)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    truth = generate(str(out), workers=2, **SMALL)
    return out, truth


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _open(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def test_cli_help():
    r = subprocess.run([sys.executable, "-m", "workflow.demo.generate", "--help"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0 and "--n-style" in r.stdout and "--workers" in r.stdout


def test_deterministic_for_any_worker_count(demo, tmp_path):
    out, _ = demo
    other = tmp_path / "again"
    generate(str(other), workers=1, **SMALL)
    assert _digest(out) == _digest(other)


def test_layout_and_truth_schema(demo):
    out, truth = demo
    assert truth["seed"] == SMALL["seed"] and truth["styles"] == STYLE_NAMES and len(STYLE_NAMES) >= 8
    for ds, n in (("style", SMALL["n_style"]), ("face", SMALL["n_face"])):
        recs = truth["datasets"][ds]
        assert len(recs) == n
        assert sorted(os.listdir(out / ds / "raw")) == sorted(recs)  # no temporary files left
        for name, r in recs.items():
            assert name.startswith(f"{ds}_") and name[-4:] in (".png", ".jpg")
            for key in ("identity", "style", "landmarks", "defect", "duplicate_of", "mode", "pose"):
                assert key in r
            assert r["defect"] in (None, *D.DEFECTS)
            if ds == "face" and r["style"] is not None:
                assert r["style"] == "photo"
            if ds == "style" and r["style"] is not None:
                assert r["style"] in STYLE_NAMES


def test_planted_rates(demo):
    _, truth = demo
    for ds, n in (("style", SMALL["n_style"]), ("face", SMALL["n_face"])):
        counts = Counter(r["defect"] for r in truth["datasets"][ds].values())
        expected = D.planted_counts(ds, n)
        assert truth["rates"][ds] == expected
        assert all(counts[d] == c for d, c in expected.items())
        assert all(c >= 1 for c in expected.values())  # n >= 40: every kind planted
    # at the default size the rates are the suggested ones
    full = D.planted_counts("style", 800)
    assert full["no_face"] == 24 and full["duplicate_exact"] == 16 and full["corrupt"] == 8
    assert full["oversized"] == 1 and D.planted_counts("face", 400)["no_face"] == 6


def test_landmark_file_is_what_a_detector_sees(demo):
    out, truth = demo
    for ds in ("style", "face"):
        lms = json.loads((out / ds / "landmarks.json").read_text())
        for name, r in truth["datasets"][ds].items():
            if r["defect"] in ("no_face", "corrupt", "truncated"):
                assert name not in lms
                continue
            e = lms[name]
            assert set(e["landmarks"]) == {"eye_left", "eye_right", "mouth_left", "mouth_right"}
            assert e["landmarks"] == r["landmarks"]
            assert e["n_faces"] == (2 if r["defect"] == "two_faces" else 1) == len(e["boxes"])
            areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in e["boxes"]]
            assert areas == sorted(areas, reverse=True)
            lm = e["landmarks"]
            assert lm["eye_left"][0] < lm["eye_right"][0] and lm["mouth_left"][0] < lm["mouth_right"][0]
            x0, y0, x1, y1 = e["boxes"][0]
            for x, y in lm.values():
                assert x0 <= x <= x1 and y0 <= y <= y1


def test_face_sizes(demo):
    _, truth = demo
    for ds in ("style", "face"):
        for name, r in truth["datasets"][ds].items():
            if r["landmarks"] is None:
                continue
            q = qsize_px(r["landmarks"])
            w, h = r["size"]
            if r["defect"] is None:
                assert 180 <= q <= 420, (name, q)
                for x, y in r["landmarks"].values():
                    assert 0 <= x < w and 0 <= y < h
            elif r["defect"] == "tiny_face":
                assert q < 100, (name, q)
            elif r["defect"] == "blur":
                assert r["blur_sigma"] >= 4


def test_files_decode_except_corrupt_and_truncated(demo):
    out, truth = demo
    modes = Counter()
    for ds in ("style", "face"):
        for name, r in truth["datasets"][ds].items():
            path = out / ds / "raw" / name
            if r["defect"] in ("corrupt", "truncated"):
                with pytest.raises(Exception):
                    with _open(path) as im:
                        im.load()
                continue
            with _open(path) as im:
                assert im.mode == r["mode"], name
                assert list(im.size) == r["size"]
                if r["defect"] == "oversized":
                    assert im.width * im.height > 50_000_000
                    assert path.stat().st_size < 2_000_000
                    continue
                im.load()
                im.convert("RGB")
            modes[r["mode"]] += r["defect"] is None
    assert {"RGBA", "L", "CMYK", "I;16", "P"} <= {m for m, c in modes.items() if c}


def test_duplicates(demo):
    out, truth = demo
    for ds in ("style", "face"):
        recs = truth["datasets"][ds]
        for name, r in recs.items():
            if r["defect"] not in ("duplicate_exact", "duplicate_near"):
                continue
            src = r["duplicate_of"]
            assert recs[src]["defect"] is None and r["identity"] == recs[src]["identity"]
            a, b = (out / ds / "raw" / name).read_bytes(), (out / ds / "raw" / src).read_bytes()
            if r["defect"] == "duplicate_exact":
                assert a == b
            else:
                with _open(out / ds / "raw" / name) as im, _open(out / ds / "raw" / src) as im0:
                    assert im.format == "JPEG" and im.width < im0.width and im.height < im0.height
                    assert 0.55 < im.width / im0.width < 0.9


def _hist(img: np.ndarray) -> np.ndarray:
    """4x4x4 RGB histogram + a histogram of grey gradients: a deliberately simple descriptor."""
    q = (img // 64).reshape(-1, 3).astype(int)
    h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(float)
    g = img.mean(2)
    grad = np.abs(np.diff(g, axis=1)).ravel()
    gh = np.histogram(np.clip(grad, 0, 63), bins=8, range=(0, 64))[0].astype(float)
    return np.concatenate([h / h.sum(), gh / gh.sum()])


def _loo_1nn(feats, labels):
    f = np.asarray(feats)
    d = ((f[:, None] - f[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(np.asarray(labels)[d.argmin(1)] == np.asarray(labels)))


def test_styles_distinguishable_identity_not():
    """A colour-histogram 1-NN tells styles apart; the same features cannot tell identities apart."""
    feats, styles, idents = [], [], []
    for s_i, style in enumerate(STYLE_NAMES):
        for k in range(4):
            for rep in range(2):
                rng = rng_for(11, s_i, k, rep)
                ident = sample_identity(11, k)
                pose = {"x": float(rng.uniform(90, 134)), "y": float(rng.uniform(90, 134)),
                        "scale": float(rng.uniform(0.5, 0.8) * 224 / qsize_units(ident)),
                        "angle_deg": float(rng.uniform(-30, 30))}
                img = render(style, Scene(224, 224, [(ident, pose)], [ident]), rng)
                feats.append(_hist(img))
                styles.append(style)
                idents.append(k)
    style_acc, ident_acc = _loo_1nn(feats, styles), _loo_1nn(feats, idents)
    assert style_acc > 0.8, style_acc          # chance: 1/9
    assert ident_acc < 0.55, ident_acc         # chance: 1/4


def test_style_and_identity_drawn_independently():
    pairs = [draw_labels(rng_for(0, 1, i), 0, "style", i, 120) for i in range(800)]
    # no (identity, style) pair twice: re-posed copies of one drawing would align to duplicates
    assert len({(style, ids[0]) for style, ids in pairs}) == len(pairs)
    faces = [draw_labels(rng_for(0, 2, i), 0, "face", i, 120)[1][0] for i in range(400)]
    assert len(set(faces)) == 400
    by_ident = {}
    for style, ids in pairs:
        by_ident.setdefault(ids[0], set()).add(style)
    assert len(by_ident) > 100
    assert np.mean([len(s) for s in by_ident.values()]) > 3  # each identity in several styles
    # knowing the style does not reveal the identity: best guess per style is near chance
    hits = 0
    for style in STYLE_NAMES:
        ids = [p[1][0] for p in pairs if p[0] == style]
        hits += Counter(ids).most_common(1)[0][1]
    assert hits / len(pairs) < 0.06


# ------------------------------------------------------------------ out-of-distribution reference
def test_ood_reference_is_new_style_and_leaves_datasets_alone(demo):
    """The one-shot reference (workflow.demo.ood) is written into the demo folder without
    touching a dataset byte, in a style and identity neither dataset holds, and is nearer to
    other renderings of its own style than to any of the nine dataset styles."""
    from workflow.demo.ood import OOD_STYLES, render_reference, write_reference
    out, truth = demo
    before = _digest(out / "style") | _digest(out / "face")
    rec = write_reference(str(out / "ood"), seed=SMALL["seed"], size=128)
    assert (_digest(out / "style") | _digest(out / "face")) == before
    ref = np.asarray(Image.open(out / "ood" / "reference.png"))
    assert ref.shape == (128, 128, 3)
    saved = json.loads((out / "ood" / "reference.json").read_text())
    assert saved["style"] == rec["style"] not in truth["styles"]
    assert set(OOD_STYLES).isdisjoint(STYLE_NAMES)
    used = {r["identity"] for d in truth["datasets"].values() for r in d.values()}
    assert rec["identity"] not in used
    again = render_reference(SMALL["seed"], size=128)[0]
    assert np.array_equal(np.asarray(again), ref)  # deterministic
    # aligned dataset-style crops vs the OOD style: 1-NN on colour histograms keeps them apart
    from workflow.dataset.align import align_face
    feats, labels = [], []
    for name, r in truth["datasets"]["style"].items():
        if r["defect"] is None and r["mode"] == "RGB" and len(feats) < 40:
            crop = align_face(_open(out / "style" / "raw" / name), r["landmarks"], size=128)
            feats.append(_hist(np.asarray(crop)))
            labels.append(r["style"])
    for seed in (SMALL["seed"], 101, 202):
        feats.append(_hist(np.asarray(render_reference(seed, size=128)[0])))
        labels.append("ood")
    f = np.asarray(feats)
    d = ((f[-3:, None] - f[None]) ** 2).sum(-1)
    d[np.arange(3), np.arange(len(f) - 3, len(f))] = np.inf
    assert all(labels[j] == "ood" for j in d.argmin(1))
