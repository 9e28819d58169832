"""Identity descriptors of FFHQ-aligned faces: the content measure of content preservation
(identity.py) and of both leakage metrics (leakage.py, ablation.py).

Backends: ArcFace IR-SE50 (the paper's identity network, pSp's ``model_ir_se50.pth``) when a
file is given; otherwise dlib's face-recognition ResNet (128-d descriptors; the model ships in
the ``face-recognition-models`` wheel, so it runs offline). Faces are FFHQ-aligned, so when
dlib's detector finds no face (small or stylised images) the 68-point model is fitted inside
the known face box of an aligned crop.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from .common import from_uint8

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

    @torch.no_grad()
    def __call__(self, images_uint8: np.ndarray) -> np.ndarray:
        x = from_uint8(images_uint8)
        return torch.cat([self.net.identity(x[i:i + 32]) for i in range(0, len(x), 32)]).numpy()


def identity_backend(arcface=None):
    return ArcFaceIdentity(arcface) if arcface else DlibIdentity()
