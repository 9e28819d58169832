"""What the web page does, without the web: faces and styles in, stylised images out.

Every user mistake (no face, several faces, not an image, too large, a missing checkpoint) is an
``InputError`` whose text is shown on the page as it is; uploads are decoded from memory and
never written anywhere.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from basics.images import ImageRejected, load_rgb
from workflow.sampling import face_codes, grid, invert, latent_styles, stylise, style_codes, to_pil

STYLE_SET_SHOWN = 24  # style-set images offered on the page


class InputError(ValueError):
    """A request the page answers with a message (HTTP 400) instead of an image."""


@dataclass
class Face:
    z: torch.Tensor | None = None   # random face: z_f (1, D)
    w: torch.Tensor | None = None   # photo: pSp's W+ (1, L, D)
    crop: Image.Image | None = None


def decode(data: bytes, what: str) -> Image.Image:
    """An upload as RGB, under the project's one decoded-pixel cap (basics.images)."""
    if not data:
        raise InputError(f"no {what} was uploaded")
    try:
        return load_rgb(io.BytesIO(data))
    except ImageRejected as err:
        if err.reason == "too_large":
            raise InputError(f"the {what} is too large: {err.detail}") from None
        raise InputError(f"the {what} is not an image this server can read") from None


class Stylist:
    """The networks of one BlendGAN checkpoint (+ optional pSp and style set), loaded once.
    A checkpoint that does not load leaves ``error`` set: every request then answers it."""

    def __init__(self, blendgan, psp=None, style_encoder=None, style_lmdb=None, device="cpu"):
        self.device = torch.device(device)
        self.lock = threading.Lock()  # one forward pass at a time: CPU threads are shared anyway
        self.error = None
        self.models = None
        self.psp_error = None
        self.style_set: list[torch.Tensor] = []
        self._detectors = {}
        from models.checkpoint import load_generator, load_psp_encoder, load_style_encoder
        try:
            g = load_generator(blendgan).to(self.device).eval()
            enc = (load_style_encoder(style_encoder).to(self.device).eval() if style_encoder
                   else g.embedder)
        except Exception as err:  # any failure to load is shown on the page
            self.error = f"the BlendGAN checkpoint {blendgan} could not be loaded: {one_line(err)}"
            return
        self.models = {"generator": g, "style_encoder": enc, "psp": None}
        if psp:
            try:
                self.models["psp"] = load_psp_encoder(psp).to(self.device).eval()
            except Exception as err:
                self.psp_error = f"the pSp checkpoint {psp} could not be loaded: {one_line(err)}"
        if style_lmdb:
            from models.images import LMDBImages
            images = LMDBImages(style_lmdb, g.resolution)
            self.style_set = [images[i] for i in range(min(STYLE_SET_SHOWN, len(images)))]

    # ------------------------------------------------------------------------------ status
    def status(self) -> dict:
        if self.error:
            return {"ok": False, "error": self.error}
        g = self.models["generator"]
        return {"ok": True, "resolution": g.resolution, "photos": self.models["psp"] is not None,
                "photo_error": self.psp_error, "reference_styles": self.models["style_encoder"] is not None,
                "style_set": len(self.style_set)}

    def ready(self):
        if self.error:
            raise InputError(self.error)
        return self.models["generator"]

    # ------------------------------------------------------------------------------- faces
    def random_face(self, seed: int) -> Face:
        g = self.ready()
        return Face(z=face_codes(1, g.style_dim, seed).to(self.device))

    def photo_face(self, data: bytes) -> Face:
        g = self.ready()
        if self.models["psp"] is None:
            raise InputError(self.psp_error or "photos need a pSp checkpoint: start the server "
                                                "with --psp P.pt (random faces work without it)")
        photo = decode(data, "photo")
        from workflow.dataset.align import align_face
        pixels = np.asarray(photo)
        # Without upsampling first: it finds faces of 80 px and more and fewer false ones (on
        # scikit-image's astronaut, upsampling adds her mission patch as a second face).
        entry = self.detector(0)(pixels) or self.detector(1)(pixels)
        if entry is None:
            raise InputError("no face was found in the photo (dlib): upload a photo with one "
                             "clearly visible, roughly frontal face")
        if entry["n_faces"] > 1:
            raise InputError(f"{entry['n_faces']} faces were found in the photo: upload a photo "
                             "with one face, or crop it to one")
        crop = align_face(photo, entry["landmarks"], size=max(256, g.resolution))
        return Face(w=invert(self.models, crop), crop=crop)

    def detector(self, upsample: int):
        if upsample not in self._detectors:
            from workflow.dataset.landmarks import DlibDetector
            self._detectors[upsample] = DlibDetector(upsample)
        return self._detectors[upsample]

    # ------------------------------------------------------------------------------ styles
    def reference_style(self, data: bytes) -> torch.Tensor:
        self.ready()
        if self.models["style_encoder"] is None:
            raise InputError("this generator has no style encoder: start the server with "
                             "--style-encoder E.pt to use reference images")
        from models.images import image_to_tensor
        g = self.models["generator"]
        ref = image_to_tensor(decode(data, "style image"), g.resolution)
        return style_codes(self.models, ref[None])

    def set_style(self, index: int) -> torch.Tensor:
        self.ready()
        if not 0 <= index < len(self.style_set):
            raise InputError(f"style {index} is not in the style set (0..{len(self.style_set) - 1})"
                             if self.style_set else "this server was started without --style-lmdb")
        if self.models["style_encoder"] is None:
            raise InputError("this generator has no style encoder: pass --style-encoder E.pt")
        return style_codes(self.models, self.style_set[index][None])

    def latent_style(self, seed: int) -> torch.Tensor:
        return latent_styles(self.ready(), 1, seed, self.device)

    def style_image(self, index: int) -> Image.Image:
        self.ready()
        if not 0 <= index < len(self.style_set):
            raise InputError(f"style {index} is not in the style set")
        return to_pil(self.style_set[index])

    # ------------------------------------------------------------------------------ output
    @torch.no_grad()
    def render(self, face: Face, z_style: torch.Tensor, indicator: int, truncation: float) -> Image.Image:
        g = self.ready()
        check_controls(indicator, truncation)
        with self.lock:
            return to_pil(stylise(g, z_style, indicator, truncation, face.z, face.w)[0])

    @torch.no_grad()
    def sweep(self, face: Face, z_style: torch.Tensor, truncation: float, cell: int = 96) -> Image.Image:
        g = self.ready()
        check_controls(0, truncation)
        n = 19
        zf = None if face.z is None else face.z.expand(n, -1)
        wf = None if face.w is None else face.w.expand(n, -1, -1)
        with self.lock:
            out = stylise(g, z_style.expand(n, -1), torch.arange(n, device=self.device),
                          truncation, zf, wf)
        return grid([list(out)], cell=cell, col_labels=[f"i={i}" for i in range(n)])


def check_controls(indicator: int, truncation: float):
    if not 0 <= indicator <= 18:
        raise InputError(f"the indicator must be 0..18, not {indicator}")
    if not 0 <= truncation <= 1:
        raise InputError(f"the truncation must be in 0..1, not {truncation}")


def one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:400]
