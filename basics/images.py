"""Safe image decoding: a pixel cap before decoding, every PIL mode converted to 8-bit RGB.

Raw scrapes hold RGBA, greyscale, palette, CMYK and 16-bit files, plus the odd decompression
bomb; every stage reads images through `load_rgb` so they all see the same pixels.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000  # about 8k x 6k; larger files are rejected, never decoded
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

# PIL's own bomb check warns at 89 MP and fails at 179 MP; ours is stricter and applied
# to the header size before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = None


class ImageRejected(Exception):
    """An image that cannot be used; `reason` is a short machine-readable label."""

    def __init__(self, reason: str, detail: str = "", **values):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.values = values


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files under `folder` (recursively) as sorted POSIX paths relative to it."""
    root = Path(folder)
    names = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(names)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode; alpha is composited on white, 16/32-bit is rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `path` to RGB or raise ImageRejected('decode_error' | 'too_large')."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        "too_large", f"{width}x{height} exceeds {max_pixels} pixels",
                        width=width, height=height,
                    )
                img.load()
                return to_rgb(img)
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected("decode_error", f"{type(exc).__name__}: {exc}") from None
