"""Defect planting and file encoding for the demo data.

`plan_dataset` decides, from (seed, dataset) alone, which image index carries which defect
(no_face, tiny_face, blur, duplicate_exact, duplicate_near, corrupt, truncated, oversized,
two_faces), which clean images are written in an odd PIL mode (RGBA, L, CMYK, I;16, P: not defects,
the pipeline must accept them) and which clean image each duplicate copies. Counts are exact:
round(rate * n), at least one of each kind once n >= 40 so that small runs exercise everything.
The other helpers encode an RGB array in a given mode/format, make near duplicates, truncated and
corrupt files, and the oversized image. Every file is written to a temporary name and renamed.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from .identity import rng_for

DEFECTS = ("no_face", "tiny_face", "blur", "duplicate_exact", "duplicate_near", "corrupt",
           "truncated", "two_faces", "oversized")
RATES = {  # fraction of the dataset; "oversized" is a count
    "style": {"no_face": 0.03, "tiny_face": 0.03, "blur": 0.03, "duplicate_exact": 0.02,
              "duplicate_near": 0.02, "corrupt": 0.01, "truncated": 0.01, "two_faces": 0.01,
              "oversized": 1},
    "face": {"no_face": 0.015, "tiny_face": 0.015, "blur": 0.015, "duplicate_exact": 0.01,
             "duplicate_near": 0.01, "corrupt": 0.005, "truncated": 0.005, "two_faces": 0.005,
             "oversized": 1},
}
ODD_MODE_RATE = {"style": 0.05, "face": 0.025}
ODD_MODES = ("RGBA", "L", "CMYK", "I;16", "P")
DATASET_ID = {"style": 1, "face": 2}
OVERSIZED_WH = (12000, 9000)


def planted_counts(dataset: str, n: int) -> dict:
    counts = {}
    for d, rate in RATES[dataset].items():
        c = int(rate) if d == "oversized" else int(round(rate * n))
        if n >= 40:
            c = max(c, 1)
        counts[d] = c if n >= 10 else 0
    return counts


def plan_dataset(seed: int, dataset: str, n: int) -> list[dict]:
    """Per index: {"defect", "mode", "format", "source"} (source: the index a duplicate copies)."""
    rng = rng_for(seed, DATASET_ID[dataset], 1_000_003)
    order = list(rng.permutation(n))
    plan = [{"defect": None, "mode": "RGB", "format": None, "source": None} for _ in range(n)]
    for d, c in planted_counts(dataset, n).items():
        for _ in range(c):
            plan[order.pop()]["defect"] = d
    n_odd = int(round(ODD_MODE_RATE[dataset] * n))
    if n >= 40:
        n_odd = max(n_odd, len(ODD_MODES))
    for j in range(min(n_odd, len(order))):
        plan[order.pop()]["mode"] = ODD_MODES[j % len(ODD_MODES)]
    clean_rgb = sorted(order)  # untouched: clean RGB images, the sources of duplicates
    for i, p in enumerate(plan):
        if p["defect"] in ("duplicate_exact", "duplicate_near"):
            p["source"] = int(clean_rgb[int(rng.integers(len(clean_rgb)))]) if clean_rgb else None
            if p["source"] is None:
                p["defect"] = None
    for i, p in enumerate(plan):  # file format: odd modes need a format that holds them
        m = p["mode"]
        if p["defect"] == "duplicate_near":
            p["format"] = "JPEG"
        elif p["defect"] == "oversized":
            p["format"], p["mode"] = "PNG", "P"
        elif m in ("RGBA", "I;16", "P"):
            p["format"] = "PNG"
        elif m == "CMYK":
            p["format"] = "JPEG"
        else:
            p["format"] = "PNG" if rng.random() < 0.4 else "JPEG"
    return plan


EXT = {"PNG": ".png", "JPEG": ".jpg"}


def to_mode(rgb: np.ndarray, mode: str, rng: np.random.Generator) -> Image.Image:
    """The RGB array as a PIL image in `mode` (what a scrape really contains)."""
    im = Image.fromarray(rgb, "RGB")
    if mode == "RGB":
        return im
    if mode == "RGBA":  # a cut-out with a soft transparent border; RGB underneath is intact
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        d = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy))
        alpha = np.clip(d * (255 / max(4, 0.06 * min(h, w))), 0, 255).astype(np.uint8)
        im = im.convert("RGBA")
        im.putalpha(Image.fromarray(alpha, "L"))
        return im
    if mode == "L":
        return im.convert("L")
    if mode == "CMYK":
        return im.convert("CMYK")
    if mode == "I;16":
        grey = np.asarray(im.convert("L"), np.uint16) * np.uint16(257)
        return Image.fromarray(grey.astype("<u2"))
    if mode == "P":
        return im.quantize(256, method=Image.Quantize.MEDIANCUT)
    raise ValueError(f"unknown mode {mode}")


def encode(im: Image.Image, fmt: str, rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=int(rng.integers(85, 98)))
    else:
        im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(len(data) * rng.uniform(0.4, 0.7))]


def corrupt_bytes(ext: str, rng: np.random.Generator) -> bytes:
    """Random bytes; half of them behind a real PNG/JPEG signature, so only decoding can tell."""
    body = rng.integers(0, 256, int(rng.integers(2_000, 60_000)), dtype=np.uint8).tobytes()
    if rng.random() < 0.5:
        body = (b"\x89PNG\r\n\x1a\n" if ext == ".png" else b"\xff\xd8\xff\xe0") + body
    return body


def near_duplicate(data: bytes, rng: np.random.Generator) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """Downscale to 60-85 % and re-encode as JPEG q 80-90: (bytes, old size, new size)."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    f = rng.uniform(0.60, 0.85)
    size = (max(1, int(round(im.width * f))), max(1, int(round(im.height * f))))
    small = im.resize(size, Image.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=int(rng.integers(80, 91)))
    return buf.getvalue(), im.size, size


def rescale_point(p, old, new):
    """A point in pixel-index convention under a resize from `old` to `new` (w, h)."""
    return [round((p[0] + 0.5) * new[0] / old[0] - 0.5, 2), round((p[1] + 0.5) * new[1] / old[1] - 0.5, 2)]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def oversized(tile: np.ndarray, rng: np.random.Generator) -> tuple[bytes, tuple[int, int]]:
    """A 12000x9000 palette PNG of a flat colour with `tile` pasted in: (bytes, tile offset).

    Streamed row block by row block into zlib, so the 108 MP image never exists in memory."""
    tp = Image.fromarray(tile, "RGB").quantize(255, method=Image.Quantize.MEDIANCUT)
    pal = (tp.getpalette() or [])[: 255 * 3]
    pal += [0] * (255 * 3 - len(pal)) + [int(v) for v in tile[0, 0]]  # index 255: the flat colour
    idx = np.asarray(tp, np.uint8)
    W, H = OVERSIZED_WH
    th, tw = idx.shape
    ox, oy = int(rng.integers(0, W - tw)), int(rng.integers(0, H - th))
    flat = b"\x00" + b"\xff" * W  # filter byte 0 + one row of index 255
    z = zlib.compressobj(2)
    parts = []
    block = flat * 256
    y = 0
    while y < H:
        if oy <= y < oy + th:
            rows = np.full((th, W + 1), 255, np.uint8)
            rows[:, 0] = 0
            rows[:, 1 + ox:1 + ox + tw] = idx
            parts.append(z.compress(rows.tobytes()))
            y += th
        else:
            n = min(256, H - y, (oy - y) if y < oy else H - y)
            parts.append(z.compress(block if n == 256 else flat * n))
            y += n
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 3, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"PLTE", bytes(pal))
            + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""))
    return data, (ox, oy)
