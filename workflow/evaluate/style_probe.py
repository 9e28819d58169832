"""Probes of the trained networks on the demo's ground truth (the pipeline never reads truth).

    python -m workflow.evaluate.style_probe encoder  --checkpoint E.pt --data STYLE_LMDB --truth T --out J
    python -m workflow.evaluate.style_probe blendgan --checkpoint G.pt --encoder E.pt --data STYLE_LMDB \
        --truth T --stats STATS.jsonl --out J
    python -m workflow.evaluate.style_probe psp      --stats STATS.jsonl --out J

encoder: 5-nearest-neighbour (cosine) accuracy of the true style label and of the identity
(face geometry) on images held out of encoder training, neighbours drawn from the training
images, for the learned encoder and for the Gram-concatenation baseline (same frozen VGG).
blendgan: reference-guided outputs (held-out references, i = 6) embedded by the style
encoder; share whose 5-NN training style label equals the reference's, against chance; plus the
FD-Estyle proxy trajectory from training stats. psp: held-out reconstruction error over
training, from the stats log.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import torch

from models.checkpoint import load_checkpoint, load_generator, load_style_encoder
from models.train.stats import read_stats
from models.images import LMDBImages

from . import probes
from .common import machine, write_json
from .ground_truth import truth_labels
from .probes import K


@torch.no_grad()
def embed(fn, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch]) for i in range(0, len(images), batch)])


def knn_predict(train: torch.Tensor, train_labels: list, query: torch.Tensor, k: int = K) -> list:
    """Majority label of the k nearest training rows (cosine); ties go to the nearer one."""
    return probes.knn_predict(train.detach().double().cpu().numpy(), train_labels,
                              query.detach().double().cpu().numpy(), k)


def accuracy(pred, true) -> float:
    return float(np.mean([p == t for p, t in zip(pred, true)])) if true else float("nan")


def chance(train_labels, test_labels) -> dict:
    """Expected accuracy of guessing from the training label frequencies, and of always
    guessing the most frequent training label."""
    tr, te = Counter(train_labels), Counter(test_labels)
    n_tr, n_te = sum(tr.values()), sum(te.values())
    return {"random_by_frequency": sum(tr[c] / n_tr * te[c] / n_te for c in te),
            "majority": te.get(tr.most_common(1)[0][0], 0) / n_te, "classes": len(tr)}


def load_split(data, resolution, names_out: set, labels: dict):
    """(train images, train names, held-out images, held-out names), only names with truth."""
    ds = LMDBImages(data, resolution)
    train, held = [], []
    for i, name in enumerate(ds.all_names):
        rec = labels.get(name)
        if rec is None or rec.get("style") is None:
            continue
        (held if name in names_out else train).append(i)
    load = lambda idx: torch.stack([ds[i] for i in idx]) if idx else torch.zeros(0)
    return load(train), [ds.all_names[i] for i in train], load(held), [ds.all_names[i] for i in held]


# ----------------------------------------------------------------------------- encoder
def probe_encoder(checkpoint, data, truth) -> dict:
    ck = load_checkpoint(checkpoint, build=False)
    held_names = set(ck["extra"].get("holdout_names") or [])
    if not held_names:
        raise ValueError(f"{checkpoint}: no held-out images recorded (set style_encoder.holdout)")
    res = int(ck["config"].get("resolution", 64))
    enc = load_style_encoder(checkpoint)
    labels = truth_labels(truth)
    xtr, ntr, xte, nte = load_split(data, res, held_names, labels)
    result = {"checkpoint": str(checkpoint), "k": K, "train_images": len(ntr),
              "heldout_images": len(nte), "resolution": res, "machine": machine()}
    for key in ("style", "identity"):
        ytr = [labels[n][key] for n in ntr]
        yte = [labels[n][key] for n in nte]
        result[f"chance_{key}"] = chance(ytr, yte)
    for name, fn in (("learned_encoder", enc), ("gram_baseline", enc.gram)):
        ftr, fte = embed(fn, xtr), embed(fn, xte)
        row = {"dim": int(ftr.shape[1])}
        for key in ("style", "identity"):
            ytr = [labels[n][key] for n in ntr]
            yte = [labels[n][key] for n in nte]
            row[f"knn_{key}_accuracy"] = accuracy(knn_predict(ftr, ytr, fte), yte)
        result[name] = row
    return result


# ----------------------------------------------------------------------------- blendgan
def trajectory(stats_path, keys) -> dict:
    rows = [r for r in read_stats(stats_path) if any(k in r for k in keys)]
    out = {}
    for k in keys:
        pts = [(r["images"], r[k]) for r in rows if k in r]
        if pts:
            out[k] = {"first": pts[0][1], "last": pts[-1][1], "best": min(p[1] for p in pts),
                      "improved": pts[-1][1] < pts[0][1],
                      "points": [{"images": i, "value": v} for i, v in pts]}
    return out


@torch.no_grad()
def probe_blendgan(checkpoint, encoder_ckpt, data, truth, stats, per_reference: int = 8,
                   indicator: int = 6, seed: int = 0) -> dict:
    g = load_generator(checkpoint)
    enc = load_style_encoder(encoder_ckpt)
    eck = load_checkpoint(encoder_ckpt, build=False)
    held_names = set(eck["extra"].get("holdout_names") or [])
    # Everything at the generator's resolution, as BlendGAN training fed the encoder.
    res = g.resolution
    labels = truth_labels(truth)
    xtr, ntr, xte, nte = load_split(data, res, held_names, labels)
    if not nte:  # no held-out set: references from the training images
        xte, nte = xtr, ntr
    ytr = [labels[n]["style"] for n in ntr]
    yte = [labels[n]["style"] for n in nte]
    ftr = embed(enc, xtr)
    # Real held-out references: how well the encoder's 5-NN recovers their own label (ceiling).
    ceiling = accuracy(knn_predict(ftr, ytr, embed(enc, xte)), yte)
    gen = torch.Generator().manual_seed(seed)
    hits, total = Counter(), Counter()  # per reference style label
    refs_pred = []
    for x, y in zip(xte, yte):
        z_face = torch.randn(per_reference, g.style_dim, generator=gen)
        z_s = enc(x[None]).expand(per_reference, -1)
        out = g.generate(z_face, z_s, indicator=indicator)
        pred = knn_predict(ftr, ytr, enc(out))
        hits[y] += sum(p == y for p in pred)
        total[y] += len(pred)
        refs_pred += pred
    natural = g.generate(torch.randn(64, g.style_dim, generator=gen))
    nat_pred = knn_predict(ftr, ytr, enc(natural))
    result = {
        "checkpoint": str(checkpoint), "resolution": res, "references": len(nte),
        "outputs_per_reference": per_reference,
        "indicator": indicator, "k": K, "machine": machine(),
        "reference_guided_label_agreement": sum(hits.values()) / max(sum(total.values()), 1),
        # Which styles transfer: palette-defined ones do long before stroke-defined ones.
        "agreement_per_reference_style": {s: hits[s] / total[s] for s in sorted(total)},
        "outputs_per_reference_style": dict(sorted(total.items())),
        "chance": chance(ytr, yte),
        "encoder_ceiling_on_real_references": ceiling,
        "predicted_label_histogram": dict(Counter(refs_pred)),
        "natural_outputs_label_histogram": dict(Counter(nat_pred)),
        "proxy_metric": "FD-Estyle: Frechet distance in the style encoder's z_s space "
                        "(not FID; no Inception weights here); lower is better",
    }
    if stats:
        result["fd_estyle_over_training"] = trajectory(
            stats, ["eval/fd_estyle_natural", "eval/fd_estyle_reference", "eval/fd_estyle_latent"])
    return result


def probe_psp(stats) -> dict:
    return {"held_out_reconstruction": trajectory(stats, ["eval/val_l2", "eval/val_l1"]),
            "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encoder", help="kNN style/identity accuracy: learned encoder vs Gram")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--truth", required=True)
    e.add_argument("--out", required=True)
    b = sub.add_parser("blendgan", help="reference-guided style-label agreement, FD-Estyle")
    b.add_argument("--checkpoint", required=True)
    b.add_argument("--encoder", required=True)
    b.add_argument("--data", required=True)
    b.add_argument("--truth", required=True)
    b.add_argument("--stats")
    b.add_argument("--indicator", type=int, default=6)
    b.add_argument("--out", required=True)
    s = sub.add_parser("psp", help="held-out reconstruction error over training")
    s.add_argument("--stats", required=True)
    s.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.what == "encoder":
        res = probe_encoder(a.checkpoint, a.data, a.truth)
    elif a.what == "blendgan":
        res = probe_blendgan(a.checkpoint, a.encoder, a.data, a.truth, a.stats, indicator=a.indicator)
    else:
        res = probe_psp(a.stats)
    write_json(a.out, res)
    print(json.dumps({k: v for k, v in res.items() if "over_training" not in k
                      and k != "held_out_reconstruction"}, indent=1, default=str))


if __name__ == "__main__":
    main()
