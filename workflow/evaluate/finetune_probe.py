"""Does one-shot fine-tuning (method 4.4) move the generator toward the reference's style?

    python -m workflow.evaluate.finetune_probe --base G.pt --finetune F.pt --style-lmdb A \
        --face-lmdb F [--reference IMAGE] [--faces 32] [--references 16] --out J

Base and fine-tuned generators draw the same faces (i = 6, reference-guided with the reference's
code); the frozen style encoder E_style (the one inside the fine-tune checkpoint) embeds them.
Reported for both models:
  reference_cosine     mean cos(E(output), E(reference)): the number training logs
  closer_than_reference  share of AAHQ images whose code is nearer to an output than the
                       reference's code is (0 = the outputs sit nearest the reference among
                       all styles); less self-referential than the cosine alone
  in_distribution_cosine  reference_cosine for AAHQ references: the gap to it is how far the
                       out-of-distribution reference lags behind what the model does anyway
  natural: FD-Estyle of the natural outputs (i = 18) against FFHQ in z_s space (a proxy, not
                       FID) and the mean absolute pixel change of natural outputs (face branch)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F

from basics.frechet import frechet_distance_of_features
from models.checkpoint import load_generator, load_style_encoder
from models.images import LMDBImages
from workflow.sampling import face_codes

from .common import machine, write_json
from .finetune_reference import tuned_reference

INDICATOR = 6


@torch.no_grad()
def style_match(g, enc, z, code, bank) -> dict:
    """cos(E(G(z, code, 6)), code) and the share of bank codes nearer to the outputs."""
    out = F.normalize(enc(g.generate(z, code.expand(len(z), -1), indicator=INDICATOR)), dim=1)
    ref = F.normalize(code, dim=1)
    cos = out @ ref.T                                  # (N, 1)
    closer = ((out @ bank.T) > cos).float().mean()     # per output, share of bank beyond the ref
    return {"reference_cosine": float(cos.mean()), "closer_than_reference": float(closer)}


@torch.no_grad()
def probe(base, finetune, style_lmdb, face_lmdb, reference=None, faces=32, references=16,
          natural=128, seed=0) -> dict:
    g0, g1 = load_generator(base), load_generator(finetune)
    enc = load_style_encoder(finetune)
    res = g0.resolution
    ref = tuned_reference(finetune, res, reference)
    styles, face_set = LMDBImages(style_lmdb, res), LMDBImages(face_lmdb, res)
    bank = F.normalize(torch.cat([enc(torch.stack([styles[i] for i in range(s, min(s + 64, len(styles)))]))
                                  for s in range(0, len(styles), 64)]), dim=1)
    z = face_codes(faces, g0.style_dim, seed)
    code = enc(ref)
    gen = torch.Generator().manual_seed(seed + 1)
    picks = torch.randperm(len(styles), generator=gen)[:references].tolist()
    result = {"indicator": INDICATOR, "faces": faces, "in_distribution_references": len(picks),
              "reference_nearest_aahq_cosine": float((F.normalize(code, dim=1) @ bank.T).max()),
              "aahq_images": len(styles), "resolution": res, "base": str(base),
              "finetune": str(finetune), "machine": machine()}
    n = min(natural, len(face_set))
    z_nat = face_codes(n, g0.style_dim, seed + 2)
    real = enc(torch.stack([face_set[i] for i in range(n)])).double().numpy()
    nat0, nat1 = g0.generate(z_nat), g1.generate(z_nat)
    for name, g, nat in (("before", g0, nat0), ("after", g1, nat1)):
        row = style_match(g, enc, z, code, bank)
        indist = [style_match(g, enc, z[:8], enc(styles[i][None]), bank)["reference_cosine"]
                  for i in picks]
        row["in_distribution_cosine"] = float(np.mean(indist))
        row["gap_to_in_distribution"] = row["in_distribution_cosine"] - row["reference_cosine"]
        row["fd_estyle_natural"] = frechet_distance_of_features(enc(nat).double().numpy(), real)
        result[name] = row
    result["natural_mean_abs_change"] = float((nat1 - nat0).abs().mean())
    b, a = result["before"], result["after"]
    result["improved"] = {"reference_cosine": a["reference_cosine"] > b["reference_cosine"],
                          "closer_than_reference": a["closer_than_reference"] < b["closer_than_reference"]}
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="BlendGAN checkpoint before fine-tuning")
    p.add_argument("--finetune", required=True, help="fine-tuned checkpoint")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--face-lmdb", required=True)
    p.add_argument("--reference", default=None, help="default: the image inside --finetune")
    p.add_argument("--faces", type=int, default=32)
    p.add_argument("--references", type=int, default=16, help="AAHQ references for the gap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    res = probe(a.base, a.finetune, a.style_lmdb, a.face_lmdb, a.reference, a.faces, a.references,
                seed=a.seed)
    write_json(a.out, res)
    for k in ("before", "after"):
        print(k, {m: round(v, 4) for m, v in res[k].items()})
    print("natural_mean_abs_change", round(res["natural_mean_abs_change"], 4))


if __name__ == "__main__":
    sys.exit(main())
