"""Alignment throughput: the fast sampler against the 4x-supersampling FFHQ reference.

Times both samplers on one core (images/s per core) on the real face photo scikit-image ships,
posed at several positions, scales and rotations inside a larger canvas (some quads leave the
canvas, so the padding path is timed too), and reports the PSNR of fast against reference.

    python scripts/bench_align.py --size 1024 --images 12 --out results/bench_align.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from PIL import Image

from basics.files import write_json_atomic
from workflow.dataset.align import align_with_record
from workflow.dataset.landmarks import DlibDetector


def posed_inputs(count: int, seed: int = 0):
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    base = DlibDetector()(np.asarray(photo))["landmarks"]
    rng = np.random.default_rng(seed)
    for _ in range(count):
        scale = rng.uniform(1.0, 4.0)
        angle = rng.uniform(-30, 30)
        canvas = Image.new("RGB", (int(900 * scale), int(700 * scale)), (30, 30, 30))
        img = photo.resize((int(512 * scale), int(512 * scale)), Image.LANCZOS).rotate(angle, Image.BICUBIC, expand=True)
        off = (int(rng.uniform(-0.2, 0.6) * canvas.size[0]), int(rng.uniform(-0.2, 0.5) * canvas.size[1]))
        canvas.paste(img, off)
        # Same rotation for the landmarks: PIL rotates counter-clockwise about the centre.
        theta = np.deg2rad(angle)
        c_in = np.array([256 * scale, 256 * scale])
        c_out = np.array(img.size) / 2.0
        rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
        lm = {k: ((np.array(v) * scale - c_in) @ rot.T + c_out + off).tolist() for k, v in base.items()}
        yield canvas, lm


def psnr(a, b):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--out", help="write the figures as JSON here")
    a = p.parse_args(argv)
    import torch  # only to pin the thread count of anything that might use it

    torch.set_num_threads(1)
    inputs = list(posed_inputs(a.images))
    timings = {"reference": 0.0, "fast": 0.0}
    psnrs, padded = [], []
    for img, lm in inputs:
        outs = {}
        for method in timings:
            t0 = time.perf_counter()
            outs[method], rec = align_with_record(img, lm, a.size, method)
            timings[method] += time.perf_counter() - t0
        psnrs.append(psnr(outs["reference"], outs["fast"]))
        padded.append(rec["padded_fraction"])
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "size": a.size, "images": len(inputs),
        "images_with_padding": int(sum(p > 0 for p in padded)),
        "reference_img_per_s_per_core": round(len(inputs) / timings["reference"], 3),
        "fast_img_per_s_per_core": round(len(inputs) / timings["fast"], 3),
        "speedup": round(timings["reference"] / timings["fast"], 2),
        "psnr_fast_vs_reference_db": {"min": round(min(psnrs), 2), "mean": round(float(np.mean(psnrs)), 2)},
    }
    print(json.dumps(result, indent=1))
    if a.out:
        write_json_atomic(a.out, result)


if __name__ == "__main__":
    main()
