"""Synthetic image LMDBs with known structure, for the training tests and the benchmarks.

Each image has a style (palette and texture strength, ``i % styles``) and an identity (the
position of a disc, ``i % 4``), so probes have ground truth; the LMDB is packed by the real
packer (``workflow.dataset.pack.pack_lmdb``), so trainers read it like a prepared dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from workflow.dataset.pack import pack_lmdb

PALETTES = [((200, 40, 40), (250, 220, 200)), ((30, 60, 200), (20, 20, 40)),
            ((40, 160, 60), (240, 240, 120))]


def make_lmdb(root: Path, n: int = 24, size: int = 32, seed: int = 0, styles: int = 3):
    """Images whose style (palette + texture) is i % styles and identity (disc position) is
    i % 4; returns (lmdb path, truth dict in the demo's schema)."""
    rng = np.random.default_rng(seed)
    img_dir = root / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    names, truth = [], {}
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        style, ident = i % styles, i % 4
        bg, fg = (np.array(c, float) for c in PALETTES[style % len(PALETTES)])
        cx, cy = size * (0.35 + 0.1 * (ident % 2)), size * (0.35 + 0.1 * (ident // 2))
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < (size * 0.25) ** 2
        arr = np.where(mask[..., None], fg, bg) + rng.normal(0, 12 * (style + 1), (size, size, 3))
        name = f"img_{i:03d}.png"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(img_dir / name)
        names.append(name)
        truth[name] = {"identity": ident, "style": f"s{style}", "defect": None}
    out = root / "lmdb"
    pack_lmdb(names, img_dir, out, [size // 2, size])
    return out, truth
