"""Content preservation (method 5).

    python -m workflow.evaluate.identity --samples samples/ --out content.json

Content preservation: identity similarity between each natural face G(z_f, i = 18) and its
stylisations (latent- and reference-guided, same z_f), against a mismatched-pair baseline.
Identity descriptors (workflow.evaluate.face_identity): ArcFace IR-SE50 (the paper's identity
network) when ``--arcface FILE`` is given, otherwise dlib's face-recognition ResNet.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .common import derangement, machine, not_computed, return_freed_memory, write_json
from .face_identity import ArcFaceIdentity, DlibIdentity, identity_backend
from .sample_sets import open_sets


def identity_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of descriptors."""
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    return (a * b).sum(1)


def preservation(natural: np.ndarray, stylised: np.ndarray, seed: int = 0) -> dict:
    """Matched (same z_f) vs mismatched (deranged) identity similarity and dlib distance."""
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
