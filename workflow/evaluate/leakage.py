"""Supplement D ablation: content leakage of the Gram-concatenation embedding (no learned MLP)
against the learned style encoder (method 5).

    python -m workflow.evaluate.leakage --style-encoder E.pt --style-lmdb A [--truth T] --out J

Both embeddings come from the same frozen VGG (``E.gram`` is the Gram concatenation itself).
Leakage = how well an embedding predicts content:
- ``content_r2``: ridge regression (5-fold cross-validated R^2; the ridge strength is chosen
  from a fixed grid inside each training split, never on the fold it is scored on) from the
  embedding (PCA to at most 64 dimensions, standardised, so 610k-d Gram vectors and 512-d codes
  compete fairly) to the dlib identity descriptor of the image; any dataset. Near 0 (or below)
  = no linear content signal.
- with the demo's ground truth: leave-one-out 5-NN (cosine) accuracy of the identity (content)
  and of the style label (what the embedding should keep), against chance.
Lower identity/content numbers and higher style numbers are better for a style embedding.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

import numpy as np
import torch

from models.checkpoint import load_style_encoder
from workflow.sampling import to_uint8

from .common import lmdb_batches, lmdb_images, lmdb_indices, machine, write_json
from .face_identity import identity_backend
from .ground_truth import truth_labels
from .probes import FOLDS, K, RIDGE_ALPHAS, knn_loo_accuracy, nested_ridge_r2

# Above this many bytes of Gram vectors (float32) nothing is held whole: 5,000 paper-width
# (610,304-d) vectors are 12 GB, so the PCA streams over image batches instead.
GRAM_IN_MEMORY_BYTES = 2 * 1024 ** 3


def reduce(x: torch.Tensor, dims: int = 64, seed: int = 0) -> np.ndarray:
    x = x.double() - x.double().mean(0)
    q = min(dims, x.shape[0] - 1, x.shape[1])
    if x.shape[1] <= 4096:
        u, s, _ = torch.linalg.svd(x, full_matrices=False)
    else:  # wide Gram vectors (demo 9,536-d, paper 610,304-d): randomised PCA
        with torch.random.fork_rng():  # it draws from the global RNG: seed it, so reruns agree
            torch.manual_seed(seed)
            u, s, _ = torch.pca_lowrank(x, q=q, center=False)
    z = (u[:, :q] * s[:q]).numpy()
    return (z - z.mean(0)) / (z.std(0) + 1e-8)


def streamed_pca(batches, dims: int = 64, oversample: int = 20, seed: int = 0) -> np.ndarray:
    """``reduce`` for rows that never sit in memory together: a two-pass randomised PCA.
    ``batches()`` yields the same (B, D) row blocks in the same order on every call. Pass 1
    sketches Y = X_c Omega (Omega Gaussian, D x l); pass 2 projects B = Q^T X_c with Q an
    orthonormal basis of Y; the SVD of the small B gives the leading components. Memory: D x l
    twice (610,304 x 84 floats = 205 MB each), never N x D."""
    gen = torch.Generator().manual_seed(seed)
    omega, total, sketch, n = None, None, [], 0
    for x in batches():
        x = x.double()
        if omega is None:
            omega = torch.randn(x.shape[1], dims + oversample, generator=gen, dtype=torch.float64)
            total = torch.zeros(x.shape[1], dtype=torch.float64)
        sketch.append(x @ omega)
        total += x.sum(0)
        n += x.shape[0]
    mean = total / n
    q_basis, _ = torch.linalg.qr(torch.cat(sketch) - mean @ omega)
    proj, start = torch.zeros(q_basis.shape[1], len(mean), dtype=torch.float64), 0
    for x in batches():
        proj += q_basis[start:start + len(x)].T @ (x.double() - mean)
        start += len(x)
    u_small, sv, _ = torch.linalg.svd(proj, full_matrices=False)
    q = min(dims, n - 1, len(mean))
    z = ((q_basis @ u_small)[:, :q] * sv[:q]).numpy()
    return (z - z.mean(0)) / (z.std(0) + 1e-8)


def chance(labels: list) -> float:
    c = Counter(labels)
    n = len(labels)
    return float(sum((v / n) ** 2 for v in c.values()))


@torch.no_grad()
def embeddings(encoder, images: torch.Tensor, batch: int = 32) -> dict:
    learned, gram = [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        g = encoder.gram(x)
        gram.append(g)
        learned.append(encoder.mlp(g))
    return {"learned": torch.cat(learned), "gram": torch.cat(gram)}


@torch.no_grad()
def streamed_embeddings(encoder, style_lmdb, resolution: int, indices: list[int], seed: int = 0,
                        batch: int = 32) -> tuple[dict, dict]:
    """(full embeddings, reduced embeddings) with the Gram vectors only ever in batches: the
    learned codes are kept whole (N x 512), the Gram side only as its 64-d PCA."""
    def grams():
        for x in lmdb_batches(style_lmdb, resolution, indices, batch):
            yield encoder.gram(x)
    learned = torch.cat([encoder.mlp(g) for g in grams()])
    gram_pca = streamed_pca(grams, seed=seed)
    return ({"learned": learned, "gram": torch.from_numpy(gram_pca)},
            {"learned": reduce(learned, seed=seed), "gram": gram_pca})


def evaluate(style_encoder, style_lmdb, truth=None, n=400, resolution=None, seed=0,
             identity=True, arcface=None, stream: bool | None = None) -> dict:
    """``stream``: None = stream when the Gram vectors would exceed GRAM_IN_MEMORY_BYTES."""
    from models.images import LMDBImages
    enc = load_style_encoder(style_encoder).eval()
    resolution = resolution or int(enc.init_kwargs.get("pool_size") or 256)
    indices = lmdb_indices(style_lmdb, n, seed)
    if stream is None:
        stream = len(indices) * enc.gram.dim * 4 > GRAM_IN_MEMORY_BYTES
    if stream:
        names = [LMDBImages(style_lmdb, 8).all_names[i] for i in indices]
        emb, red = streamed_embeddings(enc, style_lmdb, resolution, indices, seed)
        dims = {"learned": int(emb["learned"].shape[1]), "gram": int(enc.gram.dim)}
    else:
        images, names, _ = lmdb_images(style_lmdb, resolution, indices=indices)
        emb = embeddings(enc, images)
        red = {k: reduce(v, seed=seed) for k, v in emb.items()}
        dims = {k: int(v.shape[1]) for k, v in emb.items()}
    res = {k: {"dim": d} for k, d in dims.items()}
    settings = {"n": len(indices), "resolution": resolution, "seed": seed, "pca_dims": 64,
                "ridge_alphas": list(RIDGE_ALPHAS),
                "ridge_selection": "nested: leave-one-out inside each outer training split",
                "folds": FOLDS, "k": K, "streamed": bool(stream)}
    if stream:
        settings["gram_knn_space"] = "the Gram vectors' 64-d PCA (streamed: never held whole)"
    if identity:
        backend = identity_backend(arcface)
        desc = (np.concatenate([backend(to_uint8(x)) for x in
                                lmdb_batches(style_lmdb, resolution, indices, 64)])
                if stream else backend(to_uint8(images)))
        for k in red:
            res[k]["content_r2"], res[k]["ridge_alpha_per_fold"] = nested_ridge_r2(
                red[k], desc, seed=seed)
        settings["content_target"] = f"{backend.name} identity descriptor ({desc.shape[1]}-d)"
    if truth:
        by_name = truth_labels(truth)
        keep = [i for i, nm in enumerate(names) if nm in by_name]
        ids = [by_name[names[i]]["identity"] for i in keep]
        styles = [by_name[names[i]]["style"] for i in keep]
        for k, v in emb.items():
            x = v[keep].double().numpy()
            res[k]["identity_knn"] = knn_loo_accuracy(x, ids)
            res[k]["style_knn"] = knn_loo_accuracy(x, styles)
        res["chance"] = {"identity_knn": chance(ids), "style_knn": chance(styles), "n": len(keep)}
    return {"metric": "gram_leakage", "computed": True, "results": res,
            "inputs": {"style_encoder": str(style_encoder), "style_lmdb": str(style_lmdb),
                       "truth": str(truth) if truth else None},
            "settings": settings, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style-encoder", required=True, help="style encoder or BlendGAN checkpoint")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--truth", default=None, help="demo ground truth (identity and style labels)")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--resolution", type=int, default=None, help="default: the encoder's pool size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-identity", action="store_true", help="skip the identity content target")
    p.add_argument("--arcface", default=None, help="ArcFace IR-SE50 file (default: dlib descriptors)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    arcface = None if a.arcface in (None, "none", "null", "") else a.arcface
    rec = evaluate(a.style_encoder, a.style_lmdb, a.truth, a.n, a.resolution, a.seed,
                   not a.no_identity, arcface)
    write_json(a.out, rec)
    print(json.dumps(rec["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
