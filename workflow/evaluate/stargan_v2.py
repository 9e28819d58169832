"""The StarGAN v2 evaluation protocol (method 5), BlendGAN's main baseline, on BlendGAN.

    python -m workflow.evaluate.stargan_v2 --blendgan G.pt [--style-encoder E.pt] --style-lmdb A \
        --sources 4 [--outputs 10] [--n-real 128] --weights auto --cache-dir DIR \
        [--lpips-weights L --lpips-backbone B] --out stargan_v2.json

For each of --sources source faces (face codes z_f, seeded as the metric sample sets' faces),
--outputs stylisations (10, as StarGAN v2):
- latent-guided:    10 latent style draws z_s (as the generator was trained on them),
- reference-guided: 10 references drawn from the style LMDB (distinct within a source; a new
  draw for every source, as StarGAN v2 takes a new reference batch for every output).
FID of all outputs of a mode against the target domain's training images (the style LMDB, every
image or --n-real of them), through the image path of workflow.evaluate.fid (full resolution, 8
bits, NVIDIA's resize; real features from the same cache), with the calibration beside it
(outputs vs real half B, half A vs half B at the same count) and fid_full (all vs all, the
StarGAN v2 number). LPIPS: mean pairwise LPIPS (AlexNet, v0.1) among the outputs of one source
(45 pairs for 10), averaged over sources; images area-downsampled to at most --lpips-size
(256, StarGAN v2's image size) first. Without LPIPS weights LPIPS is recorded as not computed
with the reason; without Inception weights, FID. Only one source group's images exist at a time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from models.inception import quantise
from models.lpips import load_lpips
from workflow.sampling import face_codes, latent_style_codes, load_models, pick_device

from .common import (GEN_BATCH, Timer, add_run_args, lmdb_batches, lmdb_length, machine,
                     not_computed, return_freed_memory, write_json)
from .feature_distances import compare
from .features import PREPROCESS, Extractor, progress_bar, real_features
from .inception import resolve_weights
from .pairwise_lpips import mean_pairwise
from .samples import shrink

MODES = (("latent_guided", "latent"), ("reference_guided", "reference"))
OUTPUTS = 10  # outputs per source face (StarGAN v2)


def stargan_codes(g, style_lmdb, sources: int, outputs: int, seed: int) -> dict:
    """Source face codes (seed: the sample sets' faces), latent style codes (seed + 4) and
    reference positions (seed + 5), (sources, outputs, ...)."""
    length = lmdb_length(style_lmdb)
    rng = np.random.default_rng(seed + 5)
    picks = [rng.choice(length, outputs, replace=length < outputs).tolist() for _ in range(sources)]
    z_style = latent_style_codes(g, sources * outputs, seed + 4)
    return {"z_face": face_codes(sources, g.style_dim, seed),
            "z_style": z_style.reshape(sources, outputs, -1), "picks": picks}


def source_groups(models, codes, mode, style_lmdb, indicator, truncation, device, per_group):
    """(first source, float outputs (k * outputs, 3, R, R) in [-1, 1]) of ``per_group`` sources
    at a time: the outputs of one source are consecutive. (no_grad inside, not as a decorator,
    which would keep the last yielded batch alive while the next is made.)"""
    g, enc = models["generator"], models["style_encoder"]
    sources, outputs = codes["z_style"].shape[:2]
    for s in range(0, sources, per_group):
        e = min(s + per_group, sources)
        with torch.no_grad():
            z_face = codes["z_face"][s:e].to(device).repeat_interleave(outputs, 0)
            if mode == "latent":
                z_style = codes["z_style"][s:e].reshape((e - s) * outputs, -1).to(device)
            else:
                picks = [i for row in codes["picks"][s:e] for i in row]
                refs = next(lmdb_batches(style_lmdb, g.resolution, picks, batch=len(picks)))
                z_style = enc(refs.to(device))
                del refs
            images = g.generate(z_face, z_style, indicator=indicator, truncation=truncation)
        yield s, images
        del images


def lpips_setup(weights, backbone):
    """(LPIPS net or None, reason)."""
    if not weights:
        return None, "no LPIPS weights configured (evaluate.lpips_weights is null)"
    if not Path(weights).is_file():
        return None, f"LPIPS weights file {weights} not found"
    return load_lpips(weights, backbone=backbone), f"LPIPS weights {weights}"


def run(models, extractor, lpips_net, style_lmdb, sources=4, outputs=OUTPUTS, n_real=None,
        indicator=6, truncation=1.0, kid_subsets=100, seed=0, device="cpu", real_cache=None,
        batch=GEN_BATCH, lpips_size=256, progress=True) -> dict:
    g = models["generator"]
    codes = stargan_codes(g, style_lmdb, sources, outputs, seed)
    per_group = max(1, batch // outputs)
    results, timing, real_info = {}, {}, None
    real_feats = None
    if extractor is not None:
        with Timer() as t:
            real_feats, real_info = real_features(extractor, style_lmdb, g.resolution, n_real, seed,
                                                  real_cache, progress, label="style")
        timing["real_style"] = round(t.seconds, 1)
    if lpips_net is not None:
        lpips_net = lpips_net.to(device)
    for name, mode in MODES:
        if mode == "reference" and models.get("style_encoder") is None:
            continue
        feats, per_source = [], []
        with Timer() as t:
            with progress_bar(sources * outputs, name, progress) as bar:
                for s, images in source_groups(models, codes, mode, style_lmdb, indicator,
                                               truncation, device, per_group):
                    pixels = quantise(images)  # 8 bits, as image files: both metrics read these
                    del images
                    if extractor is not None:
                        feats.append(extractor(pixels))
                    if lpips_net is not None:
                        x = shrink(pixels.float() / 127.5 - 1, lpips_size)
                        per_source += [mean_pairwise(lpips_net, x[k:k + outputs])
                                       for k in range(0, len(x), outputs)]
                        del x
                    bar.update(len(pixels))
                    del pixels
            res = {"n_sources": sources, "outputs_per_source": outputs, "n_outputs": sources * outputs}
            if extractor is not None:
                res["fid"] = compare(np.concatenate(feats), real_feats, kid_subsets, seed)
            if lpips_net is not None:
                res["lpips"] = {"mean": float(np.mean(per_source)), "std": float(np.std(per_source)),
                                "pairs_per_source": outputs * (outputs - 1) // 2,
                                "per_source": per_source}
        timing[name] = round(t.seconds, 1)
        results[name] = res
        del feats
    return {"results": results, "resolution": g.resolution, "timing": timing,
            "real_set": ({"cache": real_info["cache"], "file": real_info["file"],
                          **real_info["fingerprint"]} if real_info else None)}


def evaluate(blendgan, style_lmdb, style_encoder=None, weights="auto", cache_dir=".",
             real_cache=None, lpips_weights=None, lpips_backbone=None, sources=4, outputs=OUTPUTS,
             n_real=None, indicator=6, truncation=1.0, kid_subsets=100, seed=0, device="cpu",
             batch=GEN_BATCH, lpips_size=256, progress=True) -> dict:
    inputs = {"blendgan": str(blendgan), "style_encoder": str(style_encoder) if style_encoder else None,
              "style_lmdb": str(style_lmdb), "lpips_weights": lpips_weights,
              "lpips_backbone": lpips_backbone}
    settings = {"sources": sources, "outputs_per_source": outputs, "n_real": n_real,
                "indicator": indicator, "truncation": truncation, "kid_subsets": kid_subsets,
                "seed": seed, "generator_batch": batch, "lpips_size": lpips_size,
                "preprocess": PREPROCESS, "weights_setting": weights,
                "real_set": "the style LMDB (the target domain's training images)",
                "codes": "sources: face_codes(seed); latent: latent_style_codes(seed + 4); "
                         "references: per source, distinct, rng(seed + 5)",
                "lpips_backbone": "alexnet (LPIPS v0.1)"}
    path, fid_why = resolve_weights(weights, cache_dir)
    lpips_net, lpips_why = lpips_setup(lpips_weights, lpips_backbone)
    status = {"fid_computed": path is not None, "fid_reason": fid_why,
              "lpips_computed": lpips_net is not None, "lpips_reason": lpips_why}
    if path is None and lpips_net is None:
        return not_computed("stargan_v2", f"FID: {fid_why}; LPIPS: {lpips_why}", **status,
                            inputs=inputs, settings=settings)
    real_cache = real_cache if real_cache is not None else Path(cache_dir) / "fid_real"
    with Timer() as total:
        models = load_models(blendgan, style_encoder, device=device)
        extractor = Extractor.from_weights(path, device) if path is not None else None
        out = run(models, extractor, lpips_net, style_lmdb, sources, outputs, n_real, indicator,
                  truncation, kid_subsets, seed, device, real_cache, batch, lpips_size, progress)
    out["timing"]["seconds"] = round(total.seconds, 1)
    return {"metric": "stargan_v2", "computed": True, **status,
            "protocol": f"StarGAN v2: {outputs} outputs per source face, FID of all outputs vs the "
                        "target domain's training images, LPIPS among each source's outputs",
            **out, "inputs": inputs, "settings": settings, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blendgan", required=True)
    p.add_argument("--style-encoder", default=None, help="default: the generator's embedded encoder")
    p.add_argument("--style-lmdb", required=True, help="the target domain (AAHQ) LMDB")
    p.add_argument("--sources", type=int, default=4, help="source faces (paper scale: 1000)")
    p.add_argument("--outputs", type=int, default=OUTPUTS, help="outputs per source and mode")
    p.add_argument("--n-real", type=int, default=None, help="real images (default: all)")
    p.add_argument("--indicator", type=int, default=6)
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--weights", default="auto", help="Inception state dict file, 'auto' or 'none'")
    p.add_argument("--cache-dir", default=".", help="where 'auto' keeps the converted weights")
    p.add_argument("--real-cache", default=None, help="cached real features (default: CACHE_DIR/fid_real)")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--lpips-backbone", default=None)
    p.add_argument("--lpips-size", type=int, default=256)
    add_run_args(p, "generator batch (whole sources)")
    a = p.parse_args(argv)
    return_freed_memory()
    if a.threads:
        torch.set_num_threads(a.threads)
    off = (None, "none", "null", "")
    rec = evaluate(a.blendgan, a.style_lmdb, a.style_encoder,
                   None if a.weights in off else a.weights, a.cache_dir, a.real_cache,
                   None if a.lpips_weights in off else a.lpips_weights,
                   None if a.lpips_backbone in off else a.lpips_backbone, a.sources, a.outputs,
                   a.n_real, a.indicator, a.truncation, a.kid_subsets, a.seed,
                   pick_device(a.device), a.batch, a.lpips_size, a.progress)
    write_json(a.out, rec)
    print({k: v for k, v in rec.items() if k in ("results", "reason", "fid_reason", "lpips_reason")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
