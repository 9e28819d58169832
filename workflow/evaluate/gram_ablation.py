"""The draws of the Gram-embedding ablation (supplement D) that its metric (ablation.py) and its
figure (figures.py ablation, supplement Figure 4) share: the same references and the outputs of
either generator at i = 0 (every layer styled), where the supplement shows the leakage.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import lmdb_images
from .ground_truth import truth_labels

INDICATOR = 0  # every layer styled: where the supplement shows the leakage


def pick_references(style_lmdb, resolution: int, n: int, seed: int, truth=None):
    """n AAHQ images (seeded); with the demo truth, n with distinct identities."""
    images, names, _ = lmdb_images(style_lmdb, resolution, None if truth else n, seed)
    if truth:
        ident = {name: rec["identity"] for name, rec in truth_labels(truth).items()}
        order = np.random.default_rng(seed).permutation(len(names))
        keep, seen = [], set()
        for i in order:
            key = ident.get(names[i], f"unknown:{names[i]}")
            if key not in seen:
                seen.add(key)
                keep.append(int(i))
            if len(keep) == n:
                break
        images, names = images[keep], [names[i] for i in keep]
    return images, names


@torch.no_grad()
def stylised_outputs(g, embed, z, refs, truncation: float):
    """Natural faces (F, 3, R, R) and outputs at i = 0 (F, R', 3, R, R) of one generator."""
    dev = next(g.parameters()).device
    z, refs = z.to(dev), refs.to(dev)
    codes = embed(refs)
    natural = g.generate(z, None, 18, truncation)
    out = torch.stack([g.generate(z[f:f + 1].expand(len(refs), -1), codes, INDICATOR, truncation)
                       for f in range(len(z))])
    return natural, out


def gram_embedder(g):
    if g.embedder is None or getattr(g, "style_embedding", "encoder") != "gram":
        raise SystemExit("--gram-blendgan must be a Gram-embedding BlendGAN (style_embedding: gram, "
                         "trained by train_blendgan with model=blendgan_gram)")
    return g.embedder
