"""FID and KID between two feature sets, beside their calibration (method 5): what the FID and
StarGAN v2 protocols report.

FID: the Frechet distance of Gaussian fits (basics.frechet: exact trace formulas, no scipy
sqrtm). KID: unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets
(Binkowski et al. 2018). Both are biased by small sample counts (FID much more than KID), so
every FID sits beside the distance of two halves of the real set at the same count.
"""

from __future__ import annotations

import numpy as np

from basics.frechet import frechet_distance_of_features


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
    fid = frechet_distance_of_features(sub, half_b)
    fid_cal = frechet_distance_of_features(half_a, half_b)
    return {"fid": fid, "fid_calibration": fid_cal,
            "fid_ratio": fid / fid_cal if fid_cal > 0 else None,
            "kid": kid, "kid_std": kid_std, "kid_calibration": kid_cal,
            "kid_calibration_std": kid_cal_std, "n_fake": n, "n_real": n,
            "n_real_total": len(real),
            "fid_full": frechet_distance_of_features(fake, real), "n_fake_full": len(fake),
            "n_real_full": len(real)}
