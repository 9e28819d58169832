"""Stylise faces with trained checkpoints alone (no training config needed); CPU or GPU.

    python -m workflow.generate latent    --blendgan G.pt --faces 4 --styles 4 --out grid.png
    python -m workflow.generate reference --blendgan G.pt --style art1.png art2.png --out grid.png
    python -m workflow.generate transfer  --blendgan G.pt --psp P.pt --photo me.jpg \
                                          --style art1.png --out me_styled.png
    python -m workflow.generate sweep     --blendgan G.pt --style art1.png --out sweep.png
    python -m workflow.generate interpolate --blendgan G.pt --style a.png b.png c.png --out anim.gif

Rows are faces, columns styles; the first column is the natural face (i = 18) (for photos: the
aligned input and its pSp reconstruction), and with --style the first row shows the references. ``--style`` takes image files
(reference-guided, through E_style); without it, styles are drawn as z_s ~ N(0, I)
(latent-guided; ``--styles`` of them, from ``--seed``). ``transfer`` finds the face in a photo
(dlib landmarks), aligns it the FFHQ way, inverts it with pSp and stylises it; ``--aligned``
skips detection for an already-aligned crop. ``--separate DIR`` also writes every output as its
own PNG. Defaults follow the paper's inference: i = 6 (7 for videos), psi = 0.75. The drawing
itself is workflow.sampling's (shared with the web page and the figures); this is its command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.images import load_image
from workflow.sampling import (face_codes, grid, interpolation_frames, invert, latent_styles,
                               load_models, pick_device, save_png, style_codes, stylise, to_pil,
                               write_animation)

DEFAULT_TRUNCATION = 0.75  # the paper's inference psi (method 3.2)


# ---------------------------------------------------------------------------------- inputs
def read_styles(paths, resolution: int) -> torch.Tensor:
    return torch.stack([load_image(p, resolution) for p in paths])


def align_photo(path, size: int, aligned: bool = False) -> Image.Image:
    """Photo -> FFHQ-aligned RGB crop (dlib landmarks + method 2.3 alignment)."""
    from basics.images import load_rgb  # safe decoding (pixel cap)
    img = load_rgb(path)
    if aligned:
        return img.convert("RGB").resize((size, size), Image.LANCZOS)
    from workflow.dataset.align import align_face
    from workflow.dataset.landmarks import DlibDetector
    entry = DlibDetector()(np.asarray(img.convert("RGB")))
    if entry is None:
        raise SystemExit(f"{path}: no face found (dlib); pass --aligned for an aligned crop")
    return align_face(img, entry["landmarks"], size=size)


def default_truncation(g) -> float:
    """The psi a checkpoint stores (as the released scripts adopt it), else the paper's."""
    return g.stored_truncation if g.stored_truncation is not None else DEFAULT_TRUNCATION


# ---------------------------------------------------------------------------------- commands
def _styles(args, models, device):
    g = models["generator"]
    if args.style:
        refs = read_styles(args.style, g.resolution)
        return style_codes(models, refs), list(refs)
    return latent_styles(g, args.styles, args.seed, device), None


def _faces(args, models, device):
    """(z_face or None, w_face or None, natural images, number of faces, aligned crops or None).
    With photos, "natural" is the pSp reconstruction (i = 18)."""
    g = models["generator"]
    if getattr(args, "photo", None):
        crops = [align_photo(p, max(256, g.resolution), args.aligned) for p in args.photo]
        w = torch.cat([invert(models, c) for c in crops])
        natural = stylise(g, None, 18, w_face=w)
        return None, w, natural, len(crops), crops
    z = face_codes(args.faces, g.style_dim, args.seed).to(device)
    return z, None, g.generate(z, None, 18, args.truncation), args.faces, None


def cmd_grid(args, models, device):
    g = models["generator"]
    codes, refs = _styles(args, models, device)
    z, w, natural, n_faces, crops = _faces(args, models, device)
    lead = 1 if crops is None else 2  # photos: the aligned input, then its pSp reconstruction
    rows = [] if refs is None else [[None] * lead + refs]
    outputs = []
    for f in range(n_faces):
        zs = codes
        zf = None if z is None else z[f:f + 1].expand(len(codes), -1)
        wf = None if w is None else w[f:f + 1].expand(len(codes), -1, -1)
        out = stylise(g, zs, args.indicator, args.truncation, zf, wf)
        outputs.append(out)
        rows.append(([] if crops is None else [crops[f]]) + [natural[f]] + list(out))
    save_png(grid(rows, cell=args.cell), args.out)
    if args.separate:
        for f, out in enumerate(outputs):
            for s, img in enumerate(out):
                save_png(to_pil(img), Path(args.separate) / f"face{f:02d}_style{s:02d}.png")
    print(args.out)


def cmd_sweep(args, models, device):
    g = models["generator"]
    codes, _ = _styles(args, models, device)
    z, w, natural, n_faces, _ = _faces(args, models, device)
    rows = []
    for f in range(n_faces):
        zf = None if z is None else z[f:f + 1].expand(19, -1)
        wf = None if w is None else w[f:f + 1].expand(19, -1, -1)
        out = stylise(g, codes[:1].expand(19, -1), torch.arange(19, device=device),
                      args.truncation, zf, wf)
        rows.append(list(out))
    save_png(grid(rows, cell=args.cell, col_labels=[f"i={i}" for i in range(19)]), args.out)
    print(args.out)


def cmd_interpolate(args, models, device):
    g = models["generator"]
    if not args.style and args.styles < 2:
        args.styles = 3
    codes, _ = _styles(args, models, device)
    if len(codes) < 2:
        raise SystemExit("interpolation needs at least two styles")
    z, w, _, _, _ = _faces(args, models, device)
    zf = None if z is None else z[:1]
    wf = None if w is None else w[:1]
    frames = interpolation_frames(g, zf, codes, args.indicator, args.truncation, args.frames, wf)
    write_animation(frames, args.out, args.fps, args.size)
    print(args.out, len(frames), "frames")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m workflow.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, indicator=6, photo=False):
        sp.add_argument("--blendgan", required=True, help="BlendGAN checkpoint (ours, released or rosinality)")
        sp.add_argument("--style-encoder", default=None, help="default: the one inside the generator")
        sp.add_argument("--style", nargs="+", default=None, help="reference style images")
        sp.add_argument("--styles", type=int, default=4, help="latent styles when no --style")
        sp.add_argument("--faces", type=int, default=4, help="random faces (ignored with --photo)")
        sp.add_argument("--indicator", type=int, default=indicator, help="0..18; 18 = natural face")
        sp.add_argument("--truncation", type=float, default=None,
                        help="psi on the face code (default: the checkpoint's stored psi, else "
                             f"{DEFAULT_TRUNCATION})")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        sp.add_argument("--out", required=True)
        sp.add_argument("--cell", type=int, default=128, help="grid cell size in pixels")
        sp.add_argument("--psp", default=None, help="pSp checkpoint (needed with --photo)")
        sp.add_argument("--photo", nargs="+", default=None, required=photo,
                        help="photos to stylise (faces found with dlib, aligned, inverted by pSp)")
        sp.add_argument("--aligned", action="store_true", help="photos are already aligned crops")
        return sp

    for name, helptext in (("latent", "latent-guided grid: faces x random styles"),
                           ("reference", "reference-guided grid: faces x style images"),
                           ("transfer", "style transfer of photos (dlib, align, pSp)")):
        sp = common(sub.add_parser(name, help=helptext), photo=(name == "transfer"))
        sp.add_argument("--separate", default=None, help="also write each output to this folder")
        sp.set_defaults(func=cmd_grid)
    common(sub.add_parser("sweep", help="indicator sweep i = 0..18 for one style")).set_defaults(func=cmd_sweep)
    sp = common(sub.add_parser("interpolate", help="GIF/MP4 looping through styles"), indicator=7)
    sp.add_argument("--frames", type=int, default=24, help="frames between two styles")
    sp.add_argument("--fps", type=int, default=12)
    sp.add_argument("--size", type=int, default=None, help="resize frames to this size")
    sp.set_defaults(func=cmd_interpolate)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "reference" and not args.style:
        raise SystemExit("reference needs --style IMAGE [IMAGE ...]")
    device = pick_device(args.device)
    models = load_models(args.blendgan, args.style_encoder, args.psp, device)
    if args.truncation is None:
        args.truncation = default_truncation(models["generator"])
    args.func(args, models, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
