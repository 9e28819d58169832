"""Identity geometry of the demo portraits, and the exact landmarks that follow from it.

An identity is a small dict of shape parameters (face ellipse and jaw, eye spacing/size/colour,
brows, nose, mouth, ears, hair shape and colour, skin tone) sampled from (seed, identity index).
`face_shapes` turns it into polygons and polylines in a canonical frame (unit = half the face
width, y down, origin at the centre of the face ellipse); each shape carries a role (label) and a
z-order. A pose (centre x, y in pixels, scale in pixels per unit, in-plane angle) maps the canonical
frame into the image, so the four method 2.1 landmarks (eye centres, mouth corners) and the face box
are known analytically. Pixel coordinates use the index convention: the centre of pixel i is i.
"""
from __future__ import annotations

import math

import numpy as np

# Label roles inside a face's block of 16 labels (label = 16 * face_slot + role; 0 = background).
BG, CLOTHES, NECK, HAIR_BACK, EAR, FACE, BLUSH, HAIR_FRONT = 0, 1, 2, 3, 4, 5, 6, 7
BROW, EYE_WHITE, IRIS, PUPIL, NOSE, LIPS, MOUTH_LINE, PROP = 8, 9, 10, 11, 12, 13, 14, 15
N_ROLES = 16
SKIN_ROLES = (NECK, EAR, FACE, BLUSH, NOSE)
HAIR_TYPES = ("short", "long", "bun", "bald", "fringe")
N_SKIN, N_HAIR_COLOURS, N_EYE_COLOURS = 6, 6, 5


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """Independent, order-free random stream for (seed, *keys): same numbers in any worker."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]])


def sample_identity(seed: int, index: int) -> dict:
    """Geometry and colour indices of identity `index` (shared by the style and face sets)."""
    r = rng_for(seed, 7919, index)
    u = r.uniform
    eye_y = u(-0.16, 0.0)
    dm = u(0.60, 0.80)                      # eye line to mouth line
    ident = dict(
        index=int(index),
        face_h=u(1.20, 1.42),               # half-height of the face ellipse (half-width is 1)
        jaw=u(0.0, 0.38),                   # narrowing of the lower face towards the chin
        eye_y=eye_y,
        eye_sep=u(0.70, 0.90),              # eye centre to eye centre
        eye_r=u(0.10, 0.155),               # half-width of an eye
        eye_aspect=u(0.42, 0.68),
        eye_colour=int(r.integers(N_EYE_COLOURS)),
        brow_gap=u(0.13, 0.22),
        brow_thick=u(0.03, 0.07),
        brow_tilt=u(-0.07, 0.09),
        brow_len=u(0.20, 0.30),
        nose_len=dm * u(0.52, 0.70),
        nose_w=u(0.10, 0.20),
        mouth_dy=dm,
        mouth_w=u(0.19, 0.31),              # half-width: the corners are landmarks
        lip=u(0.035, 0.085),
        smile=u(-0.03, 0.07),
        ear=u(0.85, 1.15),
        hair=HAIR_TYPES[int(r.integers(len(HAIR_TYPES)))],
        hair_volume=u(1.04, 1.22),
        hairline=u(-0.92, -0.62),
        hair_colour=int(r.integers(N_HAIR_COLOURS)),
        skin=int(r.integers(N_SKIN)),
        skin_jitter=[float(v) for v in r.normal(0, 6, 3)],
        neck_w=u(0.32, 0.44),
        shoulder_w=u(1.7, 2.3),
    )
    return {k: (float(v) if isinstance(v, float) else v) for k, v in ident.items()}


def qsize_units(ident: dict) -> float:
    """FFHQ quad size (method 2.3) in canonical units: 2 * max(2 |v_ee|, 1.8 |v_em|)."""
    return 2.0 * max(2.0 * ident["eye_sep"], 1.8 * ident["mouth_dy"])


def _ellipse(cx, cy, rx, ry, n=56, a0=0.0, a1=2 * math.pi):
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-9)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _face_outline(ident, n=72):
    pts = _ellipse(0, 0, 1.0, ident["face_h"], n)
    lower = np.clip(pts[:, 1] / ident["face_h"], 0, 1)
    pts[:, 0] *= 1.0 - ident["jaw"] * lower ** 2
    return pts


def face_shapes(ident: dict, rng: np.random.Generator | None = None) -> list:
    """Shapes of one portrait: (z, role, kind, points (k, 2), line width in units)."""
    i, s = ident, []
    H, ey, es = i["face_h"], i["eye_y"], i["eye_sep"]
    my = ey + i["mouth_dy"]
    hv = i["hair_volume"]
    # body
    s.append((0, CLOTHES, "poly", _ellipse(0, H + 1.55, i["shoulder_w"], 1.0, 48), 0))
    s.append((1, NECK, "poly", np.array([[-i["neck_w"], 0.3], [i["neck_w"], 0.3],
                                        [i["neck_w"] * 1.1, H + 0.75],
                                        [-i["neck_w"] * 1.1, H + 0.75]]), 0))
    # hair behind the head
    hair = i["hair"]
    if hair != "bald":
        if hair == "long":  # the crown arc, then straight falls to the shoulders
            back = np.concatenate([_ellipse(0, -0.22, hv, H * 0.98 * hv, 40, math.pi, 2 * math.pi),
                                   [[hv, -0.22], [hv * 1.12, H + 0.45], [0.7, H + 0.7],
                                    [-0.7, H + 0.7], [-hv * 1.12, H + 0.45]]])
        else:
            back = _ellipse(0, -0.22, hv, H * 0.98 * hv, 64)
            back[:, 1] = np.minimum(back[:, 1], ey + 0.25)
        s.append((2, HAIR_BACK, "poly", back, 0))
        if hair == "bun":
            s.append((2, HAIR_BACK, "poly", _ellipse(0, -H * hv - 0.12, 0.38, 0.33, 40), 0))
    else:
        for sx in (-1, 1):  # a little hair above the ears
            s.append((2, HAIR_BACK, "poly", _ellipse(sx * 0.93, ey - 0.15, 0.17, 0.33, 24), 0))
    for sx in (-1, 1):
        s.append((3, EAR, "poly", _ellipse(sx * 0.97, ey + 0.22, 0.13 * i["ear"], 0.22 * i["ear"], 28), 0))
    s.append((4, FACE, "poly", _face_outline(i), 0))
    for sx in (-1, 1):
        s.append((5, BLUSH, "poly", _ellipse(sx * 0.55, my - 0.2, 0.17, 0.1, 24), 0))
    # hair in front of the forehead
    if hair != "bald":
        xs = np.linspace(-hv, hv, 41)
        top = -0.22 - H * 0.98 * hv * np.sqrt(np.clip(1 - (xs / hv) ** 2, 0, 1))
        if hair == "fringe":
            low = ey - i["brow_gap"] - 0.12 + 0.06 * np.abs(np.sin(xs * 9)) + 0.12 * xs ** 2
        else:
            part = 0.12 * (xs - 0.25) ** 2 + 0.06 * np.tanh((xs - 0.25) * 6)
            low = i["hairline"] + 0.45 * xs ** 2 + part
        low = np.minimum(low, ey + 0.05)
        low = np.maximum(low, top)
        s.append((6, HAIR_FRONT, "poly", np.concatenate([np.stack([xs, top], 1),
                                                          np.stack([xs[::-1], low[::-1]], 1)]), 0))
    # eyes and brows
    er, eh = i["eye_r"], i["eye_r"] * i["eye_aspect"]
    ri = min(eh * 0.95, er * 0.6)
    for sx in (-1, 1):
        cx = sx * es / 2
        s.append((7, EYE_WHITE, "poly", _ellipse(cx, ey, er, eh, 40), 0))
        s.append((8, IRIS, "poly", _ellipse(cx, ey, ri, ri, 32), 0))
        s.append((9, PUPIL, "poly", _ellipse(cx, ey, ri * 0.45, ri * 0.45, 20), 0))
        by = ey - i["brow_gap"]
        bx = np.linspace(-i["brow_len"], i["brow_len"], 9)
        brow = np.stack([cx + bx, by - 0.04 * (1 - (bx / i["brow_len"]) ** 2)
                         + sx * i["brow_tilt"] * bx / i["brow_len"]], 1)
        s.append((7, BROW, "line", brow, i["brow_thick"]))
    # nose: a bridge line and a base
    nt = ey + i["nose_len"]
    nw = i["nose_w"]
    s.append((7, NOSE, "line", np.array([[0.02, ey + 0.12], [nw * 0.35, nt - 0.05], [nw * 0.15, nt]]), 0.025))
    s.append((7, NOSE, "line", np.array([[-nw, nt - 0.03], [-nw * 0.5, nt + 0.02],
                                        [nw * 0.5, nt + 0.02], [nw, nt - 0.03]]), 0.03))
    # mouth: corners at (+-mouth_w, my), the landmarks
    mw, lip, sm = i["mouth_w"], i["lip"], i["smile"]
    xs = np.linspace(-mw, mw, 25)
    t = 1 - (xs / mw) ** 2
    line_y = my + sm * t
    upper = line_y - lip * 0.9 * np.sqrt(t) * (1 - 0.25 * np.exp(-(xs / (0.25 * mw)) ** 2))
    lower = line_y + lip * 1.2 * np.sqrt(t)
    s.append((7, LIPS, "poly", np.concatenate([np.stack([xs, upper], 1),
                                                np.stack([xs[::-1], lower[::-1]], 1)]), 0))
    s.append((8, MOUTH_LINE, "line", np.stack([xs, line_y], 1), 0.018))
    return s


def pose_matrix(pose: dict) -> tuple[np.ndarray, np.ndarray]:
    """(A, t) with p_image = A @ p_canonical + t; angle positive = clockwise on screen."""
    a = math.radians(pose["angle_deg"])
    c, sn = math.cos(a), math.sin(a)
    A = pose["scale"] * np.array([[c, -sn], [sn, c]])
    return A, np.array([pose["x"], pose["y"]], float)


def transform(points: np.ndarray, pose: dict) -> np.ndarray:
    A, t = pose_matrix(pose)
    return np.asarray(points, float) @ A.T + t


def landmarks(ident: dict, pose: dict) -> dict:
    """Exact method 2.1 landmarks in image pixels (eye_left = the eye on the image's left)."""
    ey, es, mw = ident["eye_y"], ident["eye_sep"], ident["mouth_w"]
    my = ey + ident["mouth_dy"]
    p = transform(np.array([[-es / 2, ey], [es / 2, ey], [-mw, my], [mw, my]]), pose)
    names = ("eye_left", "eye_right", "mouth_left", "mouth_right")
    return {n: [round(float(x), 2), round(float(y), 2)] for n, (x, y) in zip(names, p)}


def face_box(ident: dict, pose: dict) -> list:
    """Detector-style box: bounding box of the face outline, in image pixels."""
    p = transform(_face_outline(ident, 36), pose)
    return [round(float(v), 2) for v in (*p.min(0), *p.max(0))]


def qsize_px(lm: dict) -> float:
    """qsize of method 2.3 from the four landmarks (for checks and tests)."""
    el, er = np.array(lm["eye_left"]), np.array(lm["eye_right"])
    ml, mr = np.array(lm["mouth_left"]), np.array(lm["mouth_right"])
    v_ee, v_em = er - el, (ml + mr) / 2 - (el + er) / 2
    return 2.0 * max(2.0 * np.hypot(*v_ee), 1.8 * np.hypot(*v_em))
