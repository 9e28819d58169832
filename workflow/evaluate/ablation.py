"""Supplement D on generated images: does the reference's content leak into i = 0 outputs?

    python -m workflow.evaluate.ablation --blendgan G.pt --gram-blendgan GG.pt --style-lmdb A \
        [--style-encoder E.pt] [--truth T] [--arcface F] --out ablation_leakage.json

Two generators (the Gram-embedding ablation, ``style_embedding: gram``, and the learned-encoder
BlendGAN) stylise the same face codes with the same references at i = 0 (every layer styled).
Each reference is embedded by its own generator's style front end (Gram vector, or E_style's
code). Content = the identity descriptor of ``face_identity.py`` (ArcFace IR-SE50 when given, else
dlib's ResNet). For every output o(f, r) of face f and reference r:
- ``reference_gap``: cos(o, ref r) - mean cos(o, other refs). > 0: the output carries content
  of its own reference (leakage).
- ``natural_gap``: cos(o, natural f) - mean cos(o, other natural faces). > 0: the output keeps
  its own face (i = 18 of the same code).
- ``reference_retrieval`` / ``natural_retrieval``: share of outputs whose nearest reference
  (natural face) by content is their own one; chance 1/R (1/F).
- ``closer_to_reference``: share with cos(o, ref r) > cos(o, natural f) (raw; the two
  similarities live on different image kinds, so read it beside the gaps).
- ``reference_sensitivity``: pixel std of one face's outputs across the references (0: the
  generator ignores the reference, and no leakage says nothing).
Gaps and retrieval compare like with like, so the backend's overall similarity level cancels.
With the demo's ground truth the references are drawn with distinct identities, so a reference's
content is unique among the columns. The same faces and references make supplement Figure 4
(``workflow.evaluate.figures ablation``).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from models.checkpoint import load_checkpoint, load_generator
from workflow.sampling import face_codes, load_models, pick_device, to_uint8

from .common import machine, not_computed, write_json
from .face_identity import identity_backend
from .gram_ablation import INDICATOR, gram_embedder, pick_references, stylised_outputs


# ------------------------------------------------------------------------------- scores
def _unit(x):
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def leakage_scores(natural: np.ndarray, refs: np.ndarray, outputs: np.ndarray) -> dict:
    """Content descriptors natural (F, d), references (R, d), outputs (F, R, d) -> scores."""
    n, r, o = _unit(natural), _unit(refs), _unit(outputs)
    F, R = o.shape[:2]
    to_ref = np.einsum("frd,kd->frk", o, r)    # cos(o(f, r), ref k)
    to_nat = np.einsum("frd,kd->frk", o, n)    # cos(o(f, r), natural k)
    own_ref = to_ref[:, np.arange(R), np.arange(R)]                  # (F, R)
    own_nat = to_nat[np.arange(F)[:, None], np.arange(R)[None, :], np.arange(F)[:, None]]
    other_ref = (to_ref.sum(2) - own_ref) / max(R - 1, 1)
    other_nat = (to_nat.sum(2) - own_nat) / max(F - 1, 1)
    return {
        "reference_gap": float((own_ref - other_ref).mean()),
        "natural_gap": float((own_nat - other_nat).mean()),
        "reference_retrieval": float((to_ref.argmax(2) == np.arange(R)[None, :]).mean()),
        "natural_retrieval": float((to_nat.argmax(2) == np.arange(F)[:, None]).mean()),
        "closer_to_reference": float((own_ref > own_nat).mean()),
        "similarity_reference": float(own_ref.mean()),
        "similarity_natural": float(own_nat.mean()),
        "chance_reference_retrieval": 1.0 / R, "chance_natural_retrieval": 1.0 / F,
        "n_outputs": int(F * R),
    }


def _describe(backend, images):
    return backend(to_uint8(images.reshape(-1, *images.shape[-3:])))


def _trained_images(path):
    """Images seen in training, from a project checkpoint's config (None for other formats)."""
    try:
        return load_checkpoint(path, build=False)["config"]["loop"]["total_images"]
    except (ValueError, KeyError, TypeError):
        return None


def evaluate(blendgan, gram_blendgan, style_lmdb, style_encoder=None, truth=None, faces=12,
             references=8, truncation=0.75, seed=0, arcface=None, device="cpu") -> dict:
    inputs = {"blendgan": str(blendgan), "gram_blendgan": str(gram_blendgan) if gram_blendgan else None,
              "style_encoder": str(style_encoder) if style_encoder else None,
              "style_lmdb": str(style_lmdb), "truth": str(truth) if truth else None,
              "arcface": str(arcface) if arcface else None}
    settings = {"indicator": INDICATOR, "faces": faces, "references": references,
                "truncation": truncation, "seed": seed,
                "references_drawn": "distinct demo identities" if truth else "seeded random"}
    if not gram_blendgan:
        return not_computed("ablation_leakage", "no Gram-embedding generator given (train it with "
                            "ablation.enabled or set evaluate.checkpoints.blendgan_gram)",
                            inputs=inputs, settings=settings)
    models = load_models(blendgan, style_encoder, None, device)
    g, enc = models["generator"], models["style_encoder"]
    g_gram = load_generator(gram_blendgan).to(device)
    if enc is None:
        raise SystemExit(f"{blendgan} embeds no style encoder: pass --style-encoder")
    if g.style_dim != g_gram.style_dim:
        raise SystemExit("the two generators need the same face-code width")
    try:
        backend = identity_backend(arcface)
    except (ImportError, RuntimeError) as err:
        return not_computed("ablation_leakage", f"identity network unavailable: {err}",
                            inputs=inputs, settings=settings)
    refs, names = pick_references(style_lmdb, g.resolution, references, seed + 11, truth)
    z = face_codes(faces, g.style_dim, seed)
    desc_refs = backend(to_uint8(refs))
    results = {}
    for name, gen, embed in (("gram", g_gram, gram_embedder(g_gram)), ("learned", g, enc)):
        natural, out = stylised_outputs(gen, embed, z, refs, truncation)
        d_out = _describe(backend, out).reshape(faces, len(refs), -1)
        results[name] = leakage_scores(backend(to_uint8(natural)), desc_refs, d_out)
        # No leakage is only meaningful if the outputs follow the references at all: the pixel
        # std across references of one face (0 = the reference is ignored).
        results[name]["reference_sensitivity"] = float(out.float().std(1).mean())
        results[name]["style_input_dim"] = int(gen.style_input_dim)
        results[name]["trained_images"] = _trained_images(gram_blendgan if name == "gram" else blendgan)
    settings.update(backend=backend.name, detector_fallbacks=backend.fallbacks,
                    resolution=g.resolution, reference_names=names)
    return {"metric": "ablation_leakage", "computed": True, "results": results,
            "inputs": inputs, "settings": settings, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blendgan", required=True, help="the learned-encoder BlendGAN")
    p.add_argument("--gram-blendgan", default=None, help="the Gram-embedding BlendGAN; none: "
                   "the metric is written as not computed")
    p.add_argument("--style-encoder", default=None, help="default: the one inside --blendgan")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--truth", default=None, help="demo ground truth: references of distinct identities")
    p.add_argument("--faces", type=int, default=12)
    p.add_argument("--references", type=int, default=8)
    p.add_argument("--truncation", type=float, default=0.75)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arcface", default=None, help="ArcFace IR-SE50 file (default: dlib backend)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    none = (None, "none", "null", "")
    rec = evaluate(a.blendgan, None if a.gram_blendgan in none else a.gram_blendgan, a.style_lmdb,
                   a.style_encoder, a.truth, a.faces, a.references, a.truncation, a.seed,
                   None if a.arcface in none else a.arcface, pick_device(a.device))
    write_json(a.out, rec)
    print(json.dumps(rec.get("results") or rec.get("reason"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
