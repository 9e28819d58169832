"""Evaluation sample sets, drawn once from the checkpoints and shared by every metric.

    python -m workflow.evaluate.samples --blendgan G.pt [--style-encoder E.pt] --style-lmdb A \
        --n 32 --diversity-faces 4 --diversity-styles 6 --out samples.npz

One set of face codes z_f is used for all three sets, so natural image k and its stylisations k
show the same face (content preservation compares them):
- natural:   G(z_f, i = 18)
- latent:    G(z_f, z_s ~ N(0, I), i)                (latent-guided)
- reference: G(z_f, E_style(AAHQ image r_k), i)      (reference-guided; references stored)
- diversity: F faces x S latent styles at i.
Images are stored as 8-bit arrays (N, H, W, 3), like image files, at most --max-size pixels
(default 256: FID is then computed at 256 on both sides, since reals are read at the stored size).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .common import face_codes, lmdb_images, load_models, pick_device, to_uint8


MAX_SIZE = 256  # stored side; larger outputs are area-downsampled (50k images at 1024 would be 157 GB)


def shrink(images: torch.Tensor, max_size: int | None) -> torch.Tensor:
    if max_size and images.shape[-1] > max_size:
        images = F.interpolate(images, size=(max_size, max_size), mode="area")
    return images


@torch.no_grad()
def _gen(g, z_face, z_style, indicator, truncation, batch=16, max_size=MAX_SIZE):
    outs = []
    for i in range(0, len(z_face), batch):
        zs = None if z_style is None else z_style[i:i + batch]
        out = g.generate(z_face[i:i + batch], zs, indicator=indicator, truncation=truncation)
        outs.append(to_uint8(shrink(out, max_size)))
    return np.concatenate(outs)


@torch.no_grad()
def draw(models: dict, style_lmdb, n=32, diversity_faces=4, diversity_styles=6, indicator=6,
         truncation=1.0, seed=0, device="cpu", max_size=MAX_SIZE) -> dict:
    g, enc = models["generator"], models["style_encoder"]
    dim, res = g.style_dim, g.resolution
    z_face = face_codes(n, dim, seed).to(device)
    z_style = face_codes(n, dim, seed + 1).to(device)
    out = {"indicator": np.int64(indicator), "truncation": np.float64(truncation), "seed": np.int64(seed)}
    out["natural"] = _gen(g, z_face, None, 18, truncation, max_size=max_size)
    out["latent"] = _gen(g, z_face, z_style, indicator, truncation, max_size=max_size)
    if enc is not None:
        refs, names, idx = lmdb_images(style_lmdb, res, n, seed)
        reps = (n + len(refs) - 1) // max(1, len(refs))
        refs = refs.repeat(reps, 1, 1, 1)[:n]
        idx = (idx * reps)[:n]
        codes = torch.cat([enc(refs[i:i + 32].to(device)) for i in range(0, n, 32)])
        out["reference"] = _gen(g, z_face, codes, indicator, truncation, max_size=max_size)
        out["references"] = to_uint8(shrink(refs, max_size))
        out["reference_index"] = np.asarray(idx)
    zf = face_codes(diversity_faces, dim, seed + 2).to(device)
    zs = face_codes(diversity_styles, dim, seed + 3).to(device)
    div = [_gen(g, zf[f:f + 1].expand(diversity_styles, -1), zs, indicator, truncation,
                max_size=max_size) for f in range(diversity_faces)]
    out["diversity"] = np.stack(div)
    out["diversity_natural"] = _gen(g, zf, None, 18, truncation, max_size=max_size)
    return out


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
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    models = load_models(a.blendgan, a.style_encoder, device=device)
    data = draw(models, a.style_lmdb, a.n, a.diversity_faces, a.diversity_styles, a.indicator,
                a.truncation, a.seed, device, a.max_size)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez_compressed(tmp, **data)
    tmp.replace(out)
    print({k: v.shape for k, v in data.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
