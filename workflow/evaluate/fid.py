"""FID and KID (method 5) as NVIDIA's metric code computes them, on the pool3 features of the
standard FID Inception (weights from a file).

    python -m workflow.evaluate.fid --blendgan G.pt [--style-encoder E.pt] --style-lmdb A \
        --face-lmdb F --n 64 [--n-real 128] --weights auto --cache-dir DIR --out fid.json

Three comparisons: latent-guided outputs vs AAHQ, reference-guided outputs vs AAHQ, natural
outputs (i = 18) vs FFHQ. The outputs are drawn with the codes of the metric sample sets
(workflow.evaluate.samples.metric_codes: same face codes, latent style codes and references), so
the numbers stay comparable with the other metrics; nothing is stored.

The image path (method 5), the same for generated and real images:
  generator output at full resolution -> 8 bits as NVIDIA's code does (x * 127.5 + 128, clamped,
  truncated; an image file holds the same) -> the 299 x 299 resize of NVIDIA's Inception (bilinear
  grid sample with TF's pixel-corner alignment, border padding) -> (x - 128) / 128 -> pool3.
  Real images come from the LMDB at the generator's resolution as 8-bit pixels and take the same
  path. One batch of images exists at a time; only the features (2048 float32 = 8 KB per image)
  are kept, since KID draws random subsets of them.

Real-set features are cached in --real-cache (default: CACHE_DIR/fid_real) under a fingerprint of
the dataset (resolved LMDB path, data.mdb size and mtime, length), the resolution, the selected
images (seed, count, a digest of the indices) and the Inception weights (file name, size,
SHA-256); a rerun reuses them, any change recomputes them; files are written atomically.

Every FID sits beside its calibration (method 5): the real set is split into two seeded halves;
outputs are compared with half B, and half A with half B at the same count (fid_calibration,
fid_ratio). fid_full is all outputs against all selected reals: the number comparable with
published FIDs (when both are 50,000 and the whole set). FID: Frechet distance of Gaussian fits
(exact trace formulas, no scipy sqrtm). KID: unbiased MMD^2 with the cubic polynomial kernel,
mean and std over random subsets (Binkowski et al. 2018). Both are biased by small sample counts
(FID much more than KID); the JSON records every count, so demo numbers are never mistaken for
paper numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from .common import (Timer, lmdb_indices, machine, not_computed, pick_device,
                     return_freed_memory, write_json)
from .inception import (FEATURE_DIM, FIDInception, load_inception, quantise, resize_299,
                        resolve_weights, sha256_of)
from .sample_sets import READ_BATCH

COMPARISONS = (("latent_guided", "latent", "style"), ("reference_guided", "reference", "style"),
               ("natural", "natural", "face"))
PREPROCESS = ("8-bit quantise as NVIDIA's metric code (x * 127.5 + 128, clamp, truncate), "
              "NVIDIA's bilinear 299x299 resize (affine grid + grid_sample, border), (x - 128) / 128")
CACHE_FORMAT = 1
GEN_BATCH = 16  # generator batch (the sample sets' as well)


# --------------------------------------------------------------------------- the image path
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
        identity = {"name": path.name, "size": path.stat().st_size, "sha256": sha256_of(path),
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
            x = resize_299(chunk.to(self.device, torch.float32))
            out.append(self.body((x - 128) / 128).reshape(len(chunk), -1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)

    def stream(self, batches, total: int, desc: str = "", progress: bool = True) -> np.ndarray:
        """Features of an iterable of uint8 batches, ``total`` images in all (preallocated)."""
        feats = None
        done = 0
        with _bar(total, desc, progress) as bar:
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


def _bar(total, desc, progress):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not progress,
                mininterval=2.0)


# ------------------------------------------------------------------------------- real images
def lmdb_uint8_batches(path, resolution: int, indices, batch: int = READ_BATCH):
    """8-bit images of the LMDB at ``resolution`` (the stored size, LANCZOS-resized when the LMDB
    has no such size), one batch at a time."""
    from models.train.data import LMDBImages
    ds = LMDBImages(path, resolution).as_uint8()
    for start in range(0, len(indices), batch):
        yield torch.stack([ds[i] for i in indices[start:start + batch]])


def lmdb_identity(path) -> dict:
    """Resolved path, data.mdb size and mtime, and the recorded length of an LMDB."""
    from .common import lmdb_length
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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, features=feats, fingerprint=np.array(json.dumps(key, sort_keys=True)))
        os.replace(tmp, path)
        info.update(cache="written", file=str(path))
    return feats, info


# -------------------------------------------------------------------------- generated images
def generated_batches(models: dict, codes: dict, kind: str, style_lmdb, indicator: int,
                      truncation: float, device, batch: int = GEN_BATCH):
    """uint8 outputs of one metric set ("natural", "latent", "reference"), one batch at a time,
    at the generator's full resolution. (no_grad inside: torch's decorator on a generator keeps
    the last yielded batch alive while the next one is made.)"""
    from .common import lmdb_batches
    g, enc = models["generator"], models["style_encoder"]
    n = len(codes["z_face"])
    for a in range(0, n, batch):
        b = min(a + batch, n)
        with torch.no_grad():
            z_face = codes["z_face"][a:b].to(device)
            if kind == "natural":
                out = g.generate(z_face, None, indicator=18, truncation=truncation)
            elif kind == "latent":
                out = g.generate(z_face, codes["z_style"][a:b].to(device), indicator=indicator,
                                 truncation=truncation)
            else:
                refs = next(lmdb_batches(style_lmdb, g.resolution, codes["picks"][a:b], batch=b - a))
                out = g.generate(z_face, enc(refs.to(device)), indicator=indicator,
                                 truncation=truncation)
                del refs
            pixels = quantise(out)
            del out
        yield pixels
        del pixels


# ------------------------------------------------------------------------------- statistics
def mean_cov(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance in float64, accumulated over row blocks (no float64 copy of x)."""
    mu = x.mean(0, dtype=np.float64)
    cov = np.zeros((x.shape[1], x.shape[1]))
    for s in range(0, len(x), chunk):
        d = x[s:s + chunk].astype(np.float64) - mu
        cov += d.T @ d
    return mu, cov / (len(x) - 1)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two feature sets. With fewer samples than dimensions the covariances are low-rank:
    tr sqrt(S1 S2) is then the sum of singular values of A B^T / sqrt((n1-1)(n2-1)) (A, B the
    centred features), exact and far cheaper than a 2048x2048 sqrtm."""
    if min(len(a), len(b)) <= a.shape[1]:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        mu1, mu2 = a.mean(0), b.mean(0)
        A, B = a - mu1, b - mu2
        scale = np.sqrt((len(a) - 1) * (len(b) - 1))
        tr_covmean = np.linalg.svd(A @ B.T, compute_uv=False).sum() / scale
        tr1 = (A * A).sum() / (len(a) - 1)
        tr2 = (B * B).sum() / (len(b) - 1)
        diff = mu1 - mu2
        return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)
    (mu1, s1), (mu2, s2) = mean_cov(a), mean_cov(b)
    return frechet_distance(mu1, s1, mu2, s2)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)); tr sqrt(S1 S2) from the symmetric
    sqrt(S1) S2 sqrt(S1) (same eigenvalues), via eigh: stable, no complex parts."""
    diff = mu1 - mu2
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def kid_from_features(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2, kernel k(x, y) = (x.y / d + 1)^3; (mean, std) over subsets."""
    n = min(len(a), len(b), subset_size)
    if n == min(len(a), len(b)) and n > 20:  # small sets: half-size subsets, so the std means something
        n //= 2
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x = np.asarray(a[rng.choice(len(a), n, replace=False)], np.float64)
        y = np.asarray(b[rng.choice(len(b), n, replace=False)], np.float64)
        kxx, kyy, kxy = [(p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y))]
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) \
            - 2 * kxy.mean()
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


def real_halves(n_real: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the real set's positions (seeded): half B is what the samples are
    compared against, half A calibrates the comparison."""
    perm = np.random.default_rng(seed).permutation(n_real)
    half = n_real // 2
    return np.sort(perm[:half]), np.sort(perm[half:2 * half])


def compare(fake: np.ndarray, real: np.ndarray, kid_subsets: int, seed: int) -> dict:
    """FID/KID of ``fake`` against half B of ``real``, beside the calibration: half A against
    half B at the same sample count. FID is strongly biased at small counts; the ratio
    fid / fid_calibration is what a small run can be read by (1 = as close as two real halves).
    fid_full: every fake against every real (comparable with published FIDs at equal counts)."""
    a_idx, b_idx = real_halves(len(real), seed)
    n = min(len(fake), len(b_idx))
    if n < 2:
        raise ValueError(f"FID needs at least 2 samples and 4 real images (got {len(fake)} "
                         f"and {len(real)})")
    sub, half_a, half_b = fake[:n], real[a_idx[:n]], real[b_idx[:n]]
    kid, kid_std = kid_from_features(sub, half_b, kid_subsets, seed=seed)
    kid_cal, kid_cal_std = kid_from_features(half_a, half_b, kid_subsets, seed=seed)
    fid, fid_cal = fid_from_features(sub, half_b), fid_from_features(half_a, half_b)
    return {"fid": fid, "fid_calibration": fid_cal,
            "fid_ratio": fid / fid_cal if fid_cal > 0 else None,
            "kid": kid, "kid_std": kid_std, "kid_calibration": kid_cal,
            "kid_calibration_std": kid_cal_std, "n_fake": n, "n_real": n,
            "n_real_total": len(real),
            "fid_full": fid_from_features(fake, real), "n_fake_full": len(fake),
            "n_real_full": len(real)}


# ---------------------------------------------------------------------------------- metric
def settings_of(n, n_real, indicator, truncation, kid_subsets, seed, batch) -> dict:
    return {"n": n, "n_real": n_real, "indicator": indicator, "truncation": truncation,
            "kid_subsets": kid_subsets, "kid_kernel": "cubic polynomial (x.y/d + 1)^3",
            "seed": seed, "generator_batch": batch, "preprocess": PREPROCESS,
            "codes": "workflow.evaluate.samples.metric_codes (the sample sets' codes)",
            "calibration": "real half A vs real half B at the samples' count; samples are "
                           "compared with half B; fid_full: all samples vs all selected reals"}


def run(models: dict, extractor: Extractor, style_lmdb, face_lmdb, n=64, n_real=None,
        indicator=6, truncation=1.0, kid_subsets=100, seed=0, device="cpu", real_cache=None,
        batch=GEN_BATCH, progress=True) -> dict:
    """The three comparisons, one set of outputs at a time (features of one set in memory)."""
    from .samples import metric_codes
    g = models["generator"]
    codes = metric_codes(g, style_lmdb, n, seed)
    results, caches, seconds = {}, {}, {}
    current, real_feats = None, None  # one real set's features in memory at a time
    for name, kind, real in COMPARISONS:
        if kind == "reference" and models.get("style_encoder") is None:
            continue
        if real != current:
            real_feats = None
            with Timer() as t:
                lmdb = style_lmdb if real == "style" else face_lmdb
                real_feats, caches[real] = real_features(extractor, lmdb, g.resolution, n_real,
                                                         seed, real_cache, progress, label=real)
            seconds[f"real_{real}"], current = round(t.seconds, 1), real
        with Timer() as t:
            fake = extractor.stream(
                generated_batches(models, codes, kind, style_lmdb, indicator, truncation, device, batch),
                n, name, progress)
            res = compare(fake, real_feats, kid_subsets, seed)
        seconds[name] = round(t.seconds, 1)
        results[name] = dict(res, real_set="AAHQ (style LMDB)" if real == "style" else "FFHQ (face LMDB)",
                             real_cache=caches[real]["cache"])
        del fake
    real_sets = {k: {"cache": v["cache"], "file": v["file"], **v["fingerprint"]} for k, v in caches.items()}
    return {"results": results, "resolution": g.resolution, "real_sets": real_sets,
            "timing": seconds, "largest_batch": extractor.largest_batch}


def evaluate(blendgan, style_lmdb, face_lmdb, style_encoder=None, weights="auto", cache_dir=".",
             real_cache=None, n=64, n_real=None, indicator=6, truncation=1.0, kid_subsets=100,
             seed=0, device="cpu", batch=GEN_BATCH, progress=True) -> dict:
    from .common import load_models
    settings = settings_of(n, n_real, indicator, truncation, kid_subsets, seed, batch)
    settings["weights_setting"] = weights
    inputs = {"blendgan": str(blendgan), "style_encoder": str(style_encoder) if style_encoder else None,
              "style_lmdb": str(style_lmdb), "face_lmdb": str(face_lmdb)}
    path, why = resolve_weights(weights, cache_dir)
    if path is None:
        return not_computed("fid_kid", why, inputs=inputs, settings=settings)
    real_cache = real_cache if real_cache is not None else Path(cache_dir) / "fid_real"
    with Timer() as total:
        models = load_models(blendgan, style_encoder, device=device)
        extractor = Extractor.from_weights(path, device)
        out = run(models, extractor, style_lmdb, face_lmdb, n, n_real, indicator, truncation,
                  kid_subsets, seed, device, real_cache, batch, progress)
    out["timing"]["seconds"] = round(total.seconds, 1)
    return {"metric": "fid_kid", "computed": True, "weights": why,
            "protocol": "NVIDIA (full-resolution outputs, Inception's own resize, cached reals)",
            **out, "inputs": inputs, "settings": settings, "machine": machine()}


def add_run_args(p, batch_help: str):
    """The options both streamed-FID CLIs share (this one and workflow.evaluate.stargan_v2)."""
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--batch", type=int, default=GEN_BATCH, help=batch_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", required=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blendgan", required=True, help="BlendGAN checkpoint")
    p.add_argument("--style-encoder", default=None, help="default: the generator's embedded encoder")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--face-lmdb", required=True)
    p.add_argument("--n", type=int, default=64, help="generated images per comparison (paper: 50000)")
    p.add_argument("--n-real", type=int, default=None,
                   help="real images per set, split into two halves (default: all)")
    p.add_argument("--indicator", type=int, default=6)
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--weights", default="auto", help="state dict file, 'auto' or 'none'")
    p.add_argument("--cache-dir", default=".", help="where 'auto' keeps the converted weights")
    p.add_argument("--real-cache", default=None,
                   help="folder of cached real-set features (default: CACHE_DIR/fid_real)")
    add_run_args(p, "generator batch")
    a = p.parse_args(argv)
    return_freed_memory()  # batch buffers go back to the system (common.py)
    if a.threads:
        torch.set_num_threads(a.threads)
    weights = None if a.weights in ("none", "null", "") else a.weights
    rec = evaluate(a.blendgan, a.style_lmdb, a.face_lmdb, a.style_encoder, weights, a.cache_dir,
                   a.real_cache, a.n, a.n_real, a.indicator, a.truncation, a.kid_subsets, a.seed,
                   pick_device(a.device), a.batch, a.progress)
    write_json(a.out, rec)
    print(rec.get("results") or rec.get("reason"))
    return 0


# Kept for scripts/psp_recon_fid.py and older callers: float batches in [-1, 1].
@torch.no_grad()
def batch_features(net, batches, device="cpu") -> np.ndarray:
    """Pool3 features (float64) of (B, 3, H, W) batches in [-1, 1], through the FID path above
    when ``net`` is the FID Inception (8 bits, NVIDIA's resize)."""
    if isinstance(net, FIDInception):
        ext = Extractor(net.layers, None, device)
        out = [ext(quantise(images)) for images in batches]
    else:
        net = net.to(device)
        out = [net(images.to(device)).cpu().float().numpy() for images in batches]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, FEATURE_DIM))


def inception_features(net, images: torch.Tensor, batch: int = READ_BATCH, device="cpu") -> np.ndarray:
    return batch_features(net, (images[i:i + batch] for i in range(0, len(images), batch)), device)


if __name__ == "__main__":
    sys.exit(main())
