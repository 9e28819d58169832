"""Identity features and content preservation (method 5).

    python -m workflow.evaluate.identity --samples samples/ --out content.json

Content preservation: identity similarity between each natural face G(z_f, i = 18) and its
stylisations (latent- and reference-guided, same z_f), against a mismatched-pair baseline.
Backends: ArcFace IR-SE50 (the paper's identity network, pSp's ``model_ir_se50.pth``) when
``--arcface FILE`` is given; otherwise dlib's face-recognition ResNet (128-d descriptors; the
model ships in the ``face-recognition-models`` wheel, so it runs offline). Faces are
FFHQ-aligned, so when dlib's detector finds no face (small or stylised images) the 68-point model
is fitted inside the known face box of an aligned crop.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from .common import machine, not_computed, return_freed_memory, write_json
from .sample_sets import open_sets

WORK_SIZE = 256
ALIGNED_BOX = (0.22, 0.28, 0.78, 0.86)  # face box of an FFHQ-aligned crop, in units of its side


class DlibIdentity:
    name = "dlib_resnet_v1"

    def __init__(self):
        import dlib
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("needs `pip install face-recognition-models`")
        root = Path(list(spec.submodule_search_locations)[0]) / "models"
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(root / "shape_predictor_68_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(root / "dlib_face_recognition_resnet_model_v1.dat"))
        self.fallbacks = 0

    def __call__(self, images_uint8: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 aligned faces -> (N, 128) descriptors."""
        from PIL import Image
        out = []
        for arr in images_uint8:
            img = np.asarray(Image.fromarray(arr).resize((WORK_SIZE, WORK_SIZE), Image.LANCZOS))
            rects = self.detector(img, 0)
            if len(rects):
                rect = max(rects, key=lambda r: r.area())
            else:
                self.fallbacks += 1
                x0, y0, x1, y1 = (int(v * WORK_SIZE) for v in ALIGNED_BOX)
                rect = self.dlib.rectangle(x0, y0, x1, y1)
            out.append(np.asarray(self.net.compute_face_descriptor(img, self.shape(img, rect))))
        return np.stack(out) if out else np.zeros((0, 128))


class ArcFaceIdentity:
    name = "arcface_ir_se50"
    fallbacks = 0

    def __init__(self, path):
        from models.arcface import load_arcface
        self.net = load_arcface(path).eval()  # its shape is read from the file

    def __call__(self, images_uint8: np.ndarray) -> np.ndarray:
        import torch
        from .common import from_uint8
        with torch.no_grad():
            x = from_uint8(images_uint8)
            return torch.cat([self.net.identity(x[i:i + 32]) for i in range(0, len(x), 32)]).numpy()


def identity_backend(arcface=None):
    return ArcFaceIdentity(arcface) if arcface else DlibIdentity()


def identity_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of descriptors."""
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    return (a * b).sum(1)


def preservation(natural: np.ndarray, stylised: np.ndarray, seed: int = 0) -> dict:
    """Matched (same z_f) vs mismatched (deranged) identity similarity and dlib distance."""
    from .consistency import derangement
    perm = derangement(len(natural), seed)
    sim, base = identity_similarity(natural, stylised), identity_similarity(natural, stylised[perm])
    dist = np.linalg.norm(natural - stylised, axis=1)
    return {"similarity": float(sim.mean()), "similarity_mismatched": float(base.mean()),
            "gap": float((sim - base).mean()), "distance": float(dist.mean()),
            "share_same_person_dlib_0.6": float((dist < 0.6).mean()), "n": len(natural)}


def evaluate(samples, seed=0, arcface=None) -> dict:
    data = open_sets(samples)
    inputs = {"samples": str(data.path), "arcface": str(arcface) if arcface else None}
    settings = {"backend": ArcFaceIdentity.name if arcface else DlibIdentity.name,
                "indicator": int(data.scalars["indicator"]), "seed": seed,
                "baseline": "natural face vs another face's stylisation"}
    try:
        ident = identity_backend(arcface)
    except (ImportError, RuntimeError) as err:
        return not_computed("content_preservation", f"identity network unavailable: {err}",
                            inputs=inputs, settings=settings)
    def describe(rows):  # descriptors are small (128 or 512 floats); the images are read in batches
        return np.concatenate([ident(images) for images in rows.batches()] or [ident(rows[:0])])
    nat = describe(data["natural"])
    results = {k: preservation(nat, describe(data[k]), seed) for k in ("latent", "reference") if k in data}
    settings["detector_fallbacks"] = ident.fallbacks
    return {"metric": "content_preservation", "computed": True, "results": results,
            "inputs": inputs, "settings": settings, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arcface", default=None, help="ArcFace IR-SE50 file (default: dlib backend)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return_freed_memory()  # batch buffers go back to the system (common.py)
    arcface = None if a.arcface in (None, "none", "null", "") else a.arcface
    rec = evaluate(a.samples, a.seed, arcface)
    write_json(a.out, rec)
    print(rec.get("results") or rec.get("reason"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
