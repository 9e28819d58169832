"""Small helpers shared by the metrics, figures and the generation CLI."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.train.data import LMDBImages


def write_json(path, obj) -> None:
    """Atomic JSON write (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    if torch.is_tensor(x):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def not_computed(metric: str, reason: str, **record) -> dict:
    """The record of a metric whose network weights (or inputs) are missing: never faked."""
    return {"metric": metric, "computed": False, "reason": reason, **record}


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def return_freed_memory() -> None:
    """Serve allocations of 1 MB and more (a batch of 32 images at 256 is 6 MB as bytes, 25 MB as
    floats) from their own memory maps, given back to the system when freed. By default glibc
    raises that threshold after the first such free and serves later batches from the heap, where
    the small arrays kept between batches (features, codes) pin the freed holes: the resident set
    then grew with the number of batches (measured: 1.26 GB at 1,000 images, 0.67 GB at 250)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # -3: M_MMAP_THRESHOLD (malloc.h)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# ------------------------------------------------------------------------------- images
def lmdb_images(path, resolution: int, n: int | None = None, seed: int = 0,
                indices=None) -> tuple[torch.Tensor, list[str], list[int]]:
    """Up to n images of an LMDB (a seeded random subset), (N, 3, R, R) in [-1, 1]."""
    ds = LMDBImages(path, resolution)
    if indices is None:
        indices = lmdb_indices(path, n, seed)
    images = torch.stack([ds[i] for i in indices]) if indices else torch.empty(0, 3, resolution, resolution)
    return images, [ds.all_names[i] for i in indices], list(indices)


def lmdb_indices(path, n: int | None = None, seed: int = 0) -> list[int]:
    """Every index, or a seeded random subset of n (sorted): the selection of lmdb_images."""
    length = lmdb_length(path)
    if n is None or n >= length:
        return list(range(length))
    return sorted(np.random.default_rng(seed).choice(length, size=n, replace=False).tolist())


def lmdb_batches(path, resolution: int, indices: list[int], batch: int = 32):
    """The images at ``indices`` as (B, 3, R, R) tensors in [-1, 1], one batch at a time (a
    paper-scale reference set decoded whole would be 70,000 x 3 x 256² floats = 55 GB)."""
    ds = LMDBImages(path, resolution)
    for start in range(0, len(indices), batch):
        yield torch.stack([ds[i] for i in indices[start:start + batch]])


def lmdb_length(path) -> int:
    return len(LMDBImages(path, 8))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(image.unsqueeze(0))[0])


def load_photo(path, resolution: int | None = None) -> torch.Tensor:
    from models.train.data import load_image
    return load_image(path, resolution)


def grid(rows: list[list], cell: int, pad: int = 2, bg=(255, 255, 255),
         row_labels: list[str] | None = None, col_labels: list[str] | None = None) -> Image.Image:
    """Paste images (tensors in [-1, 1], PIL images or None) into a labelled grid."""
    from PIL import ImageDraw
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    image.save(tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------- models
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


def face_codes(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def latent_style_codes(g, n: int, seed: int) -> torch.Tensor:
    """n latent-guided z_s, drawn as g was trained on them (N(0, I) or its encoder's Gaussian)."""
    return g.latent_style_codes(face_codes(n, g.style_dim, seed))
