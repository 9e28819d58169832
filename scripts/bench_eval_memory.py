"""Peak memory of the evaluation's data path: sample generation + FID feature extraction, the
streamed sample folder (workflow.evaluate.sample_sets) and the streamed FID (workflow.evaluate.fid:
generator -> features, one batch at a time, real features cached) against whole arrays in memory
(the samples.npz layout used before).

    python scripts/bench_eval_memory.py --n 2000 --style-lmdb results/data/style/lmdb \
        --face-lmdb results/data/face/lmdb --out bench_eval_memory.json

A tiny random generator at 256 px stands in for BlendGAN, and a pooling + linear layer with
2048 outputs for the Inception layers (after the 299 resize): the memory at stake is the images', not the networks'. Each variant
runs in its own process. peak_mb is the kernel's ru_maxrss; peak_anon_mb samples RssAnon (heap,
not file pages) every 20 ms. glibc keeps freed heap for reuse, so RSS stays above what is live;
MALLOC_MMAP_THRESHOLD_=1000000 in the environment shows the live size more closely.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class StandInInception(torch.nn.Module):
    """2048 features per image from an 8x8 average pool: cheap, same output size as pool3."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 64, 2048)

    def forward(self, x):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))


def tiny_checkpoints(folder: Path, size: int) -> dict:
    from models.blendgan import BlendGenerator
    from models.checkpoint import save_checkpoint
    from models.style_encoder import StyleEncoder
    torch.manual_seed(0)
    enc = StyleEncoder(style_dim=16, n_mlp=2, vgg_width=0.0625, pool_size=32).eval()
    g = BlendGenerator(size, style_dim=16, n_mlp=2, channel_base=64, channel_max=8,
                       style_encoder=enc.init_kwargs)
    g.embedder.load_state_dict(enc.state_dict())
    g.add_weight.data.fill_(0.5)  # a fresh alpha = 1 would ignore the style
    paths = {"blendgan": folder / "g.pt", "style_encoder": folder / "e.pt"}
    save_checkpoint(paths["blendgan"], {"g_ema": g.eval()})
    save_checkpoint(paths["style_encoder"], {"style_encoder": enc})
    return {k: str(v) for k, v in paths.items()}


def rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def watch_anon(peak: dict):
    """Keep peak["anon"] at the largest RssAnon seen (MB), sampled by a daemon thread."""
    import threading

    def loop():
        while True:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak["anon"] = max(peak.get("anon", 0), int(line.split()[1]) / 1024)
            time.sleep(0.02)
    threading.Thread(target=loop, daemon=True).start()


def run_variant(variant: str, a) -> dict:
    """One variant in this process: generate the sets, then FID features of latent + natural."""
    import numpy as np
    from basics.frechet import frechet_distance_of_features
    from workflow.evaluate import fid, samples
    from workflow.evaluate.common import from_uint8, lmdb_images, return_freed_memory
    from workflow.evaluate.features import Extractor, inception_features
    from workflow.sampling import face_codes, load_models, to_uint8
    if a.malloc_tuned:
        return_freed_memory()  # as the evaluation CLIs do
    peak = {}
    watch_anon(peak)
    ckpt = json.loads(a.checkpoints)
    models = load_models(ckpt["blendgan"], ckpt["style_encoder"])
    torch.manual_seed(0)
    net = StandInInception()
    out = {"after_model_load_mb": rss_mb()}
    t0 = time.perf_counter()
    target = Path(a.workdir) / variant
    if variant == "streamed":
        samples.draw(models, a.style_lmdb, target, a.n, 2, 3, seed=0, max_size=256)
        out["generate_s"], out["after_generate_mb"] = time.perf_counter() - t0, rss_mb()
        t0 = time.perf_counter()
        # FID streams from the generator (one batch of images at a time), reals from the LMDB
        # through the feature cache: the first run fills it, the second reads it
        ext = Extractor(net, "stand-in", batch=32)
        cache = Path(a.workdir) / f"fid_real_{a.n}"
        rec = fid.run(models, ext, a.style_lmdb, a.face_lmdb, n=a.n, n_real=a.n_real,
                      kid_subsets=10, real_cache=cache, progress=False)
        out["fid"] = {k: v["fid"] for k, v in rec["results"].items()}
        out["fid_first_s"], t1 = time.perf_counter() - t0, time.perf_counter()
        rec = fid.run(models, ext, a.style_lmdb, a.face_lmdb, n=a.n, n_real=a.n_real,
                      kid_subsets=10, real_cache=cache, progress=False)
        out["fid_rerun_s"] = time.perf_counter() - t1
        out["fid_rerun_cache"] = {k: v["cache"] for k, v in rec["real_sets"].items()}
        size = sum(f.stat().st_size for f in target.iterdir())
    else:  # whole arrays: the code before the folder format, in short
        g, enc = models["generator"], models["style_encoder"]
        z_face = face_codes(a.n, g.style_dim, 0)
        z_style = face_codes(a.n, g.style_dim, 1)
        data = {"natural": samples._gen(g, z_face, None, 18, 1.0),
                "latent": samples._gen(g, z_face, z_style, 6, 1.0)}
        refs, _, _ = lmdb_images(a.style_lmdb, g.resolution, a.n, 0)
        refs = refs.repeat((a.n + len(refs) - 1) // len(refs), 1, 1, 1)[:a.n]
        codes = torch.cat([enc(refs[i:i + 32]) for i in range(0, a.n, 32)])
        data["reference"] = samples._gen(g, z_face, codes, 6, 1.0)
        data["references"] = to_uint8(refs)
        del refs
        np.savez_compressed(target.with_suffix(".npz"), **data)
        out["generate_s"], out["after_generate_mb"] = time.perf_counter() - t0, rss_mb()
        del data
        t0 = time.perf_counter()
        loaded = np.load(target.with_suffix(".npz"))
        out["fid"] = {}
        pairs = (("latent_guided", "latent", a.style_lmdb), ("natural", "natural", a.face_lmdb))
        for name, key, lmdb in pairs:
            reals, _, _ = lmdb_images(lmdb, 256, a.n_real, 0)
            fake = inception_features(net, from_uint8(loaded[key]))
            out["fid"][name] = frechet_distance_of_features(fake, inception_features(net, reals))
        size = target.with_suffix(".npz").stat().st_size
    time.sleep(0.05)
    out["fid_s"], out["peak_mb"], out["disk_mb"] = time.perf_counter() - t0, rss_mb(), size / 2**20
    out["peak_anon_mb"] = peak["anon"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--n-real", type=int, default=2000)
    p.add_argument("--style-lmdb", required=True)
    p.add_argument("--face-lmdb", required=True)
    p.add_argument("--variants", nargs="+", default=["streamed", "in_memory"])
    p.add_argument("--workdir", default=None, help="default: a new temporary folder (left in place)")
    p.add_argument("--out", default=None)
    p.add_argument("--default-malloc", dest="malloc_tuned", action="store_false",
                   help="leave glibc's mmap threshold alone (the CLIs lower it; common.return_freed_memory)")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--checkpoints", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if a.variant:  # child process
        print(json.dumps(run_variant(a.variant, a)))
        return 0
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="bench_eval_memory_"))
    (workdir / "ckpt").mkdir(parents=True, exist_ok=True)
    ckpt = tiny_checkpoints(workdir / "ckpt", 256)
    report = {"n": a.n, "n_real": a.n_real, "size": 256, "cores": os.cpu_count(),
              "malloc_tuned": a.malloc_tuned, "load_before": os.getloadavg()}
    for variant in a.variants:
        cmd = [sys.executable, __file__, "--variant", variant, "--checkpoints", json.dumps(ckpt),
               "--n", str(a.n), "--n-real", str(a.n_real), "--style-lmdb", a.style_lmdb,
               "--face-lmdb", a.face_lmdb, "--workdir", str(workdir)]
        cmd += [] if a.malloc_tuned else ["--default-malloc"]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        report[variant] = json.loads(res.stdout.strip().splitlines()[-1])
        print(variant, report[variant], flush=True)
    report["load_after"] = os.getloadavg()
    if a.out:
        from basics.files import write_json_atomic
        write_json_atomic(a.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
