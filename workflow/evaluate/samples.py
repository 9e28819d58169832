"""Evaluation sample sets, drawn once from the checkpoints and shared by every metric.

    python -m workflow.evaluate.samples --blendgan G.pt [--style-encoder E.pt] --style-lmdb A \
        --n 32 --diversity-faces 4 --diversity-styles 6 --out samples/

One set of face codes z_f is used for all three sets, so natural image k and its stylisations k
show the same face (content preservation compares them):
- natural:   G(z_f, i = 18)
- latent:    G(z_f, z_s ~ N(0, I), i)                (latent-guided; drawn as G was trained)
- reference: G(z_f, E_style(AAHQ image r_k), i)      (reference-guided; references stored)
- diversity: F faces x S latent styles at i.
Images are stored as 8-bit arrays (N, H, W, 3), like image files, at most --max-size pixels
(default 256). FID/KID does not read them: workflow.evaluate.fid draws the same three sets again
from metric_codes() and streams them at full resolution.
The output is a folder of .npy files (workflow.evaluate.sample_sets), written 32 images at a time:
memory does not grow with --n, and a killed run continues from its last chunk when rerun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workflow.sampling import face_codes, latent_style_codes, load_models, pick_device, to_uint8

from .common import GEN_BATCH, lmdb_batches, lmdb_indices, return_freed_memory
from .sample_sets import SampleWriter


MAX_SIZE = 256  # stored side; larger outputs are area-downsampled (50k images at 1024 would be 157 GB)


def shrink(images: torch.Tensor, max_size: int | None) -> torch.Tensor:
    if max_size and images.shape[-1] > max_size:
        images = F.interpolate(images, size=(max_size, max_size), mode="area")
    return images


@torch.no_grad()
def _gen(g, z_face, z_style, indicator, truncation, batch=GEN_BATCH, max_size=MAX_SIZE):
    outs = []
    for i in range(0, len(z_face), batch):
        zs = None if z_style is None else z_style[i:i + batch]
        out = g.generate(z_face[i:i + batch], zs, indicator=indicator, truncation=truncation)
        outs.append(to_uint8(shrink(out, max_size)))
    return np.concatenate(outs)


def metric_codes(g, style_lmdb, n: int, seed: int) -> dict:
    """The codes of the three metric sets, shared with the streamed FID (workflow.evaluate.fid):
    face codes z_f (seed), latent style codes z_s (seed + 1) and n reference positions in the
    style LMDB (a seeded subset, repeated when the set has fewer than n images)."""
    pool = lmdb_indices(style_lmdb, n, seed)
    return {"z_face": face_codes(n, g.style_dim, seed),
            "z_style": latent_style_codes(g, n, seed + 1),
            "picks": [pool[k % len(pool)] for k in range(n)]}


@torch.no_grad()
def draw(models: dict, style_lmdb, out, n=32, diversity_faces=4, diversity_styles=6, indicator=6,
         truncation=1.0, seed=0, device="cpu", max_size=MAX_SIZE, provenance=None) -> dict:
    """Generate every set into the folder ``out``, chunk by chunk; {set: shape}."""
    g, enc = models["generator"], models["style_encoder"]
    dim, res = g.style_dim, g.resolution
    side = min(res, max_size) if max_size else res
    image = (side, side, 3)
    settings = {"n": n, "diversity_faces": diversity_faces, "diversity_styles": diversity_styles,
                "indicator": indicator, "truncation": truncation, "seed": seed, "max_size": max_size,
                "device": str(device), **(provenance or {})}
    writer = SampleWriter(out, settings)
    if writer.resumed_rows():
        print("resuming", writer.resumed_rows())
    writer.set_scalars(indicator=indicator, truncation=truncation, seed=seed)
    codes = metric_codes(g, style_lmdb, n, seed)
    z_face, z_style, picks = codes["z_face"].to(device), codes["z_style"].to(device), codes["picks"]
    writer.fill({"natural": (n, *image)},
                lambda a, b: {"natural": _gen(g, z_face[a:b], None, 18, truncation, max_size=max_size)})
    writer.fill({"latent": (n, *image)}, lambda a, b: {"latent": _gen(
        g, z_face[a:b], z_style[a:b], indicator, truncation, max_size=max_size)})
    if enc is not None:
        def reference_chunk(a, b):
            refs = next(lmdb_batches(style_lmdb, res, picks[a:b], batch=b - a)).to(device)
            out = _gen(g, z_face[a:b], enc(refs), indicator, truncation, max_size=max_size)
            return {"reference": out, "references": to_uint8(shrink(refs, max_size))}
        writer.fill({"reference": (n, *image), "references": (n, *image)}, reference_chunk)
        writer.put("reference_index", np.asarray(picks, dtype=np.int64))
    zf = face_codes(diversity_faces, dim, seed + 2).to(device)
    zs = latent_style_codes(g, diversity_styles, seed + 3).to(device)
    writer.fill({"diversity": (diversity_faces, diversity_styles, *image)},
                lambda f, _: {"diversity": _gen(g, zf[f:f + 1].expand(diversity_styles, -1), zs,
                                                indicator, truncation, max_size=max_size)[None]},
                chunk=1)
    writer.fill({"diversity_natural": (diversity_faces, *image)}, lambda a, b: {
        "diversity_natural": _gen(g, zf[a:b], None, 18, truncation, max_size=max_size)})
    shapes = {k: tuple(v["shape"]) for k, v in writer.manifest["sets"].items()}
    writer.finish()
    return shapes


def fingerprint(path) -> list | None:
    """Identifies an input for the resume check: path, size and modification time."""
    if not path:
        return None
    p = Path(path)
    p = p / "data.mdb" if p.is_dir() else p
    st = p.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blendgan", required=True)
    p.add_argument("--style-encoder", default=None, help="default: the generator's embedded encoder")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--diversity-faces", type=int, default=4)
    p.add_argument("--diversity-styles", type=int, default=6)
    p.add_argument("--indicator", type=int, default=6)
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-size", type=int, default=MAX_SIZE,
                   help="store images at most this large (area downsampling); metrics read reals at the same size")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="output folder (written as OUT.partial, then renamed)")
    a = p.parse_args(argv)
    return_freed_memory()  # batch buffers go back to the system (common.py)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    models = load_models(a.blendgan, a.style_encoder, device=device)
    provenance = {"blendgan": fingerprint(a.blendgan), "style_encoder": fingerprint(a.style_encoder),
                  "style_lmdb": fingerprint(a.style_lmdb)}
    shapes = draw(models, a.style_lmdb, a.out, a.n, a.diversity_faces, a.diversity_styles,
                  a.indicator, a.truncation, a.seed, device, a.max_size, provenance)
    print(shapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
