"""t-SNE time for the full-dataset scale of supplement Figure 1: 33,000 points of dimension 512.

    python scripts/bench_tsne.py [--n 33000] [--dim 512] [--threads 2] [--out bench_tsne.json]

Points are a mixture of 30 Gaussian "styles" in 512-d (structure like real style codes);
timing covers PCA to 50-d plus openTSNE exactly as workflow.evaluate.tsne runs it. Also reports
the 5-NN agreement of the layout with the mixture labels (a sanity check that it separated).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from workflow.evaluate.tsne import run_tsne


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=33000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--clusters", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (a.clusters, a.dim))
    labels = rng.integers(0, a.clusters, a.n)
    x = (centres[labels] + rng.normal(0, 0.8, (a.n, a.dim))).astype(np.float32)
    t = time.perf_counter()
    y, timing = run_tsne(x, seed=0, threads=a.threads)
    timing["total_seconds"] = round(time.perf_counter() - t, 1)
    from scipy.spatial import cKDTree
    sub = rng.choice(a.n, 2000, replace=False)
    _, nn = cKDTree(y).query(y[sub], k=6)
    timing["layout_5nn_label_agreement"] = float((labels[nn[:, 1:]] == labels[sub, None]).mean())
    timing["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                         "load_average_1min": os.getloadavg()[0]}
    print(json.dumps(timing, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(timing, f, indent=1)


if __name__ == "__main__":
    main()
