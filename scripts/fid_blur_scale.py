"""How far a FID ratio is from real images, in pixels of blur: FID of blurred real faces.

    python scripts/fid_blur_scale.py --face-lmdb results/data/face/lmdb --n 180 --out blur.json

Real half A, blurred with a Gaussian of each --sigma (in pixels of the stored resolution) or
averaged down to half the size and scaled back up, against real half B: the protocol of the
calibration (docs/evaluation.md), so each row reads as a ratio beside it. A generator whose
ratio equals a row's is, to the Inception features, about as soft as that blur. At 32 px the
299 px resize magnifies every missing edge, which is why small demos sit far above 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from basics.files import write_json_atomic
from basics.frechet import frechet_distance_of_features
from workflow.evaluate.common import lmdb_length, machine
from workflow.evaluate.feature_distances import real_halves
from workflow.evaluate.features import Extractor, lmdb_uint8_batches
from workflow.evaluate.inception import resolve_weights


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8, separable Gaussian of ``sigma`` pixels, reflected edges."""
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    taps = taps / taps.sum()
    x, c = images.float(), images.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"),
                 taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                 taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x.round().clamp(0, 255).to(torch.uint8)


def half_size_and_back(images: torch.Tensor) -> torch.Tensor:
    size = images.shape[-1]
    x = F.interpolate(images.float(), size=size // 2, mode="area")
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--face-lmdb", required=True, help="the real image LMDB folder")
    p.add_argument("--resolution", type=int, default=32, help="size the images are read at")
    p.add_argument("--n", type=int, default=180, help="images per half (at most the half's size)")
    p.add_argument("--sigma", type=float, nargs="+", default=[0.5, 0.7, 1.0, 1.5],
                   help="Gaussian blurs to measure, in pixels")
    p.add_argument("--weights", default="auto", help="Inception weights (as evaluate.inception_weights)")
    p.add_argument("--cache-dir", default="results/eval/weights")
    p.add_argument("--seed", type=int, default=0, help="the halves' split (as the FID's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="JSON result")
    a = p.parse_args(argv)
    if any(s <= 0 for s in a.sigma):
        sys.exit("error: --sigma values must be > 0")
    if a.n < 2:
        sys.exit("error: --n must be at least 2 (a covariance needs two images)")
    if not (Path(a.face_lmdb) / "data.mdb").is_file():
        sys.exit(f"error: {a.face_lmdb}: not an LMDB folder (no data.mdb)")
    path, why = resolve_weights(a.weights, a.cache_dir)
    if path is None:
        sys.exit(f"error: no Inception weights: {why}")
    torch.set_num_threads(a.threads)
    ext = Extractor.from_weights(path)
    total = lmdb_length(a.face_lmdb)
    if total < 4:
        sys.exit(f"error: {a.face_lmdb}: {total} images; the halves need at least 4")
    a_idx, b_idx = real_halves(total, a.seed)
    n = min(a.n, len(a_idx))
    real = torch.cat(list(lmdb_uint8_batches(a.face_lmdb, a.resolution, list(range(total)))))
    half_a = real[torch.as_tensor(a_idx[:n])]
    half_b = ext(real[torch.as_tensor(b_idx[:n])])
    calibration = frechet_distance_of_features(ext(half_a), half_b)
    variants = {f"gaussian sigma {s:g} px": gaussian_blur(half_a, s) for s in a.sigma}
    variants["half size and back"] = half_size_and_back(half_a)
    rows = {}
    print(f"{'real half A (calibration)':26s} FID {calibration:6.1f}  (n {n})")
    for name, images in variants.items():
        fid = frechet_distance_of_features(ext(images), half_b)
        rows[name] = {"fid": fid, "fid_calibration": calibration, "fid_ratio": fid / calibration,
                      "n": n}
        print(f"{name:26s} FID {fid:6.1f}  ratio {fid / calibration:.2f}")
    write_json_atomic(a.out, {"metric": "fid_of_blurred_real_half", "results": rows,
                              "weights": why, "resolution": a.resolution, "seed": a.seed,
                              "face_lmdb": a.face_lmdb, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
