"""Stylised faces from checkpoints alone: what the user CLI (workflow.generate), the web page
(workflow.web) and the evaluation (workflow.evaluate: metrics and figures) share.

Networks come from checkpoint files (no training config); faces are face codes z_f or pSp's W+;
styles are latent-guided draws z_s or reference codes E_style(image); outputs are tensors in
[-1, 1], turned into pixels, grids, PNG files and animations here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from basics.files import atomic_output


# ------------------------------------------------------------------------------- networks
def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_models(blendgan, style_encoder=None, psp=None, device="cpu") -> dict:
    """Networks from checkpoints alone: the generator, E_style (its own file, else the one the
    generator embeds), and pSp when given."""
    from models.checkpoint import load_generator, load_psp_encoder, load_style_encoder
    out = {"generator": load_generator(blendgan).to(device)}
    if style_encoder:
        out["style_encoder"] = load_style_encoder(style_encoder).to(device)
    elif out["generator"].embedder is not None:
        out["style_encoder"] = out["generator"].embedder
    else:
        out["style_encoder"] = None
    out["psp"] = load_psp_encoder(psp).to(device) if psp else None
    return out


# ---------------------------------------------------------------------------------- codes
def face_codes(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def latent_style_codes(g, n: int, seed: int) -> torch.Tensor:
    """n latent-guided z_s, drawn as g was trained on them (N(0, I) or its encoder's Gaussian)."""
    return g.latent_style_codes(face_codes(n, g.style_dim, seed))


def latent_styles(g, n: int, seed: int, device) -> torch.Tensor:
    """The latent styles a user's ``--seed`` draws (offset, so they differ from its faces)."""
    return latent_style_codes(g, n, seed + 1000).to(device)


@torch.no_grad()
def style_codes(models: dict, images: torch.Tensor) -> torch.Tensor:
    """Reference-guided z_s: E_style of (N, 3, R, R) images in [-1, 1]."""
    enc = models["style_encoder"]
    if enc is None:
        raise SystemExit("this generator embeds no style encoder: pass --style-encoder E.pt")
    return enc(images.to(next(enc.parameters()).device))


@torch.no_grad()
def invert(models: dict, photo: Image.Image) -> torch.Tensor:
    """pSp: aligned crop -> W+ (1, L, D)."""
    psp = models["psp"]
    if psp is None:
        raise SystemExit("transfer needs --psp P.pt")
    size = max(psp.input_size, models["generator"].resolution)
    x = torch.from_numpy(np.asarray(photo.convert("RGB").resize((size, size), Image.LANCZOS),
                                    dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    return psp(x.to(next(psp.parameters()).device))


# ------------------------------------------------------------------------------- outputs
@torch.no_grad()
def stylise(g, z_style, indicator, truncation=0.75, z_face=None, w_face=None) -> torch.Tensor:
    """G(face, z_s, i) with constant noise; face from z_face (N, D) or W+ w_face (N, L, D)."""
    if w_face is not None:
        img = g(w_face=w_face, z_style=z_style, indicator=indicator, randomize_noise=False)
        return img.clamp(-1, 1)
    return g.generate(z_face, z_style, indicator=indicator, truncation=truncation)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def interpolation_frames(g, z_face, codes, indicator, truncation, frames_per_pair, w_face=None):
    """Frames along slerp paths z_s[0] -> z_s[1] -> ... -> z_s[0] (a loop)."""
    frames = []
    n = len(codes)
    for k in range(n):
        a, b = codes[k:k + 1], codes[(k + 1) % n:(k + 1) % n + 1]
        for t in np.linspace(0, 1, frames_per_pair, endpoint=False):
            frames.append(stylise(g, slerp(a, b, float(t)), indicator, truncation, z_face, w_face)[0])
    return frames


# -------------------------------------------------------------------------------- pixels
def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(image.unsqueeze(0))[0])


def grid(rows: list[list], cell: int, pad: int = 2, bg=(255, 255, 255),
         row_labels: list[str] | None = None, col_labels: list[str] | None = None) -> Image.Image:
    """Paste images (tensors in [-1, 1], PIL images or None) into a labelled grid."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    left = 8 + 7 * max((len(s) for s in row_labels), default=0) if row_labels else 0
    top = 14 if col_labels else 0
    W = left + n_cols * (cell + pad) + pad
    H = top + n_rows * (cell + pad) + pad
    canvas = Image.new("RGB", (W, H), bg)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            if img is None:
                continue
            if torch.is_tensor(img):
                img = to_pil(img)
            img = img.convert("RGB").resize((cell, cell), Image.LANCZOS)
            canvas.paste(img, (left + pad + c * (cell + pad), top + pad + r * (cell + pad)))
        if row_labels:
            draw.text((4, top + pad + r * (cell + pad) + cell // 2 - 5), row_labels[r], fill=(0, 0, 0))
    if col_labels:
        for c, s in enumerate(col_labels):
            draw.text((left + pad + c * (cell + pad) + 2, 1), s, fill=(0, 0, 0))
    return canvas


def save_png(image: Image.Image, path) -> None:
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


def write_animation(frames, out, fps: int = 12, size: int | None = None):
    """Frames (tensors in [-1, 1]) -> a looping GIF, or an MP4 (needs imageio-ffmpeg)."""
    images = [to_pil(f) for f in frames]
    if size:
        images = [im.resize((size, size), Image.LANCZOS) for im in images]
    out = Path(out)
    if out.suffix.lower() == ".mp4":
        import imageio.v2 as imageio
        # ffmpeg picks the container from the file name: no temporary name for this one
        out.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimwrite(out, [np.asarray(im) for im in images], fps=fps)
        return
    with atomic_output(out) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
