"""Offline demo data: procedural portraits standing in for an Artstation scrape and for FFHQ.

    python -m workflow.demo.generate --out DIR [--seed 0] [--n-style 800] [--n-face 400]
                                     [--canvas 448] [--identities 120] [--workers 2]

writes DIR/style/raw/style_NNNNN.{png,jpg} (random identity x one of nine art styles, random pose:
position, scale, in-plane rotation in [-30, 30] degrees), DIR/face/raw/face_NNNNN.* (photo-like
look), DIR/{style,face}/landmarks.json in the method 2.1 schema as a detector would report them (no
entry where no face can be found: no_face, corrupt, truncated; the largest face and all boxes for
two faces), and DIR/truth.json with identity, style, exact landmarks, pose, PIL mode and planted
defect of every file. The pipeline must never read truth.json. Every image has its own random
stream derived from (seed, dataset, index), so the output is byte-identical for any --workers.

Traps a reader must handle (planted on purpose): odd PIL modes on clean images (RGBA, L, CMYK JPEG,
16-bit 'I;16' PNG holding grey * 257, which Pillow's convert("RGB") clips to white: scale by 1/257
first; palette 'P'); one 12000x9000 palette PNG per dataset (108 MP: Pillow only warns below
179 MP, so the pipeline's own pixel cap must reject it); corrupt files behind real PNG/JPEG
signatures; JPEG/PNG cut at 40-70 %.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import get_context

import numpy as np
from scipy import ndimage

from basics.files import atomic_write, write_json_atomic
from workflow.dataset.pool import die_with_parent

from . import defects as D
from .identity import face_box, landmarks, qsize_units, rng_for, sample_identity
from .styles import PROP, CLOTHES, HAIR_BACK, STYLE_NAMES, Scene, render

CLEAN_QSIZE = (0.42, 0.90)    # of the canvas: 188..403 source px at canvas 448
TINY_QSIZE = (0.08, 0.20)     # 36..90 px: below the resolution threshold
TWO_QSIZE = (0.30, 0.42)


def _name(dataset, index, fmt):
    return f"{dataset}_{index:05d}{D.EXT[fmt]}"


def _canvas_size(rng, canvas):
    aspect = [1.0, 1.0, 1.25, 0.8][int(rng.integers(4))]  # square, portrait, landscape
    return canvas, int(round(canvas * aspect))


def _pose(rng, ident, w, h, q_range, canvas, angle=30.0, centre=((0.3, 0.7), (0.35, 0.65))):
    """A pose whose qsize falls in q_range * canvas and whose four landmarks lie inside the image."""
    for attempt in range(50):
        q = rng.uniform(*q_range) * canvas * (0.97 ** attempt)
        pose = {"x": float(rng.uniform(*centre[0]) * w), "y": float(rng.uniform(*centre[1]) * h),
                "scale": float(q / qsize_units(ident)), "angle_deg": float(rng.uniform(-angle, angle))}
        pts = np.array(list(landmarks(ident, pose).values()))
        if (pts >= 4).all() and (pts[:, 0] <= w - 5).all() and (pts[:, 1] <= h - 5).all():
            return pose
    raise RuntimeError("could not place a face")  # unreachable with the ranges above


def _props(rng, w, h):
    """Still-life shapes for images without a face."""
    out = []
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, 0.25) * w, rng.uniform(0.05, 0.25) * h
        k = int(rng.integers(3, 9)) if rng.random() < 0.5 else 40
        t = np.linspace(0, 2 * math.pi, k, endpoint=False) + rng.uniform(0, math.pi)
        role = (CLOTHES, HAIR_BACK, PROP)[int(rng.integers(3))]
        out.append((role, np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)))
    return out


def _lm_record(faces):
    """method 2.1 landmark entry for a list of (ident, pose): largest face first."""
    boxes = [face_box(i, p) for i, p in faces]
    order = sorted(range(len(faces)), key=lambda k: -(boxes[k][2] - boxes[k][0]) * (boxes[k][3] - boxes[k][1]))
    i, p = faces[order[0]]
    return {"landmarks": landmarks(i, p), "n_faces": len(faces), "boxes": [boxes[k] for k in order]}, order


def draw_labels(rng, seed, dataset, index, identities):
    """Style and identities of one image.

    Each (identity, style) pair is used at most once per pass over all pairs: two poses of one
    identity drawn in one style align to near-identical crops, which would be true duplicates.
    The face set (one photo look) gives every image its own identity, numbered after the shared
    pool, for the same reason.
    """
    if dataset == "face":
        style, first = "photo", identities + index
    else:
        pairs = len(STYLE_NAMES) * identities
        order = rng_for(seed, 4049, index // pairs).permutation(pairs)
        pair = int(order[index % pairs])
        style, first = STYLE_NAMES[pair % len(STYLE_NAMES)], pair // len(STYLE_NAMES)
    second = int(rng.integers(identities))  # the second face of two-face images
    if second == first:
        second = (first + 1) % identities
    return style, [first, second]


def make_image(task) -> tuple[str, dict, dict | None]:
    """Render, damage and write one image; returns (name, truth record, landmark record or None)."""
    cfg, dataset, index, plan = task
    rng = rng_for(cfg["seed"], D.DATASET_ID[dataset], index)
    canvas = cfg["canvas"]
    defect, mode, fmt = plan["defect"], plan["mode"], plan["format"]
    style, ids = draw_labels(rng, cfg["seed"], dataset, index, cfg["identities"])
    idents = [sample_identity(cfg["seed"], k) for k in ids]
    w, h = _canvas_size(rng, canvas)
    rec = {"identity": ids[0], "style": style, "landmarks": None, "defect": defect,
           "duplicate_of": None, "mode": mode, "pose": None, "format": fmt}
    if defect == "oversized":
        w = h = canvas
    if defect == "corrupt":
        ext = D.EXT[fmt]
        name = f"{dataset}_{index:05d}{ext}"
        rec.update(identity=None, style=None, mode=None)
        atomic_write(os.path.join(cfg["out"], dataset, "raw", name), D.corrupt_bytes(ext, rng))
        return name, rec, None
    if defect == "no_face":
        scene = Scene(w, h, [], [idents[0]], _props(rng, w, h))
        rec["identity"] = None
        faces = []
    elif defect == "two_faces":
        q1 = rng.uniform(*TWO_QSIZE)
        q2 = q1 * rng.uniform(0.8, 1.0)
        left = _pose(rng, idents[0], w, h, (q1, q1), canvas, 20, ((0.22, 0.3), (0.4, 0.6)))
        right = _pose(rng, idents[1], w, h, (q2, q2), canvas, 20, ((0.7, 0.78), (0.4, 0.6)))
        faces = [(idents[0], left), (idents[1], right)]
        scene = Scene(w, h, faces, idents)
    else:
        q_range = TINY_QSIZE if defect == "tiny_face" else CLEAN_QSIZE
        centre = ((0.1, 0.9), (0.1, 0.9)) if defect == "tiny_face" else ((0.3, 0.7), (0.35, 0.65))
        faces = [(idents[0], _pose(rng, idents[0], w, h, q_range, canvas, 30, centre))]
        scene = Scene(w, h, faces, idents[:1])
    rgb = render(style, scene, rng)
    lm = None
    if faces:
        lm, order = _lm_record(faces)
        main = faces[order[0]]
        rec.update(identity=ids[order[0]], landmarks=lm["landmarks"], pose=main[1], n_faces=len(faces),
                   qsize=round(float(2 * max(2 * main[0]["eye_sep"], 1.8 * main[0]["mouth_dy"])
                                     * main[1]["scale"]), 2))
        if len(faces) > 1:
            rec["faces"] = [{"identity": ids[k], "landmarks": landmarks(*faces[k]), "pose": faces[k][1]}
                            for k in order]
    if defect == "blur":
        sigma = max(4.0, rng.uniform(4.0, 7.0) * rec["qsize"] / 300)
        rgb = np.clip(ndimage.gaussian_filter(rgb.astype(np.float32), (sigma, sigma, 0)) + 0.5, 0, 255).astype(np.uint8)
        rec["blur_sigma"] = round(float(sigma), 2)
    if defect == "oversized":
        data, off = D.oversized(rgb, rng)
        shift = lambda p: [round(p[0] + off[0], 2), round(p[1] + off[1], 2)]
        lm["landmarks"] = {k: shift(v) for k, v in lm["landmarks"].items()}
        lm["boxes"] = [[b[0] + off[0], b[1] + off[1], b[2] + off[0], b[3] + off[1]] for b in lm["boxes"]]
        rec["landmarks"] = lm["landmarks"]
        rec["pose"] = dict(rec["pose"], x=rec["pose"]["x"] + off[0], y=rec["pose"]["y"] + off[1])
        w, h = D.OVERSIZED_WH
    else:
        data = D.encode(D.to_mode(rgb, mode, rng), fmt, rng)
    if defect == "truncated":
        data = D.truncate(data, rng)
        lm = None  # a detector cannot read it
    rec["size"] = [w, h]
    name = _name(dataset, index, fmt)
    atomic_write(os.path.join(cfg["out"], dataset, "raw", name), data)
    return name, rec, lm


def make_duplicate(task) -> tuple[str, dict, dict | None]:
    """Copy (exact) or downscale + re-encode (near) an already written clean image."""
    cfg, dataset, index, plan, src_name, src_rec, src_lm = task
    rng = rng_for(cfg["seed"], D.DATASET_ID[dataset], index)
    raw = os.path.join(cfg["out"], dataset, "raw")
    with open(os.path.join(raw, src_name), "rb") as f:
        data = f.read()
    rec = dict(src_rec, defect=plan["defect"], duplicate_of=src_name)
    lm = json.loads(json.dumps(src_lm))
    if plan["defect"] == "duplicate_exact":
        name = f"{dataset}_{index:05d}{os.path.splitext(src_name)[1]}"
    else:
        data, old, new = D.near_duplicate(data, rng)
        name = f"{dataset}_{index:05d}.jpg"
        lm["landmarks"] = {k: D.rescale_point(v, old, new) for k, v in lm["landmarks"].items()}
        lm["boxes"] = [D.rescale_point(b[:2], old, new) + D.rescale_point(b[2:], old, new) for b in lm["boxes"]]
        sx = new[0] / old[0]
        x, y = D.rescale_point([src_rec["pose"]["x"], src_rec["pose"]["y"]], old, new)
        rec.update(landmarks=lm["landmarks"], size=list(new), format="JPEG", mode="RGB",
                   qsize=round(src_rec["qsize"] * sx, 2),
                   pose=dict(src_rec["pose"], x=x, y=y, scale=src_rec["pose"]["scale"] * sx))
    rec["format"] = "PNG" if name.endswith(".png") else "JPEG"
    atomic_write(os.path.join(raw, name), data)
    return name, rec, lm


def _run(fn, tasks, pool, desc):
    from tqdm import tqdm
    it = pool.imap_unordered(fn, tasks, chunksize=4) if pool else map(fn, tasks)
    interval = 0.2 if sys.stderr.isatty() else 10.0  # keep logs short when not on a terminal
    return list(tqdm(it, total=len(tasks), desc=desc, unit="img", file=sys.stderr, mininterval=interval))


def generate(out: str, seed: int = 0, n_style: int = 800, n_face: int = 400, canvas: int = 448,
             identities: int = 120, workers: int = 2) -> dict:
    """Write the demo data under `out`; returns the truth dict."""
    cfg = {"out": out, "seed": seed, "canvas": canvas, "identities": identities}
    sizes = {"style": n_style, "face": n_face}
    plans = {d: D.plan_dataset(seed, d, n) for d, n in sizes.items()}
    for d in sizes:
        os.makedirs(os.path.join(out, d, "raw"), exist_ok=True)
    pool = get_context("fork").Pool(workers, initializer=die_with_parent,
                                    initargs=(os.getpid(),)) if workers > 1 else None
    try:
        first = [(cfg, d, i, p) for d in sizes for i, p in enumerate(plans[d])
                 if p["defect"] not in ("duplicate_exact", "duplicate_near")]
        by_index = dict(_run(_ordered(make_image), first, pool, "render"))
        second = []
        for d in sizes:
            for i, p in enumerate(plans[d]):
                if p["defect"] in ("duplicate_exact", "duplicate_near"):
                    src_name, src_rec, src_lm = by_index[(d, p["source"])]
                    second.append((cfg, d, i, p, src_name, src_rec, src_lm))
        by_index.update(_run(_ordered(make_duplicate), second, pool, "duplicates"))
    finally:
        if pool:
            pool.close()
            pool.join()
    truth = {"seed": seed, "styles": STYLE_NAMES, "datasets": {}, "rates": {}, "modes": {},
             "params": {"canvas": canvas, "identities": identities, "n_style": n_style, "n_face": n_face}}
    for d in sizes:
        recs, lms = {}, {}
        for i in range(sizes[d]):
            name, rec, lm = by_index[(d, i)]
            recs[name] = rec
            if lm is not None:
                lms[name] = lm
        truth["datasets"][d] = recs
        truth["rates"][d] = {k: sum(r["defect"] == k for r in recs.values()) for k in D.DEFECTS}
        modes = {}
        for r in recs.values():
            if r["defect"] is None:
                modes[r["mode"]] = modes.get(r["mode"], 0) + 1
        truth["modes"][d] = modes
        write_json_atomic(os.path.join(out, d, "landmarks.json"), lms, sort_keys=True)
    write_json_atomic(os.path.join(out, "truth.json"), truth, sort_keys=True)
    return truth


class _ordered:
    """Wrap a task function so imap_unordered results carry their task key back."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, task):
        return (task[1], task[2]), self.fn(task)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workflow.demo.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0, help="random seed (output is a function of it)")
    ap.add_argument("--n-style", type=int, default=800, help="images in the artistic (AAHQ stand-in) set")
    ap.add_argument("--n-face", type=int, default=400, help="images in the natural-face (FFHQ stand-in) set")
    ap.add_argument("--canvas", type=int, default=448, help="nominal image width in pixels")
    ap.add_argument("--identities", type=int, default=120, help="number of distinct identities")
    ap.add_argument("--workers", type=int, default=2, help="processes (output does not depend on it)")
    a = ap.parse_args(argv)
    t0 = time.time()
    truth = generate(a.out, a.seed, a.n_style, a.n_face, a.canvas, a.identities, a.workers)
    n = sum(len(v) for v in truth["datasets"].values())
    print(f"wrote {n} images to {a.out} in {time.time() - t0:.1f} s; planted: {json.dumps(truth['rates'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
