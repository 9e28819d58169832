"""FFHQ alignment geometry, samplers and mode handling (method 2.3, 7.2)."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from workflow.dataset.align import align_face, align_with_record, ffhq_quad, padded_fraction, source_to_output
from workflow.dataset.landmarks import POINT_NAMES, points_from_68


def psnr(a, b):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def textured_face(width=640, height=480, landmarks=None, seed=0):
    """A noisy canvas with a sharp pattern so that resampling errors are visible."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for i in range(0, width, 23):
        draw.line([(i, 0), (i + 60, height)], fill=(255, 255, 255), width=2)
    return img


LANDMARKS = {"eye_left": [280.0, 200.0], "eye_right": [350.0, 205.0],
             "mouth_left": [288.0, 280.0], "mouth_right": [342.0, 283.0]}


def test_quad_is_the_ffhq_square():
    quad = ffhq_quad([40, 50], [60, 50], [42, 70], [58, 70])
    c = quad.corners
    # Upright face: the quad is axis aligned, centred 10% below the eyes towards the mouth.
    assert np.allclose(c.mean(0), [50, 52])
    side = np.linalg.norm(c[3] - c[0])
    assert np.isclose(side, quad.qsize) and np.isclose(np.linalg.norm(c[1] - c[0]), quad.qsize)
    assert np.isclose(quad.qsize, 2 * max(2 * 20, 1.8 * 20))
    assert np.allclose(c[0], [50 - 40, 52 - 40])  # UL corner


def test_landmarks_land_where_the_quad_says():
    """Dots drawn at the landmarks appear in the crop where source_to_output puts them."""
    size = 256
    img = Image.new("RGB", (640, 480), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    for (x, y), col in zip((LANDMARKS[k] for k in POINT_NAMES), colours):
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=col)
    crop, rec = align_with_record(img, LANDMARKS, size, "reference")
    expected = source_to_output([LANDMARKS[k] for k in POINT_NAMES], np.array(rec["quad"]), size)
    arr = np.asarray(crop, float)
    for col, exp in zip(colours, expected):
        weight = np.exp(-np.sum((arr - np.array(col)) ** 2, axis=2) / 2000.0)
        weight[weight < 0.3] = 0
        ys, xs = np.nonzero(weight)
        centroid = np.array([np.average(xs, weights=weight[ys, xs]), np.average(ys, weights=weight[ys, xs])])
        # Pixel centres: the landmark at source pixel centre maps to output coordinate - 0.5.
        assert np.linalg.norm(centroid + 0.5 - exp) < 0.01 * size, (col, centroid, exp)


@pytest.mark.parametrize("size", [256, 512])
def test_fast_sampler_matches_reference(size):
    img = textured_face()
    ref, rec_ref = align_with_record(img, LANDMARKS, size, "reference")
    fast, rec_fast = align_with_record(img, LANDMARKS, size, "fast")
    assert rec_ref == rec_fast
    assert ref.size == fast.size == (size, size)
    assert psnr(ref, fast) > 35.0


def test_padding_recorded_and_matched_near_the_border():
    img = textured_face()
    lm = {k: [v[0] - 250, v[1] - 150] for k, v in LANDMARKS.items()}  # face at the top-left corner
    ref, rec = align_with_record(img, lm, 128, "reference")
    fast, _ = align_with_record(img, lm, 128, "fast")
    assert rec["padded_fraction"] > 0.2
    assert psnr(ref, fast) > 35.0
    assert padded_fraction(np.array(rec["quad"]), 640, 480) == pytest.approx(rec["padded_fraction"], abs=1e-3)


def test_large_source_is_shrunk_first():
    img = textured_face(2400, 1800)
    lm = {k: [v[0] * 3.75, v[1] * 3.75] for k, v in LANDMARKS.items()}
    ref, rec = align_with_record(img, lm, 128, "reference")
    fast, _ = align_with_record(img, lm, 128, "fast")
    assert rec["qsize"] > 4 * 128  # the shrink branch ran
    assert psnr(ref, fast) > 35.0


@pytest.mark.parametrize("mode", ["RGBA", "L", "CMYK", "P", "I;16", "LA"])
def test_any_mode_gives_rgb(mode):
    rgb = textured_face()
    if mode == "I;16":
        src = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257))
        assert src.mode.startswith("I;16")
    else:
        src = rgb.convert(mode)
    out = align_face(src, LANDMARKS, size=64)
    assert out.mode == "RGB" and out.size == (64, 64)
    if mode in ("L", "I;16", "LA"):
        grey = np.asarray(align_face(rgb.convert("L"), LANDMARKS, size=64), float)
        assert np.abs(np.asarray(out, float) - grey).mean() < 1.0  # 16-bit is rescaled, not clipped


def test_aligned_backend_keeps_an_aligned_image(tmp_path):
    from workflow.dataset.align import align_folder
    from workflow.dataset.landmarks import build_landmark_file

    raw = tmp_path / "raw"
    raw.mkdir()
    img = textured_face(256, 256)
    img.save(raw / "00000.png")
    entry = build_landmark_file(raw, tmp_path / "lm.json", backend="aligned")["00000.png"]
    _, rec = align_with_record(img, entry["landmarks"], 256, "reference")
    # The canonical landmarks describe the whole image as the FFHQ quad...
    assert np.allclose(rec["quad"], [[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]], atol=1e-6)
    assert rec["padded_fraction"] == 0.0
    # ...and the folder stage keeps the pixels instead of re-sampling them.
    recs = align_folder(raw, tmp_path / "lm.json", tmp_path / "out", tmp_path / "r.jsonl", size=256)
    assert recs[0]["status"] == "aligned"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "00000.png")), np.asarray(img))


def test_68_points_accepted():
    pts = np.zeros((68, 2))
    pts[36:42] = LANDMARKS["eye_left"]
    pts[42:48] = LANDMARKS["eye_right"]
    pts[48] = LANDMARKS["mouth_left"]
    pts[54] = LANDMARKS["mouth_right"]
    assert points_from_68(pts) == LANDMARKS
    img = textured_face()
    assert np.array_equal(np.asarray(align_face(img, pts, 64)), np.asarray(align_face(img, LANDMARKS, 64)))


def test_bad_landmarks_raise():
    with pytest.raises(ValueError):
        align_face(textured_face(), {"eye_left": [1, 2]}, 64)
    with pytest.raises(ValueError):
        align_face(textured_face(), np.zeros((5, 2)), 64)


def test_align_folder_resumes_after_a_kill(tmp_path):
    import json

    from workflow.dataset import align as align_mod

    raw = tmp_path / "raw"
    raw.mkdir()
    lm = {}
    for i in range(6):
        textured_face(320, 240, seed=i).save(raw / f"{i}.png")
        lm[f"{i}.png"] = {"landmarks": {k: [v[0] / 2, v[1] / 2] for k, v in LANDMARKS.items()}}
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (tmp_path / "lm.json").write_text(json.dumps(lm))
    args = (raw, tmp_path / "lm.json")
    full = align_mod.align_folder(*args, tmp_path / "a", tmp_path / "a.jsonl", size=64)
    # A killed run leaves a partial log: two finished records and a line cut in the middle.
    out = tmp_path / "b"
    out.mkdir()
    partial = tmp_path / "b.jsonl.partial"
    partial.write_text("".join(json.dumps(r) + "\n" for r in full[:2]) + '{"name": "2.pn')
    for r in full[:2]:
        if r["aligned"]:
            (out / r["aligned"]).write_bytes((tmp_path / "a" / r["aligned"]).read_bytes())
    calls = []
    original = align_mod._align_one
    align_mod._align_one = lambda task: calls.append(task[0]) or original(task)
    try:
        resumed = align_mod.align_folder(*args, out, tmp_path / "b.jsonl", size=64)
    finally:
        align_mod._align_one = original
    assert sorted(calls) == sorted(r["name"] for r in full[2:])  # finished images are not redone
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert resumed == full and not partial.exists()
    assert next(r for r in full if r["name"] == "broken.jpg")["reason"] == "decode_error"
