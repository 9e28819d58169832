"""The Frechet distance between Gaussians fitted to two feature sets: one algorithm for FID
(Inception features) and for the trainers' FD-Estyle (style codes).

||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). The trace of the square root comes from the
symmetric matrix S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2, via `eigh`:
no complex parts and no failed `sqrtm`. With fewer samples than dimensions the covariances are
low rank and tr (S1 S2)^(1/2) is the sum of singular values of A B^T / sqrt((n1-1)(n2-1)) (A, B
the centred features): exact, and far cheaper than a 2048 x 2048 factorisation.
"""
from __future__ import annotations

import numpy as np


def mean_cov(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance in float64, accumulated in chunks (50k x 2048 features)."""
    mu = x.mean(0, dtype=np.float64)
    cov = np.zeros((x.shape[1], x.shape[1]))
    for s in range(0, len(x), chunk):
        d = x[s:s + chunk].astype(np.float64) - mu
        cov += d.T @ d
    return mu, cov / (len(x) - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2)."""
    diff = mu1 - mu2
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_distance_of_features(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of two feature sets (rows are samples)."""
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
