"""Inception features of image sets through the FID image path of method 5, and the cache of
real-set features: what the FID and StarGAN v2 protocols (fid.py, stargan_v2.py) both measure.

The path, the same for generated and real images: 8-bit pixels (models.inception.quantise, as
an image file holds them) -> NVIDIA's 299 x 299 resize -> (x - 128) / 128 -> pool3. Only the
features (2048 float32 = 8 KB per image) are kept; one batch of images exists at a time.
Real-set features are cached under a fingerprint of the dataset, the selection and the network.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from basics.files import atomic_output, sha256_file
from models.inception import FEATURE_DIM, FIDInception, load_inception, quantise, scaled_input

from .common import lmdb_indices, lmdb_length
from .sample_sets import READ_BATCH

PREPROCESS = ("8-bit quantise as NVIDIA's metric code (x * 127.5 + 128, clamp, truncate), "
              "NVIDIA's bilinear 299x299 resize (affine grid + grid_sample, border), (x - 128) / 128")
CACHE_FORMAT = 1


class Extractor:
    """uint8 image batches (N, 3, H, W) -> float32 features, through the path above.

    ``body`` maps the scaled 299 x 299 input to features: the FID Inception's layers
    (``from_weights``), or any module (tests). ``identity`` names the network in the real-set
    cache key. ``largest_batch`` and ``images_seen`` record what went through it."""

    def __init__(self, body, identity, device="cpu", batch: int = READ_BATCH):
        self.body, self.identity = body.to(device).eval(), identity
        self.device, self.batch = torch.device(device), batch
        self.largest_batch = self.images_seen = 0

    @classmethod
    def from_weights(cls, path, device="cpu", batch: int = READ_BATCH) -> "Extractor":
        net = load_inception(path)
        path = Path(path)
        identity = {"name": path.name, "size": path.stat().st_size, "sha256": sha256_file(path),
                    "preprocess": PREPROCESS}
        return cls(net.layers, identity, device, batch)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if images.dtype != torch.uint8:
            raise TypeError(f"Extractor takes uint8 images (quantise() first), got {images.dtype}")
        out = []
        for chunk in images.split(self.batch):
            self.largest_batch = max(self.largest_batch, len(chunk))
            self.images_seen += len(chunk)
            x = scaled_input(chunk.to(self.device))
            out.append(self.body(x).reshape(len(chunk), -1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)

    def stream(self, batches, total: int, desc: str = "", progress: bool = True) -> np.ndarray:
        """Features of an iterable of uint8 batches, ``total`` images in all (preallocated)."""
        feats = None
        done = 0
        with progress_bar(total, desc, progress) as bar:
            for images in batches:
                f = self(images)
                if feats is None:
                    feats = np.empty((total, f.shape[1]), np.float32)
                feats[done:done + len(f)] = f
                done += len(f)
                bar.update(len(f))
                del images, f  # one batch of images at a time
        if done != total:
            raise ValueError(f"{desc}: {done} images, expected {total}")
        return feats if feats is not None else np.zeros((0, FEATURE_DIM), np.float32)


def progress_bar(total, desc, progress):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not progress,
                mininterval=2.0)


# ------------------------------------------------------------------------------- real images
def lmdb_uint8_batches(path, resolution: int, indices, batch: int = READ_BATCH):
    """8-bit images of the LMDB at ``resolution`` (the stored size, LANCZOS-resized when the LMDB
    has no such size), one batch at a time."""
    from models.images import LMDBImages
    ds = LMDBImages(path, resolution).as_uint8()
    for start in range(0, len(indices), batch):
        yield torch.stack([ds[i] for i in indices[start:start + batch]])


def lmdb_identity(path) -> dict:
    """Resolved path, data.mdb size and mtime, and the recorded length of an LMDB."""
    p = Path(path).resolve()
    st = (p / "data.mdb" if p.is_dir() else p).stat()
    return {"path": str(p), "data_mdb_size": st.st_size, "data_mdb_mtime_ns": st.st_mtime_ns,
            "length": lmdb_length(path)}


def real_fingerprint(lmdb, resolution: int, indices, n_real, seed: int, identity) -> dict:
    digest = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()
    return {"format": CACHE_FORMAT, "lmdb": lmdb_identity(lmdb), "resolution": int(resolution),
            "n_real": n_real, "seed": int(seed), "count": len(indices), "indices_sha256": digest,
            "network": identity}


def real_features(extractor: Extractor, lmdb, resolution: int, n_real=None, seed: int = 0,
                  cache_dir=None, progress: bool = True, label: str = "real") -> tuple[np.ndarray, dict]:
    """Features of the selected real images (lmdb_indices(lmdb, n_real, seed)), from the cache
    when its fingerprint matches; (features, {"cache": hit|written|off, "file", "fingerprint"})."""
    indices = lmdb_indices(lmdb, n_real, seed)
    key = real_fingerprint(lmdb, resolution, indices, n_real, seed, extractor.identity)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    stem = Path(lmdb).resolve().parent.name or "lmdb"  # results/data/style/lmdb -> style
    path = Path(cache_dir) / f"{stem}_{resolution}px_{digest}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                if json.loads(str(z["fingerprint"])) == key:
                    return z["features"], {"cache": "hit", "file": str(path), "fingerprint": key}
        except (OSError, ValueError, KeyError):
            pass  # unreadable or foreign: recompute and replace
    feats = extractor.stream(lmdb_uint8_batches(lmdb, resolution, indices, extractor.batch),
                             len(indices), f"real {label}", progress)
    info = {"cache": "off", "file": None, "fingerprint": key}
    if path is not None:
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, features=feats, fingerprint=np.array(json.dumps(key, sort_keys=True)))
        info.update(cache="written", file=str(path))
    return feats, info


# ------------------------------------------------------------- float images in [-1, 1]
@torch.no_grad()
def batch_features(net, batches, device="cpu") -> np.ndarray:
    """Pool3 features (float64) of (B, 3, H, W) batches in [-1, 1] (scripts/psp_recon_fid.py),
    through the FID path above when ``net`` is the FID Inception (8 bits, NVIDIA's resize)."""
    if isinstance(net, FIDInception):
        ext = Extractor(net.layers, None, device)
        out = [ext(quantise(images)) for images in batches]
    else:
        net = net.to(device)
        out = [net(images.to(device)).cpu().float().numpy() for images in batches]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, FEATURE_DIM))


def inception_features(net, images: torch.Tensor, batch: int = READ_BATCH, device="cpu") -> np.ndarray:
    return batch_features(net, (images[i:i + batch] for i in range(0, len(images), batch)), device)
