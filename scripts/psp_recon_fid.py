"""FID of pSp reconstructions against the face set, beside its calibration.

    python scripts/psp_recon_fid.py --blendgan results/models/blendgan/blendgan.pt \
        --psp results/models/psp/psp.pt --face-lmdb results/data/face/lmdb --out recon_fid.json

The face set is split into the two seeded halves of the FID calibration (docs/evaluation.md):
the images of half A are reconstructed (pSp -> W+ -> G at i = 18) and compared with half B;
half A itself against half B is the calibration. A ratio near 1 means the reconstructions are
distributed like real faces; it says nothing about whether each one resembles its input (the pSp
probe's held-out L2 does). Half A includes pSp's training images: this measures the inversion's
output distribution, not generalisation.
"""

from __future__ import annotations

import argparse
import sys

import torch

from basics.files import write_json_atomic
from models.inception import load_inception
from workflow.evaluate.common import lmdb_batches, lmdb_length, machine
from workflow.evaluate.feature_distances import compare, real_halves
from workflow.evaluate.features import batch_features
from workflow.evaluate.inception import resolve_weights
from workflow.sampling import load_models, pick_device


@torch.no_grad()
def reconstructions(models, batches):
    g, psp = models["generator"], models["psp"]
    device = next(g.parameters()).device
    size = max(psp.input_size, g.resolution)  # as workflow.generate's inversion
    for x in batches:
        x = x.to(device)
        if x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True)
        w = psp(x)
        yield g(w_face=w, indicator=18, randomize_noise=False).clamp(-1, 1).cpu()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--blendgan", required=True, help="BlendGAN checkpoint (pSp's generator)")
    p.add_argument("--psp", required=True, help="pSp checkpoint")
    p.add_argument("--face-lmdb", required=True, help="the face LMDB folder")
    p.add_argument("--n", type=int, default=None, help="images per half (default: the half's size)")
    p.add_argument("--weights", default="auto", help="Inception weights (as evaluate.inception_weights)")
    p.add_argument("--cache-dir", default="results/eval/weights")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="JSON result")
    a = p.parse_args(argv)
    path, why = resolve_weights(a.weights, a.cache_dir)
    if path is None:
        sys.exit(f"error: no Inception weights: {why}")
    device = pick_device(a.device)
    models = load_models(a.blendgan, psp=a.psp, device=device)
    res = models["generator"].resolution
    net = load_inception(path)
    n_total = lmdb_length(a.face_lmdb)
    a_idx, _ = real_halves(n_total, a.seed)
    a_idx = a_idx[:a.n] if a.n else a_idx
    real = batch_features(net, lmdb_batches(a.face_lmdb, res, list(range(n_total))), device)
    recon = batch_features(net, reconstructions(models, lmdb_batches(a.face_lmdb, res,
                                                                     a_idx.tolist())), device)
    result = compare(recon, real, a.kid_subsets, a.seed)
    record = {"metric": "psp_reconstruction_fid", "results": result, "weights": why,
              "inputs": {"blendgan": a.blendgan, "psp": a.psp, "face_lmdb": a.face_lmdb},
              "settings": {"seed": a.seed, "indicator": 18, "resolution": res,
                           "reconstructed": "real half A", "compared_with": "real half B"},
              "machine": machine()}
    write_json_atomic(a.out, record)
    print(f"pSp reconstructions: FID {result['fid']:.1f}, calibration {result['fid_calibration']:.1f}"
          f" (ratio {result['fid_ratio']:.2f}) at n = {result['n_fake']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
