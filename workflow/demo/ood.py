"""An out-of-distribution reference portrait for one-shot fine-tuning (method 4.4, supplement E).

    python -m workflow.demo.ood --out DIR [--seed 0] [--style thermal] [--size 256]

writes DIR/reference.png, the FFHQ-aligned crop (method 2.3) of one portrait drawn in a tenth
style that neither demo dataset contains, and DIR/reference.json, its ground truth (style,
identity, pose, landmarks, the random stream). Supplement E fine-tunes on styles "far different
from those in AAHQ"; an in-distribution reference starts near the style encoder's ceiling and
shows nothing. The styles here live outside styles.STYLES on purpose: the demo datasets are
drawn from STYLE_NAMES only, and this module uses its own random stream (OOD_STREAM), so adding
it leaves every dataset file byte-identical.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image
from scipy import ndimage

from basics.files import atomic_write, write_json_atomic

from . import defects as D
from .identity import (BG, CLOTHES, EYE_WHITE, FACE, HAIR_BACK, HAIR_FRONT, IRIS, LIPS, PUPIL,
                       SKIN_ROLES, landmarks, qsize_units, rng_for, sample_identity)
from .styles import SS, STYLE_NAMES, Ctx, Scene, _to_u8, render_labels

OOD_STREAM = 6007        # rng_for(seed, OOD_STREAM, ...): no dataset uses this key
OOD_IDENTITY = 10 ** 6   # an identity index far above both datasets' (style: < identities,
                         # face: identities + index)


def thermal(c: Ctx) -> np.ndarray:
    """False-colour thermal camera: heat (skin hot, hair and clothes cool, background cold)
    through an iron colour map, blurred, with a scan-line texture. Chosen among three candidates
    (also leaded stained glass and a two-ink duotone) because the demo's frozen style encoder
    puts it farthest from what the base BlendGAN makes of it (output/reference cosine 0.32,
    against 0.78 for AAHQ references); the other two fell inside the neon and painterly
    clusters."""
    heat = np.zeros(256, np.float32)
    for k in range(16):
        for role, v in {BG: 0.05, CLOTHES: 0.35, HAIR_BACK: 0.45, HAIR_FRONT: 0.5, FACE: 0.85,
                        LIPS: 0.95, IRIS: 0.7, EYE_WHITE: 0.8, PUPIL: 0.75}.items():
            heat[16 * k + role] = v
        for role in SKIN_ROLES:
            heat[16 * k + role] = max(heat[16 * k + role], 0.8)
    t = np.asarray(Image.fromarray((heat[c.lab2] * 255).astype(np.uint8)).reduce(SS), np.float32) / 255
    t = ndimage.gaussian_filter(t, 4) * (0.8 + 0.3 * c.shading(ambient=0.3)) + 0.08 * c.noise(40)
    t = np.clip(t, 0, 1)
    stops = np.array([(0, 0, 20), (60, 0, 120), (180, 0, 120), (240, 80, 0), (255, 200, 0),
                      (255, 255, 220)], np.float32)
    x = t * (len(stops) - 1)
    i = np.clip(x.astype(int), 0, len(stops) - 2)
    img = stops[i] + (stops[i + 1] - stops[i]) * (x - i)[..., None]
    img *= (0.9 + 0.1 * (np.sin(c.yy * 1.3) > 0))[..., None]
    return _to_u8(img)


OOD_STYLES = {"thermal": thermal}


def render_reference(seed: int = 0, style: str = "thermal", canvas: int = 448,
                     size: int = 256):
    """(aligned crop as PIL RGB, truth record) of the out-of-distribution reference."""
    from workflow.dataset.align import align_face
    if style in STYLE_NAMES:
        raise ValueError(f"{style} is a dataset style; pick one of {sorted(OOD_STYLES)}")
    rng = rng_for(seed, OOD_STREAM)
    ident = sample_identity(seed, OOD_IDENTITY)
    w = h = canvas
    scale = 0.62 * canvas / qsize_units(ident)  # a large, upright, centred face
    pose = {"x": w / 2, "y": h * 0.48, "scale": float(scale), "angle_deg": float(rng.uniform(-8, 8))}
    scene = Scene(w, h, [(ident, pose)], [ident])
    rgb = OOD_STYLES[style](Ctx(scene, render_labels(scene), rng))
    lm = landmarks(ident, pose)
    crop = align_face(Image.fromarray(rgb), lm, size=size)
    record = {"style": style, "identity": OOD_IDENTITY, "seed": seed, "stream": [seed, OOD_STREAM],
              "canvas": [w, h], "pose": pose, "landmarks": lm, "size": size,
              "dataset_styles": STYLE_NAMES}
    return crop, record


def write_reference(out: str, seed: int = 0, style: str = "thermal", size: int = 256) -> dict:
    crop, record = render_reference(seed, style, size=size)
    record["file"] = "reference.png"
    atomic_write(os.path.join(out, "reference.png"), D.encode(crop, "PNG", None))
    write_json_atomic(os.path.join(out, "reference.json"), record, sort_keys=True)
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workflow.demo.ood", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (reference.png, reference.json)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--style", default="thermal", choices=sorted(OOD_STYLES))
    ap.add_argument("--size", type=int, default=256, help="side of the aligned crop")
    a = ap.parse_args(argv)
    rec = write_reference(a.out, a.seed, a.style, a.size)
    print(f"wrote {a.out}/reference.png ({rec['style']}, identity {rec['identity']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
