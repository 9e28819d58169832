"""FID and KID (method 5) on the pool3 features of the standard FID Inception (weights from a file).

    python -m workflow.evaluate.fid --samples samples/ --style-lmdb A --face-lmdb F \
        --weights auto --cache-dir DIR --out fid.json

Three comparisons: latent-guided outputs vs AAHQ, reference-guided outputs vs AAHQ, natural
outputs (i = 18) vs FFHQ. Each beside its calibration (method 5): the real set is split into two
seeded halves; outputs are compared with half B, and half A with half B at the same count. FID: Frechet distance of Gaussian fits (exact trace formulas, no
scipy sqrtm). KID: unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets
(Binkowski et al. 2018). Both are biased by small sample counts (FID much more than KID); the
JSON records the counts, so demo numbers are never mistaken for paper numbers.
Images, generated and real, go through Inception 32 at a time; only the features (2048 float64 =
16 KB per image) are kept, since KID draws random subsets of them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from .common import (Timer, from_uint8, lmdb_batches, lmdb_indices, machine, not_computed,
                     return_freed_memory, write_json)
from .inception import resolve_weights, load_inception
from .sample_sets import READ_BATCH, open_sets

COMPARISONS = (("latent_guided", "latent", "style"), ("reference_guided", "reference", "style"),
               ("natural", "natural", "face"))


@torch.no_grad()
def inception_features(net, images: torch.Tensor, batch: int = READ_BATCH, device="cpu") -> np.ndarray:
    return batch_features(net, (images[i:i + batch] for i in range(0, len(images), batch)), device)


@torch.no_grad()
def batch_features(net, batches, device="cpu") -> np.ndarray:
    """Pool3 features of an iterable of (B, 3, H, W) batches in [-1, 1]."""
    net = net.to(device)
    out = [net(images.to(device)).cpu() for images in batches]
    return torch.cat(out).double().numpy() if out else np.zeros((0, 2048))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two feature sets. With fewer samples than dimensions the covariances are low-rank:
    tr sqrt(S1 S2) is then the sum of singular values of A B^T / sqrt((n1-1)(n2-1)) (A, B the
    centred features), exact and far cheaper than a 2048x2048 sqrtm."""
    mu1, mu2 = a.mean(0), b.mean(0)
    if min(len(a), len(b)) <= a.shape[1]:
        A, B = a - mu1, b - mu2
        scale = np.sqrt((len(a) - 1) * (len(b) - 1))
        tr_covmean = np.linalg.svd(A @ B.T, compute_uv=False).sum() / scale
        tr1 = (A * A).sum() / (len(a) - 1)
        tr2 = (B * B).sum() / (len(b) - 1)
        diff = mu1 - mu2
        return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)
    return frechet_distance(mu1, np.cov(a, rowvar=False), mu2, np.cov(b, rowvar=False))


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
        x = a[rng.choice(len(a), n, replace=False)]
        y = b[rng.choice(len(b), n, replace=False)]
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
    fid / fid_calibration is what a small run can be read by (1 = as close as two real halves)."""
    a_idx, b_idx = real_halves(len(real), seed)
    n = min(len(fake), len(b_idx))
    if n < 2:
        raise ValueError(f"FID needs at least 2 samples and 4 real images (got {len(fake)} "
                         f"and {len(real)})")
    fake, half_a, half_b = fake[:n], real[a_idx[:n]], real[b_idx[:n]]
    kid, kid_std = kid_from_features(fake, half_b, kid_subsets, seed=seed)
    kid_cal, kid_cal_std = kid_from_features(half_a, half_b, kid_subsets, seed=seed)
    fid, fid_cal = fid_from_features(fake, half_b), fid_from_features(half_a, half_b)
    return {"fid": fid, "fid_calibration": fid_cal,
            "fid_ratio": fid / fid_cal if fid_cal > 0 else None,
            "kid": kid, "kid_std": kid_std, "kid_calibration": kid_cal,
            "kid_calibration_std": kid_cal_std, "n_fake": n, "n_real": n,
            "n_real_total": len(real)}


def evaluate(samples, style_lmdb, face_lmdb, weights="auto", cache_dir=".", n_real=None,
             kid_subsets=100, seed=0, device="cpu") -> dict:
    data = open_sets(samples)
    settings = {"weights_setting": weights, "n_real": n_real, "kid_subsets": kid_subsets,
                "kid_kernel": "cubic polynomial (x.y/d + 1)^3", "seed": seed,
                "preprocess": "8-bit quantise, bilinear 299x299, (x-128)/128",
                "calibration": "real half A vs real half B at the samples' count; samples "
                               "are compared with half B"}
    inputs = {"samples": str(data.path), "style_lmdb": str(style_lmdb), "face_lmdb": str(face_lmdb)}
    path, why = resolve_weights(weights, cache_dir)
    if path is None:
        return not_computed("fid_kid", why, inputs=inputs, settings=settings)
    net = load_inception(path)
    resolution = int(data["natural"].shape[1])
    results, timing = {}, {}
    real_feats = {}
    with Timer() as total:
        for name, key, real in COMPARISONS:
            if key not in data:
                continue
            if real not in real_feats:
                lmdb = style_lmdb if real == "style" else face_lmdb
                indices = lmdb_indices(lmdb, n_real, seed)
                real_feats[real] = batch_features(net, lmdb_batches(lmdb, resolution, indices), device)
            fake = batch_features(net, map(from_uint8, data[key].batches()), device)
            results[name] = dict(compare(fake, real_feats[real], kid_subsets, seed),
                                 real_set="AAHQ (style LMDB)" if real == "style" else "FFHQ (face LMDB)")
    timing["seconds"] = round(total.seconds, 1)
    return {"metric": "fid_kid", "computed": True, "weights": why, "results": results,
            "resolution": resolution, "inputs": inputs, "settings": settings,
            "timing": timing, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True, help="sample folder from workflow.evaluate.samples")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--face-lmdb", required=True)
    p.add_argument("--weights", default="auto", help="state dict file, 'auto' or 'none'")
    p.add_argument("--cache-dir", default=".", help="where 'auto' keeps the converted weights")
    p.add_argument("--n-real", type=int, default=None,
                   help="real images per set, split into two halves (default: all)")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return_freed_memory()  # batch buffers go back to the system (common.py)
    from .common import pick_device
    weights = None if a.weights in ("none", "null", "") else a.weights
    rec = evaluate(a.samples, a.style_lmdb, a.face_lmdb, weights, a.cache_dir, a.n_real,
                   a.kid_subsets, a.seed, pick_device(a.device))
    write_json(a.out, rec)
    print(rec.get("results") or rec.get("reason"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
