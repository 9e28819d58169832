#!/usr/bin/env python
"""Numerics check of the fast training path against fp32 (docs/performance.md).

Trains two identical tiny BlendGANs (same seeds, same batches) through the real loop code
(``StepRunner``): the reference in fp32 eager, the other with the fast options (default bf16
autocast + channels_last), and compares
  * step-0 losses (same weights, same batch: only the arithmetic differs),
  * each loss term's mean over the run (GAN training is chaotic, so per-step values drift
    apart; the run-level means must not),
  * g_ema outputs on fixed latents after the run (mean |difference| in [-1, 1] units),
and fails when a tolerance (TOLERANCES, stated in docs/performance.md) is exceeded.

    python scripts/check_numerics.py --steps 300 --resolution 32 [--precision bf16] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_throughput as bench  # noqa: E402

TOLERANCES = {
    "step0_loss_abs": 0.15,        # |fast - fp32| of every loss term at step 0 ...
    "step0_loss_rel": 0.12,        #   ... or this fraction of |fp32 value|, whichever is larger
    "mean_loss_abs": 0.15,         # |fast - fp32| of every loss term's mean over the run
    "mean_loss_rel": 0.10,         #   ... or this fraction of |fp32 mean|, whichever is larger
    "output_mean_abs": 0.15,       # mean |g_ema(z) fast - fp32| after the run, [-1, 1] units
    "output_step0_mean_abs": 0.02,  # the same for g_ema after the first step
}


def train(root, steps, resolution, batch, precision, channels_last, compile=False):
    """Per-step loss records and g_ema outputs (after step 0 and after the run)."""
    from models.train.step import StepRunner
    torch.manual_seed(0)
    t = bench.build_blendgan(Path(root), resolution, batch, width="narrow", threads=0,
                             precision=precision, channels_last=channels_last, compile=compile)
    runner = StepRunner(t)
    z = torch.randn(8, t.cfg.style_dim, generator=torch.Generator().manual_seed(5))
    zs = torch.randn(8, t.cfg.style_dim, generator=torch.Generator().manual_seed(6))
    records, out0 = [], None
    for step in range(steps):
        runner.step(step)
        keys, vals = runner.pop_stats()
        records.append(dict(zip(keys, vals.tolist())))
        if step == 0:
            with torch.no_grad():
                out0 = t.g_ema.generate(z, zs, indicator=6).float()
    with torch.no_grad():
        out = t.g_ema.generate(z, zs, indicator=6).float()
    return records, out0, out


def compare(ref, fast) -> dict:
    (rec_r, o0_r, o_r), (rec_f, o0_f, o_f) = ref, fast
    keys = sorted(rec_r[0])
    means = {}
    for k in sorted({k for r in rec_r for k in r}):
        a = [r[k] for r in rec_r if k in r]
        b = [r[k] for r in rec_f if k in r]
        means[k] = (sum(a) / len(a), sum(b) / len(b))
    finite = all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in rec_f)
    return {
        "finite": bool(finite and torch.isfinite(o_f).all()),
        "step0_loss": {k: {"fp32": rec_r[0][k], "fast": rec_f[0][k],
                       "abs": abs(rec_r[0][k] - rec_f[0][k])} for k in keys},
        "mean_loss": {k: {"fp32": a, "fast": b, "abs": abs(a - b)} for k, (a, b) in means.items()},
        "output_step0_mean_abs": float((o0_r - o0_f).abs().mean()),
        "output_mean_abs": float((o_r - o_f).abs().mean()),
    }


def failures(m: dict, tol=TOLERANCES) -> list[str]:
    bad = [] if m["finite"] else ["non-finite losses or outputs on the fast path"]
    for k, v in m["step0_loss"].items():
        lim = max(tol["step0_loss_abs"], tol["step0_loss_rel"] * abs(v["fp32"]))
        if v["abs"] > lim:
            bad.append(f"step-0 {k}: fp32 {v['fp32']:.4g} vs fast {v['fast']:.4g} "
                       f"(|diff| {v['abs']:.4g} > {lim:.4g})")
    for k, v in m["mean_loss"].items():
        lim = max(tol["mean_loss_abs"], tol["mean_loss_rel"] * abs(v["fp32"]))
        if v["abs"] > lim:
            bad.append(f"run mean {k}: fp32 {v['fp32']:.4g} vs fast {v['fast']:.4g} "
                       f"(|diff| {v['abs']:.4g} > {lim:.4g})")
    for k in ("output_step0_mean_abs", "output_mean_abs"):
        if m[k] > tol[k]:
            bad.append(f"{k}: {m[k]:.4g} > {tol[k]}")
    return bad


def check(steps=300, resolution=32, batch=4, precision="bf16", channels_last=True,
          compile=False, root=None) -> tuple[dict, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(root or tmp)
        ref = train(root, steps, resolution, batch, "fp32", False)
        fast = train(root, steps, resolution, batch, precision, channels_last, compile)
    m = compare(ref, fast)
    m.update(steps=steps, resolution=resolution, batch=batch, precision=precision,
             channels_last=channels_last, compile=compile, tolerances=TOLERANCES)
    return m, failures(m)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", help="write the metrics here as JSON")
    a = p.parse_args(argv)
    m, bad = check(a.steps, a.resolution, a.batch, a.precision, not a.no_channels_last,
                   a.compile)
    text = json.dumps(m, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    print("FAIL:\n  " + "\n  ".join(bad) if bad else "OK: fast path within tolerances of fp32")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
