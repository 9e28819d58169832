"""The supplement's figures from checkpoints alone (PNG; the animation as GIF).

    python -m workflow.evaluate.figures FIGURE --blendgan G.pt [--style-encoder E.pt] \
        [--psp P.pt] [--finetune F.pt] [--gram-blendgan GG.pt] --style-lmdb A --face-lmdb F \
        --out fig.png

FIGURE (supplement numbering):
  latent_transfer      Fig. 2: real faces (FFHQ) -> pSp -> latent-guided styles
  reference_transfer   Fig. 3: real faces -> pSp -> styles of AAHQ references (top row)
  ablation             Fig. 4: the Gram-embedding BlendGAN (--gram-blendgan; left) against the
                       learned-encoder one (right): same face codes and references, i = 0
  ablation_retrieval   the two embeddings themselves: nearest AAHQ images of each query
  oneshot              Fig. 5: one-shot fine-tuning: the reference, the base model and the
                       fine-tuned model on the same faces
  latent_grid          Fig. 6: random faces x random latent styles
  reference_grid       Fig. 7: random faces x AAHQ references
  indicator_sweep      i = 0..18 for a few faces, one style each
  interpolation        looping style interpolation (GIF) and a strip of its frames (PNG)
Faces and references are seeded subsets; the first column is always the input / natural face.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.checkpoint import load_checkpoint, load_generator
from models.images import load_image
from workflow.sampling import (face_codes, grid, interpolation_frames, latent_styles, load_models,
                               pick_device, save_png, stylise, write_animation)

from .common import lmdb_images
from .finetune_reference import tuned_reference
from .gram_ablation import gram_embedder, pick_references, stylised_outputs

FIGURES = ("latent_transfer", "reference_transfer", "ablation", "ablation_retrieval", "oneshot",
           "latent_grid", "reference_grid", "indicator_sweep", "interpolation")


@torch.no_grad()
def invert_batch(models, images):
    psp, g = models["psp"], models["generator"]
    if psp is None:
        raise SystemExit("this figure needs --psp")
    w = psp(images)
    return w, stylise(g, None, 18, w_face=w)


def _device(models):
    return next(models["generator"].parameters()).device


def _refs(args, g, n, offset=0):
    images, names, idx = lmdb_images(args.style_lmdb, g.resolution, n, args.seed + 11 + offset)
    return images.to(next(g.parameters()).device)


@torch.no_grad()
def fig_transfer(args, models, reference: bool):
    g, enc = models["generator"], models["style_encoder"]
    faces, _, _ = lmdb_images(args.face_lmdb, max(g.resolution, models["psp"].input_size if models["psp"] else 0),
                              args.faces, args.seed)
    w, recon = invert_batch(models, faces.to(_device(models)))
    if reference:
        refs = _refs(args, g, args.styles)
        codes = enc(refs)
    else:
        codes = latent_styles(g, args.styles, args.seed, _device(models))
    rows = [[None, None] + list(refs)] if reference else []
    for f in range(len(faces)):
        out = stylise(g, codes, args.indicator, w_face=w[f:f + 1].expand(len(codes), -1, -1))
        rows.append([faces[f], recon[f]] + list(out))
    labels = ["input", "pSp"] + [f"style {k + 1}" for k in range(len(codes))]
    return grid(rows, args.cell, col_labels=labels)


@torch.no_grad()
def fig_grid(args, models, reference: bool):
    g, enc = models["generator"], models["style_encoder"]
    z = face_codes(args.faces, g.style_dim, args.seed).to(_device(models))
    natural = g.generate(z, None, 18, args.truncation)
    if reference:
        refs = _refs(args, g, args.styles, offset=1)
        codes = enc(refs)
        rows = [[None] + list(refs)]
    else:
        codes = latent_styles(g, args.styles, args.seed, _device(models))
        rows = []
    for f in range(len(z)):
        out = stylise(g, codes, args.indicator, args.truncation, z[f:f + 1].expand(len(codes), -1))
        rows.append([natural[f]] + list(out))
    return grid(rows, args.cell)


@torch.no_grad()
def fig_ablation(args, models):
    """Supplement Fig. 4: rows = face codes; per generator its natural face (i = 18), then one
    output per reference at i = 0. Left the Gram-embedding generator, right the learned one."""
    if not args.gram_blendgan:
        raise SystemExit("ablation needs --gram-blendgan (a BlendGAN trained with "
                         "style_embedding: gram); the retrieval panel is ablation_retrieval")
    g, enc = models["generator"], models["style_encoder"]
    g_gram = load_generator(args.gram_blendgan).to(_device(models))
    refs, _ = pick_references(args.style_lmdb, g.resolution, args.styles, args.seed + 11, args.truth)
    z = face_codes(args.faces, g.style_dim, args.seed)
    if enc is None:
        raise SystemExit("--blendgan embeds no style encoder: pass --style-encoder")
    (nat_a, out_a), (nat_b, out_b) = [stylised_outputs(gen, embed, z, refs, args.truncation)
                                      for gen, embed in ((g_gram, gram_embedder(g_gram)), (g, enc))]
    gap = [None]  # an empty column between the two panels
    rows = [[None] + list(refs) + gap + [None] + list(refs)]
    for f in range(args.faces):
        rows.append([nat_a[f]] + list(out_a[f]) + gap + [nat_b[f]] + list(out_b[f]))
    n = len(refs)
    labels = (["Gram i=18"] + [f"i=0 r{k + 1}" for k in range(n)] + [""]
              + ["E_style i=18"] + [f"i=0 r{k + 1}" for k in range(n)])
    return grid(rows, args.cell, col_labels=labels)


@torch.no_grad()
def fig_ablation_retrieval(args, models, k: int = 5, pool: int = 400):
    """Nearest AAHQ images of each query by cosine similarity, learned code vs Gram vector."""
    enc = models["style_encoder"]
    res = int(enc.init_kwargs.get("pool_size") or 256)
    images, _, _ = lmdb_images(args.style_lmdb, res, pool, args.seed)
    images = images.to(_device(models))
    gram = torch.cat([enc.gram(images[i:i + 64]) for i in range(0, len(images), 64)])
    learned = torch.cat([enc.mlp(gram[i:i + 64]) for i in range(0, len(gram), 64)])
    rows = []
    queries = np.random.default_rng(args.seed).choice(len(images), min(args.faces, len(images)), replace=False)
    for q in queries:
        row = [images[q]]
        for emb in (learned, gram):
            e = F.normalize(emb.float(), dim=1)
            sim = e @ e[q]
            sim[q] = -2
            row += [images[j] for j in sim.topk(k).indices.tolist()]
        rows.append(row)
    labels = ["query"] + [f"E_style {i + 1}" for i in range(k)] + [f"Gram {i + 1}" for i in range(k)]
    return grid(rows, args.cell, col_labels=labels)


def finetune_reference(args, g):
    """The fine-tuning reference: --reference, else the pixels stored in the fine-tune checkpoint
    (the ones finetune_probe.json measured), else the file or LMDB index its config names."""
    if args.reference:
        return load_image(args.reference, g.resolution)[None]
    ck = load_checkpoint(args.finetune, build=False)
    if "reference_image" in ck["extra"]:
        return tuned_reference(args.finetune, g.resolution)
    cfg = ck.get("config") or {}
    if cfg.get("reference"):
        return load_image(cfg["reference"], g.resolution)[None]
    index = int(cfg.get("reference_index", 0))
    images, _, _ = lmdb_images(args.style_lmdb, g.resolution, indices=[index])
    return images


@torch.no_grad()
def fig_oneshot(args, models):
    if not args.finetune:
        raise SystemExit("oneshot needs --finetune")
    g, enc = models["generator"], models["style_encoder"]
    tuned = load_generator(args.finetune)
    tuned = tuned.to(_device(models))
    ref = finetune_reference(args, g).to(_device(models))
    code = enc(ref).expand(args.faces, -1)
    z = face_codes(args.faces, g.style_dim, args.seed).to(_device(models))
    natural = g.generate(z, None, 18, args.truncation)
    base = stylise(g, code, args.indicator, args.truncation, z)
    ft = stylise(tuned, code, args.indicator, args.truncation, z)
    rows = [[ref[0]] + list(natural), [None] + list(base), [None] + list(ft)]
    return grid(rows, args.cell, row_labels=["natural", "base model", "fine-tuned"],
                col_labels=["reference"] + [f"face {k + 1}" for k in range(args.faces)])


@torch.no_grad()
def fig_sweep(args, models):
    g = models["generator"]
    z = face_codes(args.faces, g.style_dim, args.seed).to(_device(models))
    codes = latent_styles(g, args.faces, args.seed, _device(models))
    rows = []
    for f in range(args.faces):
        out = stylise(g, codes[f:f + 1].expand(19, -1), torch.arange(19, device=_device(models)), args.truncation,
                      z[f:f + 1].expand(19, -1))
        rows.append(list(out))
    return grid(rows, args.cell, col_labels=[f"i={i}" for i in range(19)])


@torch.no_grad()
def fig_interpolation(args, models):
    g = models["generator"]
    z = face_codes(1, g.style_dim, args.seed).to(_device(models))
    codes = latent_styles(g, max(2, args.styles), args.seed, _device(models))
    frames = interpolation_frames(g, z, codes, 7, args.truncation, args.frames)
    gif = Path(args.out).with_suffix(".gif") if args.gif is None else Path(args.gif)
    write_animation(frames, gif, fps=12, size=max(128, g.resolution))
    step = max(1, len(frames) // 12)
    return grid([frames[::step]], args.cell)


def make(args, models):
    name = args.figure
    if name in ("latent_transfer", "reference_transfer"):
        return fig_transfer(args, models, name == "reference_transfer")
    if name in ("latent_grid", "reference_grid"):
        return fig_grid(args, models, name == "reference_grid")
    return {"ablation": fig_ablation, "ablation_retrieval": fig_ablation_retrieval,
            "oneshot": fig_oneshot, "indicator_sweep": fig_sweep,
            "interpolation": fig_interpolation}[name](args, models)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=FIGURES + ("all",), help="one figure, or all of them (--out-dir)")
    p.add_argument("--blendgan", required=True)
    p.add_argument("--style-encoder", default=None)
    p.add_argument("--psp", default=None)
    p.add_argument("--finetune", default=None)
    p.add_argument("--gram-blendgan", default=None, help="Gram-embedding BlendGAN (ablation, Fig. 4)")
    p.add_argument("--truth", default=None, help="demo truth: Fig. 4 references of distinct identities")
    p.add_argument("--reference", default=None, help="fine-tuning reference image (oneshot)")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--face-lmdb", default=None)
    p.add_argument("--faces", type=int, default=4)
    p.add_argument("--styles", type=int, default=5)
    p.add_argument("--frames", type=int, default=12, help="interpolation frames per style pair")
    p.add_argument("--indicator", type=int, default=6)
    p.add_argument("--truncation", type=float, default=0.75)
    p.add_argument("--cell", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--gif", default=None, help="interpolation: GIF path (default: beside --out)")
    p.add_argument("--out", default=None, help="PNG of one figure")
    p.add_argument("--out-dir", default=None, help="with 'all': DIR/<figure>.png (+ interpolation.gif)")
    p.add_argument("--skip", nargs="*", default=[], help="with 'all': figures to leave out")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    models = load_models(a.blendgan, a.style_encoder, a.psp, pick_device(a.device))
    if a.figure != "all":
        if not a.out:
            p.error("--out is required for one figure")
        save_png(make(a, models), a.out)
        print(a.out)
        return 0
    if not a.out_dir:
        p.error("'all' needs --out-dir")
    for name in FIGURES:
        if name in a.skip:
            continue
        if name == "ablation" and not a.gram_blendgan:
            print("ablation (Fig. 4) left out: no --gram-blendgan (a BlendGAN trained with "
                  "style_embedding: gram)", file=sys.stderr)
            continue
        a.figure, a.out = name, str(Path(a.out_dir) / f"{name}.png")
        a.gif = str(Path(a.out_dir) / "interpolation.gif")
        save_png(make(a, models), a.out)
        print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
