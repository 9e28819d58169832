"""Renderers of the demo portraits: nine art styles (the AAHQ stand-in) and one photo-like look (FFHQ).

A scene (faces = identity + pose, optional props) is first rasterised into a label map at 2x
(label = 16 * face slot + role, see identity.py); each renderer owns the palette, the background,
the texture and the strokes, and turns the labels into an RGB uint8 image at 1x. Identity only
enters through geometry and colour *indices* (skin tone, hair and eye colour) that every style maps
through its own palette, so style and identity are separable by construction. Everything is numpy +
Pillow on whole arrays (a few hundred painterly strokes are the only Python loop).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from .identity import (BG, BLUSH, BROW, CLOTHES, EAR, EYE_WHITE, FACE, HAIR_BACK, HAIR_FRONT, IRIS,
                       LIPS, MOUTH_LINE, N_ROLES, NECK, NOSE, PROP, PUPIL, SKIN_ROLES, face_shapes,
                       pose_matrix, transform)

SS = 2  # supersampling of the label map

SKIN_RGB = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 128), (198, 134, 98),
                     (141, 85, 54), (94, 58, 40)], float)
HAIR_RGB = np.array([(30, 25, 25), (70, 45, 30), (120, 80, 50), (220, 190, 120), (165, 70, 35),
                     (170, 170, 170)], float)
EYE_RGB = np.array([(90, 55, 30), (40, 30, 25), (70, 120, 170), (80, 130, 80), (130, 100, 50)], float)
HAIR_ROLES = (HAIR_BACK, HAIR_FRONT)
FEATURE_ROLES = (BROW, EYE_WHITE, IRIS, PUPIL, NOSE, LIPS, MOUTH_LINE)


@dataclass
class Scene:
    """What to draw: image size, faces as (identity, pose), colour identities, props (no-face images)."""
    w: int
    h: int
    faces: list = field(default_factory=list)          # [(ident, pose)], slot k -> labels 16k + role
    palette_idents: list = field(default_factory=list)  # identities whose colours fill each slot
    props: list = field(default_factory=list)           # [(role, points in image pixels)] in slot 0


def render_labels(scene: Scene) -> np.ndarray:
    """Label map (h*SS, w*SS) uint8; shapes sorted by z so that two faces interleave sensibly."""
    img = Image.new("L", (scene.w * SS, scene.h * SS), BG)
    draw = ImageDraw.Draw(img)
    off = (SS - 1) / 2  # pixel centre i at 1x is SS*i + off at SS x
    for role, pts in scene.props:
        p = np.asarray(pts) * SS + off
        draw.polygon([tuple(q) for q in p], fill=role)
    items = []
    for k, (ident, pose) in enumerate(scene.faces):
        for z, role, kind, pts, width in face_shapes(ident):
            items.append((z, k, role, kind, transform(pts, pose) * SS + off, width * pose["scale"] * SS))
    items.sort(key=lambda t: (t[0], t[1]))
    for z, k, role, kind, p, width in items:
        xy = [tuple(q) for q in p]
        if kind == "poly":
            draw.polygon(xy, fill=16 * k + role)
        else:
            draw.line(xy, fill=16 * k + role, width=max(1, int(round(width))), joint="curve")
    return np.asarray(img)


@lru_cache(maxsize=8)
def _grid(h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


class Ctx:
    """Render context: labels at 2x, helpers that return float arrays at 1x."""

    def __init__(self, scene: Scene, lab2: np.ndarray, rng: np.random.Generator):
        self.scene, self.lab2, self.rng = scene, lab2, rng
        self.h, self.w = scene.h, scene.w
        self.lab_im = Image.fromarray(lab2, "L")
        self._merged = None
        self.role2 = (lab2 % N_ROLES).astype(np.uint8)
        self.role = self.role2[::SS, ::SS]
        self.slot = (lab2[::SS, ::SS] // N_ROLES).astype(np.intp)
        self.yy, self.xx = _grid(self.h, self.w)

    # --- colour -----------------------------------------------------------------------------
    def lut(self, colour_of) -> np.ndarray:
        """(256, 3) uint8 table from colour_of(role, ident, slot) for every used slot."""
        lut = np.zeros((256, 3), np.uint8)
        idents = self.scene.palette_idents or [f[0] for f in self.scene.faces]
        for k, ident in enumerate(idents):
            for role in range(N_ROLES):
                lut[16 * k + role] = np.clip(colour_of(role, ident, k), 0, 255)
        return lut

    def fill(self, lut: np.ndarray) -> np.ndarray:
        """Anti-aliased flat fill at 1x, float32 (h, w, 3)."""
        im = Image.fromarray(self.lab2, "L")
        im = im.convert("P") if im.mode != "P" else im
        im.putpalette(np.ascontiguousarray(lut, np.uint8).tobytes())
        return np.asarray(im.convert("RGB").reduce(SS), np.float32)

    def coverage(self, mask2: np.ndarray) -> np.ndarray:
        im = Image.fromarray(mask2.view(np.uint8) * np.uint8(255) if mask2.dtype == bool else mask2)
        return np.asarray(im.reduce(SS), np.float32) * np.float32(1 / 255)

    def mask(self, roles) -> np.ndarray:
        """Anti-aliased coverage (h, w) of the given roles (any face slot)."""
        roles = {int(r) for r in np.atleast_1d(roles)}
        table = [255 if (v % N_ROLES) in roles else 0 for v in range(256)]
        return np.asarray(self.lab_im.point(table).reduce(SS), np.float32) * np.float32(1 / 255)

    def edges(self, width: int, merge=(BLUSH,), lab=None) -> np.ndarray:
        """Coverage (h, w) of the label boundaries, `width` pixels thick at 2x."""
        if lab is None and merge == (BLUSH,):
            if self._merged is None:
                self._merged = self._merge(self.lab2, merge)
            lab = self._merged
        else:
            lab = self._merge(self.lab2 if lab is None else lab, merge)
        e = np.zeros(lab.shape, bool)
        dv = lab[1:] != lab[:-1]
        dh = lab[:, 1:] != lab[:, :-1]
        e[1:] |= dv
        e[:, 1:] |= dh
        if width > 1:
            e = ndimage.maximum_filter(e, size=width)
        return self.coverage(e)

    @staticmethod
    def _merge(lab, merge):
        """Relabel the `merge` roles as FACE (no outline between them and the face)."""
        if not merge:
            return lab
        remap = np.arange(256, dtype=np.uint8)
        for k in range(16):
            for r in merge:
                remap[16 * k + r] = 16 * k + FACE
        return np.asarray(Image.fromarray(lab, "L").point(remap.tolist()))

    # --- fields -----------------------------------------------------------------------------
    def shading(self, light=None, ambient=0.35) -> np.ndarray:
        """Lambert shading of each head as an ellipsoid (1 outside the skin), float (h, w)."""
        if light is None:
            light = np.array([self.rng.uniform(-0.6, 0.6), self.rng.uniform(-0.7, -0.1), 1.0])
        light = light / np.linalg.norm(light)
        out = np.ones((self.h, self.w), np.float32)
        skin = np.isin(self.role, SKIN_ROLES)
        for k, (ident, pose) in enumerate(self.scene.faces):
            A, t = pose_matrix(pose)
            Ai = np.linalg.inv(A)
            sel = skin & (self.slot == k)
            py, px = np.nonzero(sel)
            px, py = px - t[0], py - t[1]
            u = Ai[0, 0] * px + Ai[0, 1] * py
            v = (Ai[1, 0] * px + Ai[1, 1] * py) / ident["face_h"]
            # the light turns with the head, so "up" is the head's up
            nz = np.sqrt(np.clip(1 - u * u - v * v, 0, 1))
            lam = np.clip(u * light[0] + v * light[1] + nz * light[2], 0, 1)
            lam[self.role[sel] == NECK] = 0.45  # under the chin: evenly in shadow
            out[sel] = ambient + (1 - ambient) * lam
        return out

    def noise(self, cell: float, octaves=1) -> np.ndarray:
        """Smooth value noise in [0, 1] with features about `cell` pixels wide."""
        acc = np.zeros((self.h, self.w), np.float32)
        amp, tot = 1.0, 0.0
        for _ in range(octaves):
            gh, gw = max(2, int(self.h / cell) + 2), max(2, int(self.w / cell) + 2)
            g = self.rng.random((gh, gw)).astype(np.float32)
            im = Image.fromarray(g, mode="F").resize((self.w, self.h), Image.BICUBIC)
            acc += amp * np.asarray(im)
            tot += amp
            amp *= 0.5
            cell /= 2
        return np.clip(acc / tot, 0, 1)

    def grain(self, sigma: float) -> np.ndarray:
        return self.rng.standard_normal((self.h, self.w), dtype=np.float32) * np.float32(sigma)


def _mix(a, b, t):
    a = np.asarray(a, np.float32)
    return a + (np.asarray(b, np.float32) - a) * np.asarray(t, np.float32)


def _over(img, colour, alpha):
    """Composite a flat colour over img with per-pixel alpha (h, w)."""
    return img + (np.asarray(colour, np.float32) - img) * alpha[..., None]


def _to_u8(img):
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _clothes(rng, choices):
    return np.asarray(choices[int(rng.integers(len(choices)))], float)


def _roles_colours(ident, skin, hair, iris, clothes, white=(255, 255, 255), lips=None,
                   blush=None, dark=(30, 25, 30), nose=None, prop=None):
    """Default role -> colour table used by most styles."""
    skin = np.asarray(skin, float)
    hair = np.asarray(hair, float)
    return {
        CLOTHES: clothes, NECK: skin * 0.92, HAIR_BACK: hair * 0.85, EAR: skin * 0.95, FACE: skin,
        BLUSH: skin if blush is None else blush, HAIR_FRONT: hair, BROW: hair * 0.6,
        EYE_WHITE: white, IRIS: iris, PUPIL: dark, NOSE: skin * 0.8 if nose is None else nose,
        LIPS: _mix(skin, (200, 60, 70), 0.55) if lips is None else lips, MOUTH_LINE: dark,
        PROP: clothes[::-1] if prop is None else prop, BG: (0, 0, 0),
    }


# --- the art styles --------------------------------------------------------------------------

def flat_cartoon(c: Ctx) -> np.ndarray:
    """Saturated flat fills, two-tone cel shading, dark 1.5 px outlines, pastel two-tone background."""
    r = c.rng
    skin_t = np.array([(255, 222, 190), (252, 200, 160), (238, 176, 130), (210, 140, 95),
                       (165, 105, 70), (120, 78, 52)], float)
    hair_t = np.array([(50, 45, 80), (125, 72, 35), (252, 205, 70), (238, 95, 40), (220, 220, 232),
                       (95, 60, 30)], float)
    iris_t = np.array([(120, 70, 30), (60, 40, 30), (40, 130, 230), (40, 170, 90), (170, 120, 40)], float)
    clothes = _clothes(r, [(230, 60, 70), (60, 120, 220), (60, 180, 120), (250, 190, 40), (150, 80, 200)])
    table = lambda role, i, k: _roles_colours(
        i, skin_t[i["skin"]], hair_t[i["hair_colour"]], iris_t[i["eye_colour"]], clothes,
        blush=(255, 150, 160), lips=(225, 70, 85), nose=skin_t[i["skin"]] * 0.82)[role]
    img = c.fill(c.lut(table))
    shade = c.shading()
    skin = c.mask(SKIN_ROLES)
    img *= np.where((shade < 0.62)[..., None], 1 - 0.16 * skin[..., None], 1)
    bg = c.mask([BG])
    pastel = [(190, 230, 250), (255, 220, 230), (255, 245, 200), (215, 245, 215), (230, 220, 255)]
    a, b = r.choice(len(pastel), 2, replace=False)
    split = ((c.xx * r.uniform(-0.6, 0.6) + c.yy) > c.h * r.uniform(0.4, 0.8)).astype(np.float32)
    bgimg = _mix(pastel[a], pastel[b], split[..., None])
    img = img * (1 - bg[..., None]) + bgimg * bg[..., None]
    return _to_u8(_over(img, (35, 30, 45), c.edges(3)))


def pencil_sketch(c: Ctx) -> np.ndarray:
    """Graphite on warm paper: grey tones drawn as 45-degree hatching, doubled sketchy outlines, grain."""
    r = c.rng
    hair_dark = [0.75, 0.6, 0.45, 0.18, 0.4, 0.22]
    darkness = np.zeros(256, np.float32)
    idents = c.scene.palette_idents or [f[0] for f in c.scene.faces]
    for k, i in enumerate(idents):
        d = {CLOTHES: 0.3, NECK: 0.1, HAIR_BACK: hair_dark[i["hair_colour"]] * 0.9, EAR: 0.1,
             FACE: 0.05 + 0.05 * i["skin"], BLUSH: 0.05 + 0.05 * i["skin"],
             HAIR_FRONT: hair_dark[i["hair_colour"]], BROW: 0.8, EYE_WHITE: 0.0, IRIS: 0.55,
             PUPIL: 0.95, NOSE: 0.35, LIPS: 0.35, MOUTH_LINE: 0.8, PROP: 0.4}
        for role, v in d.items():
            darkness[16 * k + role] = v
    dark = np.asarray(Image.fromarray((darkness[c.lab2] * 255).astype(np.uint8)).reduce(SS),
                      np.float32) / 255
    dark = np.clip(dark + (1 - c.shading()) * 0.45, 0, 1)
    period = r.uniform(4.0, 5.5)
    wob = c.noise(40) * 3
    h1 = 0.5 + 0.5 * np.sin(2 * np.pi * (c.xx + c.yy + wob) / period)
    h2 = 0.5 + 0.5 * np.sin(2 * np.pi * (c.xx - c.yy + wob) / period)
    ink = np.clip((dark - h1) * 3, 0, 1) * 0.85 + np.clip((dark - 0.45 - h2) * 3, 0, 1) * 0.6
    ink = np.clip(ink + 0.25 * dark, 0, 1)
    e1 = c.edges(2)
    shifted = np.roll(c.lab2, (int(r.integers(2, 5)), int(r.integers(-3, 4))), (0, 1))
    e2 = c.edges(1, lab=shifted)
    ink = np.maximum(ink, np.maximum(e1 * 0.9, e2 * 0.45))
    paper = np.array([244, 238, 226], np.float32) + c.grain(4)[..., None]
    graphite = np.array([62, 62, 70], np.float32)
    img = paper * (1 - ink[..., None]) + graphite * ink[..., None]
    return _to_u8(img)


def watercolour(c: Ctx) -> np.ndarray:
    """Diluted pigments with blotchy density, darker pigment edges, misregistration, paper grain."""
    r = c.rng
    clothes = _clothes(r, [(90, 140, 200), (200, 110, 140), (120, 170, 120), (220, 160, 80)])
    table = lambda role, i, k: _roles_colours(
        i, _mix(SKIN_RGB[i["skin"]], (255, 190, 170), 0.2), HAIR_RGB[i["hair_colour"]] * 1.1 + 20,
        EYE_RGB[i["eye_colour"]] * 1.2, clothes, blush=(245, 160, 160),
        lips=(215, 90, 110))[role]
    lut = c.lut(table)
    lut[0] = np.array([(170, 200, 230), (230, 190, 200), (200, 220, 180), (240, 215, 170)][int(r.integers(4))])
    pig = 255 - c.fill(lut)  # pigment density per channel
    dx, dy = int(r.integers(-3, 4)), int(r.integers(-3, 4))
    pig = np.roll(pig, (dy, dx), (0, 1))
    blot = 0.45 + 0.55 * c.noise(28, octaves=3)
    pig *= blot[..., None] * 0.75
    edge = ndimage.gaussian_filter(c.edges(3), 1.2)
    pig *= (1 + 1.3 * edge)[..., None]
    bgm = c.mask([BG])
    vign = np.clip(1.6 - 2.2 * np.hypot((c.xx / c.w - 0.5), (c.yy / c.h - 0.5)) * 1.5, 0, 1)
    pig *= (1 - bgm * (1 - vign))[..., None]
    paper = 250 + c.grain(5)[..., None] + 5 * (c.noise(3) - 0.5)[..., None]
    img = paper - pig
    line = c.edges(1)
    return _to_u8(_over(img, (120, 90, 80), line * 0.55))


def painterly(c: Ctx) -> np.ndarray:
    """Oil-like: earthy palette, strong chiaroscuro, thousands of short brush strokes, canvas weave."""
    r = c.rng
    clothes = _clothes(r, [(90, 40, 40), (40, 60, 90), (70, 80, 40), (110, 80, 40)])
    table = lambda role, i, k: _roles_colours(
        i, _mix(SKIN_RGB[i["skin"]], (230, 160, 100), 0.25), _mix(HAIR_RGB[i["hair_colour"]], (60, 35, 20), 0.3),
        EYE_RGB[i["eye_colour"]], clothes, white=(225, 215, 190), lips=(170, 70, 60),
        dark=(25, 15, 10))[role]
    lut = c.lut(table)
    bgs = [(70, 50, 35), (80, 85, 50), (30, 60, 70), (80, 30, 40)]
    lut[0] = bgs[int(r.integers(len(bgs)))]
    base = c.fill(lut)
    base *= (0.25 + 0.75 * c.shading(ambient=0.15))[..., None] ** 0.8
    base *= (0.75 + 0.5 * c.noise(60))[..., None]
    im = Image.fromarray(_to_u8(base))
    draw = ImageDraw.Draw(im)
    n = c.w * c.h // 70
    xs, ys = r.uniform(0, c.w, n), r.uniform(0, c.h, n)
    ang = r.uniform(0, np.pi) + 0.6 * r.standard_normal(n)
    ln = r.uniform(4, 11, n)
    wd = r.integers(2, 5, n)
    xi, yi = np.clip(xs.astype(int), 0, c.w - 1), np.clip(ys.astype(int), 0, c.h - 1)
    col = np.clip(base[yi, xi] + r.normal(0, 9, (n, 3)), 0, 255).astype(int)
    dx, dy = np.cos(ang) * ln / 2, np.sin(ang) * ln / 2
    for j in range(n):
        draw.line((xs[j] - dx[j], ys[j] - dy[j], xs[j] + dx[j], ys[j] + dy[j]),
                  fill=tuple(col[j]), width=int(wd[j]))
    img = np.asarray(im, np.float32)
    feat = ndimage.maximum_filter(c.mask(FEATURE_ROLES), 2)[..., None]
    img = img * (1 - feat) + base * feat
    weave = 7 * np.sin(c.xx * 2.1) * np.sin(c.yy * 2.1)
    return _to_u8(img + weave[..., None])


POP_SCHEMES = [  # bg, skin light, skin dark, hair, clothes, lips
    ((0, 200, 230), (255, 105, 180), (200, 30, 120), (255, 230, 0), (20, 20, 20), (230, 0, 40)),
    ((255, 230, 0), (255, 150, 70), (230, 60, 30), (0, 110, 255), (0, 180, 80), (200, 0, 80)),
    ((255, 70, 160), (255, 235, 60), (255, 160, 0), (40, 40, 200), (0, 200, 200), (220, 0, 0)),
    ((120, 230, 40), (250, 190, 225), (240, 100, 170), (120, 20, 160), (255, 120, 0), (200, 0, 40)),
]


def popart_posterised(c: Ctx) -> np.ndarray:
    """Warhol-like: a per-image vivid scheme that ignores skin/hair colour, two-level posterised skin,
    thick black outlines."""
    bg, hi, lo, hair, clothes, lips = [np.array(v, float) for v in POP_SCHEMES[int(c.rng.integers(4))]]
    table = lambda role, i, k: _roles_colours(
        i, hi, hair, (0, 0, 0), clothes, lips=lips, nose=lo, dark=(0, 0, 0))[role]
    lut = c.lut(table)
    lut[0] = bg
    img = c.fill(lut)
    skin = c.mask(SKIN_ROLES)
    darkside = (c.shading(ambient=0.3) < 0.7).astype(np.float32) * skin
    img = _over(img, lo, darkside)
    return _to_u8(_over(img, (0, 0, 0), c.edges(6)))


def halftone(c: Ctx) -> np.ndarray:
    """One ink on cream newsprint: tone rendered as a 45-degree grid of dots whose size is the tone."""
    r = c.rng
    table = lambda role, i, k: _roles_colours(
        i, SKIN_RGB[i["skin"]], HAIR_RGB[i["hair_colour"]], EYE_RGB[i["eye_colour"]],
        (120, 120, 120), dark=(0, 0, 0))[role]
    lut = c.lut(table)
    lut[0] = (225, 225, 225)
    base = c.fill(lut) * c.shading(ambient=0.55)[..., None]
    tone = 0.04 + 0.74 * np.clip((1 - base.mean(2) / 255) ** 1.25 * 1.1, 0, 1)  # darkest: still dots
    cell = r.uniform(5.0, 7.0)
    u = (c.xx + c.yy) / np.sqrt(2) / cell
    v = (c.xx - c.yy) / np.sqrt(2) / cell
    du, dv = u - np.round(u), v - np.round(v)
    dist = np.hypot(du, dv)
    radius = 0.75 * np.sqrt(tone)
    ink = np.clip((radius - dist) * cell * 1.2 + 0.5, 0, 1)
    ink = np.maximum(ink, c.edges(2) * 0.9)
    inks = [(20, 40, 110), (25, 25, 25), (180, 20, 60), (90, 50, 20)]
    paper = np.array([250, 244, 222], np.float32) + c.grain(2.5)[..., None]
    return _to_u8(_over(paper, inks[int(r.integers(len(inks)))], ink))


PICO8 = np.array([(0, 0, 0), (29, 43, 83), (126, 37, 83), (0, 135, 81), (171, 82, 54), (95, 87, 79),
                  (194, 195, 199), (255, 241, 232), (255, 0, 77), (255, 163, 0), (255, 236, 39),
                  (0, 228, 54), (41, 173, 255), (131, 118, 156), (255, 119, 168), (255, 204, 170)], float)


def pixel_art(c: Ctx) -> np.ndarray:
    """Chunky pixels: labels sampled on a coarse grid, PICO-8 16-colour palette, 1-block outlines,
    a dithered background."""
    r = c.rng
    b = max(4, c.w // 64)
    gh, gw = -(-c.h // b), -(-c.w // b)
    ys = np.clip(np.arange(gh) * b + b // 2, 0, c.h - 1) * SS
    xs = np.clip(np.arange(gw) * b + b // 2, 0, c.w - 1) * SS
    lab = c.lab2[np.ix_(ys, xs)]
    clothes = _clothes(r, [(255, 0, 77), (41, 173, 255), (0, 135, 81), (131, 118, 156)])
    table = lambda role, i, k: _roles_colours(
        i, SKIN_RGB[i["skin"]], HAIR_RGB[i["hair_colour"]], EYE_RGB[i["eye_colour"]], clothes,
        blush=(255, 119, 168), lips=(255, 0, 77), dark=(0, 0, 0))[role]
    lut = c.lut(table).astype(float)
    d = ((lut[:, None, :] - PICO8[None]) ** 2).sum(-1)
    lutp = PICO8[d.argmin(1)]
    small = lutp[lab]
    bgpair = [(1, 2), (1, 13), (2, 1), (5, 1)][int(r.integers(4))]
    cy, cx = np.mgrid[0:gh, 0:gw]
    band = ((cy / gh) > r.uniform(0.3, 0.7)) & ((cx + cy) % 2 == 0)
    bgcol = np.where(band[..., None], PICO8[bgpair[1]], PICO8[bgpair[0]])
    small = np.where((lab == 0)[..., None], bgcol, small)
    e = np.zeros(lab.shape, bool)
    e[1:] |= lab[1:] != lab[:-1]
    e[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    e &= np.isin(lab % 16, (FACE, HAIR_FRONT, HAIR_BACK, EYE_WHITE, CLOTHES, EAR, NECK))
    small = np.where(e[..., None], PICO8[0], small)
    big = np.repeat(np.repeat(small, b, 0), b, 1)[:c.h, :c.w]
    return big.astype(np.uint8)


def ink_outline(c: Ctx) -> np.ndarray:
    """Black ink on white: brush lines of varying weight, solid or hatched blacks, one spot colour."""
    r = c.rng
    spot = np.array([(220, 30, 40), (30, 90, 200), (240, 120, 0)][int(r.integers(3))], float)
    thin, thick = c.edges(2), c.edges(7)
    weight = c.noise(50) > 0.5
    ink = np.where(weight, thick, thin)
    hair = c.mask(HAIR_ROLES)
    idents = c.scene.palette_idents or [f[0] for f in c.scene.faces]
    dark_hair = np.zeros(256, bool)
    for k, i in enumerate(idents):
        dark_hair[16 * k + HAIR_BACK] = dark_hair[16 * k + HAIR_FRONT] = i["hair_colour"] in (0, 1, 2)
    solid = c.coverage(dark_hair[c.lab2])
    hatch = (np.sin((c.xx * 0.8 - c.yy * 0.35)) > 0.55).astype(np.float32)
    ink = np.maximum(ink, np.maximum(solid, (hair - solid) * hatch))
    ink = np.maximum(ink, c.mask([PUPIL, BROW, MOUTH_LINE]))
    ink = np.maximum(ink, c.mask([IRIS]) * (np.sin(c.xx * 1.6) > 0).astype(np.float32))
    paper = np.full((c.h, c.w, 3), 252, np.float32)
    paper = _over(paper, spot, c.mask([LIPS, CLOTHES, PROP]) * 0.9)
    return _to_u8(_over(paper, (10, 10, 10), np.clip(ink, 0, 1)))


def neon(c: Ctx) -> np.ndarray:
    """Glowing neon tubes on a near-black wall: dark fills, crisp bright lines with a coloured halo."""
    r = c.rng
    table = lambda role, i, k: _roles_colours(
        i, (40, 25, 60), (20, 10, 40), (0, 255, 200), (15, 15, 35), white=(30, 30, 60),
        lips=(255, 40, 160), dark=(5, 5, 15))[role]
    lut = c.lut(table)
    lut[0] = (8, 8, 22)
    img = c.fill(lut)
    wall = (np.sin(c.yy * 0.35) > 0.96).astype(np.float32) * 10
    img += (wall * c.mask([BG]))[..., None]
    colours = [(0, 255, 240), (255, 0, 200), (120, 255, 0), (255, 200, 0)]
    a = int(r.integers(4))
    line = c.edges(3)
    col = np.array(colours[a], np.float32)
    glow = ndimage.gaussian_filter(line, 4) * 2.2
    img += glow[..., None] * col * 0.6
    img = _over(img, _mix(col, (255, 255, 255), 0.45), line)
    return _to_u8(img)


STYLES = {
    "flat_cartoon": flat_cartoon,
    "pencil_sketch": pencil_sketch,
    "watercolour": watercolour,
    "painterly": painterly,
    "popart_posterised": popart_posterised,
    "halftone": halftone,
    "pixel_art": pixel_art,
    "ink_outline": ink_outline,
    "neon": neon,
}
STYLE_NAMES = list(STYLES)


# --- the natural-face look (FFHQ stand-in) -------------------------------------------------------

def photo(c: Ctx) -> np.ndarray:
    """Photo-like: realistic skin tones, smooth ellipsoid lighting, strand-textured hair, soft focus
    background with bokeh, catch-lights in the eyes, mild sensor noise."""
    r = c.rng
    clothes = _clothes(r, [(60, 70, 90), (150, 40, 50), (210, 210, 200), (40, 90, 60), (120, 100, 80)])

    def table(role, i, k):
        skin = SKIN_RGB[i["skin"]] + np.array(i["skin_jitter"])
        return _roles_colours(i, skin, HAIR_RGB[i["hair_colour"]], EYE_RGB[i["eye_colour"]], clothes,
                              white=(232, 226, 220), lips=_mix(skin, (170, 60, 70), 0.45),
                              blush=_mix(skin, (220, 120, 120), 0.12), nose=skin * 0.93,
                              dark=(20, 12, 12))[role]
    img = c.fill(c.lut(table))
    img *= c.shading(ambient=0.5)[..., None]
    hair = c.mask(HAIR_ROLES)
    strands = ndimage.uniform_filter1d(r.standard_normal((c.h, c.w), dtype=np.float32), 9, axis=0)
    strands = (strands - strands.mean()) / (strands.std() + 1e-6)
    img *= (1 + 0.12 * strands * hair)[..., None]
    # soft-focus background: gradient + a few bokeh blobs
    gh, gw = max(8, c.h // 8), max(8, c.w // 8)  # built small, then upscaled: it is out of focus
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    top, bot = r.uniform(60, 200, 3), r.uniform(40, 180, 3)
    t = (yy / gh)[..., None]
    small = top * (1 - t) + bot * t
    for _ in range(int(r.integers(3, 7))):
        cx, cy, rad = r.uniform(0, gw), r.uniform(0, gh), r.uniform(2.5, 9)
        blob = np.clip(1 - np.hypot(xx - cx, yy - cy) / rad, 0, 1) ** 0.7
        small = small + (blob * r.uniform(20, 60))[..., None]
    bgimg = np.asarray(Image.fromarray(_to_u8(small)).resize((c.w, c.h), Image.BICUBIC), np.float32)
    bgm = c.mask([BG])[..., None]
    img = img * (1 - bgm) + bgimg * bgm
    img += (c.grain(2.5) * c.mask(SKIN_ROLES))[..., None]  # skin texture, softened with the rest
    im = Image.fromarray(_to_u8(img)).filter(ImageFilter.GaussianBlur(0.6))
    # catch-lights
    draw = ImageDraw.Draw(im)
    for ident, pose in c.scene.faces:
        ri = min(ident["eye_r"] * ident["eye_aspect"] * 0.95, ident["eye_r"] * 0.6) * pose["scale"]
        for sx in (-1, 1):
            x, y = transform(np.array([[sx * ident["eye_sep"] / 2 - 0.3 * ri / pose["scale"],
                                        ident["eye_y"] - 0.3 * ri / pose["scale"]]]), pose)[0]
            rr = max(0.8, ri * 0.22)
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), fill=(250, 250, 250))
    img = np.asarray(im, np.float32) + c.grain(2.0)[..., None]
    return _to_u8(img)


def render(style: str, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 (h, w, 3) of `scene` in `style` ("photo" for the natural-face set)."""
    ctx = Ctx(scene, render_labels(scene), rng)
    return photo(ctx) if style == "photo" else STYLES[style](ctx)
