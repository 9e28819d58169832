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
import sys
from pathlib import Path

import torch

from models.inception import quantise
from workflow.sampling import load_models, pick_device

from .common import (GEN_BATCH, Timer, add_run_args, lmdb_batches, machine, not_computed,
                     return_freed_memory, write_json)
from .feature_distances import compare
from .features import PREPROCESS, Extractor, real_features
from .inception import resolve_weights
from .samples import metric_codes

COMPARISONS = (("latent_guided", "latent", "style"), ("reference_guided", "reference", "style"),
               ("natural", "natural", "face"))


# -------------------------------------------------------------------------- generated images
def generated_batches(models: dict, codes: dict, kind: str, style_lmdb, indicator: int,
                      truncation: float, device, batch: int = GEN_BATCH):
    """uint8 outputs of one metric set ("natural", "latent", "reference"), one batch at a time,
    at the generator's full resolution. (no_grad inside: torch's decorator on a generator keeps
    the last yielded batch alive while the next one is made.)"""
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


if __name__ == "__main__":
    sys.exit(main())
