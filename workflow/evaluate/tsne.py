"""t-SNE of the style embeddings of the artistic dataset (supplement Figure 1).

    python -m workflow.evaluate.tsne --style-encoder E.pt --style-lmdb A [--truth T] \
        --out-png tsne.png --out-json tsne.json [--embeddings embeddings.npz]

Embeds every image of the LMDB with E_style (or up to ``--n``), reduces to 50 dimensions with
PCA, then runs openTSNE (FIt-SNE: approximate neighbours + FFT-interpolated gradients, linear
in the number of points), so tens of thousands of points take minutes on a laptop. Colours: the
true style label when the demo's ground truth is given, else k-means clusters of the embedding,
each with a thumbnail of its most central image.
"""

from __future__ import annotations

import argparse
import colorsys
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from models.checkpoint import load_style_encoder
from models.images import LMDBImages
from workflow.sampling import pick_device, save_png, to_pil

from .common import lmdb_length, machine, write_json
from .ground_truth import truth_labels


def palette(n: int) -> list[tuple[int, int, int]]:
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / max(n, 1), 0.75, 0.85)) for k in range(n)]


@torch.no_grad()
def embed_lmdb(encoder, lmdb, resolution: int, n: int | None = None, batch: int = 64,
               seed: int = 0, device="cpu") -> tuple[np.ndarray, list[str], list[int]]:
    """E_style codes of the LMDB (a seeded subset of n when given), streamed in batches."""
    ds = LMDBImages(lmdb, resolution)
    idx = list(range(len(ds)))
    if n is not None and n < len(idx):
        idx = sorted(np.random.default_rng(seed).choice(len(idx), n, replace=False).tolist())
    out = []
    for i in range(0, len(idx), batch):
        x = torch.stack([ds[j] for j in idx[i:i + batch]]).to(device)
        out.append(encoder(x).float().cpu())
    return torch.cat(out).numpy(), [ds.all_names[j] for j in idx], idx


def pca(x: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    x = x - x.mean(0)
    dims = min(dims, *x.shape)  # a small set (the CI demo) has fewer points than dimensions
    if x.shape[1] <= dims:
        return x
    with torch.random.fork_rng():  # randomised: seeded, so reruns agree
        torch.manual_seed(seed)
        _, _, v = torch.pca_lowrank(torch.from_numpy(x).float(), q=dims, center=False, niter=4)
    return (torch.from_numpy(x).float() @ v).numpy()


def run_tsne(x: np.ndarray, seed: int = 0, threads: int = 2, perplexity: float = 30.0,
             n_iter: int = 500) -> tuple[np.ndarray, dict]:
    """(N, D) -> (N, 2) with openTSNE; returns the layout and timings."""
    from openTSNE import TSNE
    t0 = time.perf_counter()
    z = pca(x.astype(np.float32), 50, seed)
    t1 = time.perf_counter()
    perplexity = min(perplexity, max(2.0, (len(z) - 1) / 3.0))
    tsne = TSNE(perplexity=perplexity, n_iter=n_iter, initialization="pca", metric="euclidean",
                neighbors="annoy" if len(z) > 1000 else "exact",
                negative_gradient_method="fft" if len(z) > 1000 else "bh",
                n_jobs=threads, random_state=seed, verbose=False)
    y = np.asarray(tsne.fit(z))
    t2 = time.perf_counter()
    return y, {"pca_seconds": round(t1 - t0, 2), "tsne_seconds": round(t2 - t1, 2),
               "n": len(x), "dim": x.shape[1], "perplexity": perplexity, "n_iter": n_iter,
               "threads": threads}


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from scipy.cluster.vq import kmeans2
    _, labels = kmeans2(x.astype(np.float64), k, seed=seed, minit="++")
    return labels


def plot(y: np.ndarray, labels: list, names: list[str] | None = None, size: int = 900,
         thumbs: dict | None = None, title: str = "") -> Image.Image:
    """Scatter plot with a legend; ``thumbs`` maps a point index to a PIL thumbnail."""
    classes = sorted(set(labels), key=str)
    colours = dict(zip(classes, palette(len(classes))))
    legend_w = 190
    img = Image.new("RGB", (size + legend_w, size), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = y.min(0), y.max(0)
    margin = 30
    xy = margin + (y - lo) / np.maximum(hi - lo, 1e-9) * (size - 2 * margin)
    r = 2 if len(y) > 5000 else 3
    for (px, py), lab in zip(xy, labels):
        draw.ellipse([px - r, py - r, px + r, py + r], fill=colours[lab])
    for i, th in (thumbs or {}).items():
        px, py = xy[i]
        w = th.size[0]
        img.paste(th, (int(px - w / 2), int(py - w / 2)))
        draw.rectangle([px - w / 2, py - w / 2, px + w / 2, py + w / 2], outline=colours[labels[i]], width=2)
    draw.text((8, 8), title, fill=(0, 0, 0))
    for k, c in enumerate(classes[:60]):
        y0 = 20 + 16 * k
        draw.rectangle([size + 8, y0, size + 20, y0 + 12], fill=colours[c])
        draw.text((size + 26, y0), str(c), fill=(0, 0, 0))
    return img


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style-encoder", required=True, help="style encoder or BlendGAN checkpoint")
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--truth", default=None, help="demo ground truth: colour by true style")
    p.add_argument("--n", type=int, default=None, help="at most this many images (default: all)")
    p.add_argument("--resolution", type=int, default=None, help="default: the encoder's pool size")
    p.add_argument("--clusters", type=int, default=12, help="k-means clusters without truth")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--embeddings", default=None, help="also save codes + layout (.npz)")
    p.add_argument("--codes", default=None,
                   help="reuse codes from an --embeddings file (skips embedding, e.g. done on a GPU)")
    p.add_argument("--out-png", required=True)
    p.add_argument("--out-json", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    enc = load_style_encoder(a.style_encoder).to(device).eval()
    res = a.resolution or int(enc.init_kwargs.get("pool_size") or 256)
    t0 = time.perf_counter()
    if a.codes:
        saved = np.load(a.codes)
        codes, names = saved["codes"], [str(x) for x in saved["names"]]
        lookup = {nm: i for i, nm in enumerate(LMDBImages(a.style_lmdb, 8).all_names)}
        idx = [lookup[nm] for nm in names]
    else:
        codes, names, idx = embed_lmdb(enc, a.style_lmdb, res, a.n, seed=a.seed, device=device)
    t_embed = time.perf_counter() - t0
    y, timing = run_tsne(codes, a.seed, a.threads)
    timing["embed_seconds"] = round(t_embed, 2)
    thumbs = None
    if a.truth:
        by_name = truth_labels(a.truth)
        labels = [by_name[nm]["style"] if nm in by_name else "unknown" for nm in names]
        colour_by = "true style (demo ground truth)"
    else:
        k = min(a.clusters, len(codes))
        lab = kmeans(pca(codes, 50, a.seed), k, a.seed)
        labels = [f"cluster {c:02d}" for c in lab]
        ds = LMDBImages(a.style_lmdb, 64)
        thumbs = {}
        for c in range(k):
            members = np.flatnonzero(lab == c)
            if len(members):  # the member nearest its cluster's centre in the layout
                centre = y[members].mean(0)
                m = members[np.argmin(((y[members] - centre) ** 2).sum(1))]
                thumbs[int(m)] = to_pil(ds[idx[m]]).resize((56, 56), Image.LANCZOS)
        colour_by = f"k-means clusters (k = {k}) of the embedding, thumbnail = most central image"
    title = f"t-SNE of E_style codes, {len(codes)} images; colour: {colour_by}"
    save_png(plot(y, labels, names, thumbs=thumbs, title=title), a.out_png)
    if a.embeddings:
        np.savez_compressed(a.embeddings, codes=codes, layout=y, names=np.asarray(names))
    write_json(a.out_json, {"figure": "tsne", "inputs": {"style_encoder": a.style_encoder,
               "style_lmdb": a.style_lmdb, "truth": a.truth, "lmdb_images": lmdb_length(a.style_lmdb)},
               "settings": {"n": len(codes), "resolution": res, "seed": a.seed, "colour_by": colour_by,
                            "pca_dims": 50, "method": "openTSNE (FFT gradients, annoy neighbours)"},
               "timing": timing, "machine": machine()})
    print(timing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
