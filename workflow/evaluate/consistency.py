"""Style consistency (method 5): cosine similarity of E_style(output) and E_style(reference),
against a shuffled-reference baseline (each output compared with another output's reference).

    python -m workflow.evaluate.consistency --samples samples/ --blendgan G.pt \
        [--style-encoder E.pt] --out consistency.json

matched - shuffled > 0 means the outputs carry their own reference's style, not just "some
artistic style". An image compared with itself scores exactly 1 (the maximum).
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from workflow.sampling import load_models

from .common import derangement, from_uint8, machine, not_computed, return_freed_memory, write_json
from .sample_sets import READ_BATCH, open_sets


@torch.no_grad()
def embed(encoder, images: torch.Tensor, batch: int = READ_BATCH) -> torch.Tensor:
    return torch.cat([encoder(images[i:i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def embed_rows(encoder, rows) -> torch.Tensor:
    """Codes of a stored set, read and encoded one batch at a time."""
    return torch.cat([encoder(from_uint8(images)) for images in rows.batches()])


@torch.no_grad()
def style_consistency(encoder, outputs: torch.Tensor, references: torch.Tensor, seed: int = 0) -> dict:
    return consistency_of_codes(embed(encoder, outputs), embed(encoder, references), seed)


def consistency_of_codes(z_outputs: torch.Tensor, z_references: torch.Tensor, seed: int = 0) -> dict:
    zo = F.normalize(z_outputs.float(), dim=1)
    zr = F.normalize(z_references.float(), dim=1)
    matched = (zo * zr).sum(1)
    perm = torch.as_tensor(derangement(len(zr), seed))
    shuffled = (zo * zr[perm]).sum(1)
    return {"matched": float(matched.mean()), "matched_std": float(matched.std()),
            "shuffled": float(shuffled.mean()), "shuffled_std": float(shuffled.std()),
            "gap": float((matched - shuffled).mean()),
            "share_matched_above_shuffled": float((matched > shuffled).float().mean()),
            "n": len(zo)}


def evaluate(samples, blendgan, style_encoder=None, seed=0) -> dict:
    data = open_sets(samples)
    inputs = {"samples": str(data.path), "blendgan": str(blendgan), "style_encoder": style_encoder}
    settings = {"seed": seed, "indicator": int(data.scalars["indicator"]),
                "similarity": "cosine of z_s", "baseline": "references deranged (no self-pairs)"}
    if "reference" not in data:
        return not_computed("style_consistency", "no reference-guided samples (no style encoder)",
                            inputs=inputs, settings=settings)
    enc = load_models(blendgan, style_encoder)["style_encoder"].eval()
    res = consistency_of_codes(embed_rows(enc, data["reference"]), embed_rows(enc, data["references"]), seed)
    return {"metric": "style_consistency", "computed": True, **res, "inputs": inputs,
            "settings": settings, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True)
    p.add_argument("--blendgan", required=True)
    p.add_argument("--style-encoder", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return_freed_memory()  # batch buffers go back to the system (common.py)
    rec = evaluate(a.samples, a.blendgan, a.style_encoder, a.seed)
    write_json(a.out, rec)
    print({k: rec.get(k) for k in ("matched", "shuffled", "gap", "reason") if k in rec})
    return 0


if __name__ == "__main__":
    sys.exit(main())
