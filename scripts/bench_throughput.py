#!/usr/bin/env python
"""Training and data throughput benchmark (docs/performance.md).

Times the real trainers' code, not a re-implementation: each trainer class is instantiated on
a tiny synthetic LMDB (workflow.synthetic_data.make_lmdb) at the benchmark resolution and one
iteration is ``models.train.step.StepRunner.step`` -- the exact function ``run`` calls (all due
phases, lazy regularisation on its schedule, EMA). What is left out of the timed iteration is
image decoding: each trainer's LMDB loader is replaced by a cycle of pre-decoded batches (the
loader is timed on its own, ``--which loader``), so the iteration figure is what the GPU can
consume and the loader figure what the CPUs can supply.

    python scripts/bench_throughput.py                      # paper sizes on a GPU, small on CPU
    python scripts/bench_throughput.py --precision bf16 --channels-last --compile --compare
    python scripts/bench_throughput.py --device cpu --which blendgan --resolution 64 --batch 4

Parts (``--which``): blendgan (full iteration: both branches, three Ds, R1 every 16, path length
every 4, EMA), style_encoder (contrastive step), psp (encoder step through the frozen G),
generate (g_ema forward, no grad), loader (LMDB -> batches on ``--workers`` CPU processes).
Each part runs in its own process (peak memory is per part: torch.cuda.max_memory_allocated
on CUDA, the process's peak RSS on CPU). ``--compare`` also runs the fp32 eager baseline of
the same code in the same invocation and prints the speed-up. Results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

PARTS = ("blendgan", "style_encoder", "psp", "generate", "loader")
# (resolution, batch) per part: paper sizes (GPU default) and small CPU defaults
GPU_SIZES = {"blendgan": (1024, 8), "style_encoder": (256, 256), "psp": (256, 8),
             "generate": (1024, 8), "loader": (1024, 8)}
CPU_SIZES = {"blendgan": (64, 4), "style_encoder": (64, 32), "psp": (64, 4),
             "generate": (64, 8), "loader": (256, 8)}


# ------------------------------------------------------------------------------ builders
def loop_cfg(batch, precision="fp32", channels_last=False, compile=False, device="cpu", seed=0,
             threads=0, compile_mode="default", compile_backend="inductor"):
    return dict(batch=batch, total_images=10 ** 9, log_every=10 ** 9, sample_every=0,
                snapshot_every=0, eval_every=0, seed=seed, workers=0, device=device,
                threads=threads, tensorboard=False, precision=precision,
                channels_last=channels_last, compile=compile, compile_mode=compile_mode,
                compile_backend=compile_backend)


class CachedLoader:
    """Stands in for a StepLoader: ``n`` batches decoded once, then cycled (no decode cost)."""

    def __init__(self, loader, n=2):
        self.batches = [loader.get(i) for i in range(n)]

    def get(self, step):
        return self.batches[step % len(self.batches)]


def _dist(device):
    from models.train.distributed import Dist
    return Dist(device=torch.device(device))


def quiet(msg):
    """The trainers' progress messages, silenced while timing."""


def make_data(root: Path, resolution: int, n: int = 8, seed: int = 0, styles: int = 3) -> Path:
    from workflow.synthetic_data import make_lmdb
    path = root / f"lmdb{resolution}_{seed}"
    if not (path / "lmdb" / "data.mdb").exists():
        make_lmdb(path, n=n, size=resolution, seed=seed, styles=styles)
    return path / "lmdb"


def blendgan_config(resolution, batch, width="full", style_dim=None, **loop):
    from models.train import blendgan as bg
    from models.train.config import from_dict
    cfg = dict(resolution=resolution, eval_images=0, sample_faces=2,
               loop=loop_cfg(batch, **loop))
    if width == "narrow":
        cfg.update(style_dim=style_dim or 32, n_mlp=2, channel_base=256, channel_max=32)
    elif style_dim:
        cfg["style_dim"] = style_dim
    return from_dict(bg.BlendGANConfig, cfg)


def encoder_config(resolution, batch, width="full", style_dim=None, **loop):
    from models.train import style_encoder as se
    from models.train.config import from_dict
    cfg = dict(resolution=resolution, pool_size=min(256, resolution), holdout=0,
               loop=loop_cfg(batch, **loop))
    if width == "narrow":
        cfg.update(style_dim=style_dim or 32, vgg_width=0.0625, n_mlp=2, n_proj=2)
    elif style_dim:
        cfg["style_dim"] = style_dim
    return from_dict(se.StyleEncoderConfig, cfg)


def build_blendgan(root: Path, resolution, batch, device="cpu", width="full", cache=True,
                   style_dim=None, **loop):
    """A BlendGANTrainer on synthetic LMDBs with a freshly initialised style encoder in place
    of a trained one (the parts ``from_paths`` would load from files)."""
    from models.images import LMDBImages
    from models.train import blendgan as bg
    from models.train import style_encoder as se
    cfg = blendgan_config(resolution, batch, width, style_dim, device=device, **loop)
    ecfg = encoder_config(resolution, batch, width, cfg.style_dim)
    enc = se.build_encoder(ecfg, log=quiet).eval()
    face = LMDBImages(make_data(root, resolution, seed=1, styles=1), resolution)
    style = LMDBImages(make_data(root, resolution, seed=0), resolution)
    dist = _dist(device)
    networks = bg.build_networks(cfg, bg.style_input_dim(cfg, enc), dist.device, log=quiet)
    parts = bg.BlendGANParts(**networks, encoder=enc, face_set=face, style_set=style)
    t = bg.BlendGANTrainer(cfg, dist, root / "out", parts)
    t.log = quiet
    if cache:
        t.face_loader, t.style_loader = CachedLoader(t.face_loader), CachedLoader(t.style_loader)
    return t


def build_style_encoder(root: Path, resolution, batch, device="cpu", width="full", **loop):
    from models.train import style_encoder as se
    cfg = encoder_config(resolution, batch, width, device=device, **loop)
    data = make_data(root, resolution, seed=0)
    t = se.StyleEncoderTrainer.from_paths(cfg, _dist(device), root / "out", str(data))
    t.loader = CachedLoader(t.loader)
    return t


def build_psp(root: Path, resolution, batch, device="cpu", width="full", g_resolution=None,
              **loop):
    """pSp at ``resolution`` input against a frozen, freshly initialised generator (no LPIPS
    or identity networks: the terms whose weights files are not configured are off)."""
    from models.blendgan import BlendGenerator
    from models.images import LMDBImages
    from models.train import psp as psp_train
    from models.train.config import from_dict
    g_res = g_resolution or (1024 if resolution >= 256 else resolution)
    narrow = width == "narrow"
    g = BlendGenerator(g_res, 32 if narrow else 512, 2 if narrow else 8,
                       channel_base=256 if narrow else 16384, channel_max=32 if narrow else 512)
    g.update_latent_avg()
    cfg = dict(input_size=resolution, loss_size=resolution, holdout=0, eval_images=0,
               loop=loop_cfg(batch, device=device, **loop))
    if narrow:
        cfg.update(widths=[8, 8, 16, 16], units=[1, 1, 1, 1])
    cfg = from_dict(psp_train.PSPConfig, cfg)
    faces = LMDBImages(make_data(root, g_res, seed=1, styles=1), g_res)
    parts = psp_train.PSPParts(
        generator=g, encoder=psp_train.build_encoder(cfg, g),
        weights=psp_train.active_weights(cfg, log=quiet), lpips=None, arcface=None,
        latent_avg_source="estimated", train_set=faces, held_set=None)
    t = psp_train.PSPTrainer(cfg, _dist(device), root / "out", parts)
    t.log = quiet
    t.loader = CachedLoader(t.loader)
    return t


# ------------------------------------------------------------------------------ timing
def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory(device):
    if device.startswith("cuda"):
        return {"peak_mem_bytes": torch.cuda.max_memory_allocated(),
                "peak_mem_kind": "torch.cuda.max_memory_allocated"}
    return {"peak_mem_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_mem_kind": "process peak RSS (ru_maxrss)"}


def time_steps(fn, warmup, iters, device):
    for i in range(warmup):
        fn(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + iters):
        fn(i)
    sync(device)
    return time.perf_counter() - t0


def bench_part(part, args) -> dict:
    from models.train.step import PRECISIONS, StepRunner
    dev = args.device
    res, batch = args.resolution, args.batch
    fast = dict(precision=args.precision, channels_last=args.channels_last, compile=args.compile,
                compile_mode=args.compile_mode)
    root = Path(args.workdir)
    if part in ("blendgan", "style_encoder", "psp"):
        build = {"blendgan": build_blendgan, "style_encoder": build_style_encoder,
                 "psp": build_psp}[part]
        t = build(root, res, batch, device=dev, width=args.width, **fast)
        runner = StepRunner(t)
        # one iteration = batch images (BlendGAN: one FFHQ + one AAHQ batch, as the paper counts)
        elapsed = time_steps(runner.step, args.warmup, args.iters, dev)
        keys, vals = runner.pop_stats()
        extra = {"finite_losses": bool(torch.isfinite(vals).all())}
    elif part == "generate":
        from models.blendgan import BlendGenerator
        narrow = args.width == "narrow"
        g = BlendGenerator(res, 32 if narrow else 512, 2 if narrow else 8,
                           channel_base=256 if narrow else 16384,
                           channel_max=32 if narrow else 512).to(dev).eval()
        if args.channels_last:
            from models.train.placement import module_channels_last_
            module_channels_last_(g)
        gen = torch.Generator().manual_seed(0)
        z = torch.randn(batch, g.style_dim, generator=gen).to(dev)
        zs = torch.randn(batch, g.style_dim, generator=gen).to(dev)
        dtype = PRECISIONS[args.precision]
        fwd = torch.compile(g.generate, mode=args.compile_mode) if args.compile else g.generate

        def step(i):
            with torch.no_grad(), torch.autocast(dev.split(":")[0], dtype=dtype or torch.float32,
                                                 enabled=dtype is not None):
                return fwd(z, zs, indicator=6)
        elapsed = time_steps(step, args.warmup, args.iters, dev)
        extra = {}
    elif part == "loader":
        from models.images import LMDBImages
        from models.train.data import StepLoader
        data = make_data(root, res, n=args.loader_images, seed=0)
        ds = LMDBImages(data, res)
        ds = ds.as_uint8() if args.loader_pixels == "uint8" else ds
        loader = StepLoader(ds, batch, 0, workers=args.workers,
                            pin_memory=dev.startswith("cuda"))
        elapsed = time_steps(loader.get, args.warmup, args.iters, "cpu")
        extra = {"workers": args.workers, "dataset_images": len(ds),
                 "pixels": args.loader_pixels}
    else:
        raise ValueError(part)
    return {"which": part, "device": describe_device(dev), "resolution": res, "batch": batch,
            "iters": args.iters, "warmup": args.warmup, "width": args.width, **fast,
            "sec_per_iter": elapsed / args.iters, "images_per_s": batch * args.iters / elapsed,
            **peak_memory(dev), **extra}


def describe_device(dev):
    if dev.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(dev))
    return (f"CPU {platform.processor() or platform.machine()} "
            f"({torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible)")


# ------------------------------------------------------------------------------ CLI
def parse(argv=None):
    from models.train.step import COMPILE_MODES, PRECISIONS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda[:N]")
    p.add_argument("--which", default=",".join(PARTS), help="comma-separated parts")
    p.add_argument("--resolution", type=int, help="default: paper size on GPU, small on CPU")
    p.add_argument("--batch", type=int, help="default: paper size on GPU, small on CPU")
    p.add_argument("--iters", type=int, help="timed iterations (default 48 GPU / 16 CPU: whole "
                                             "R1 periods, so lazy regularisation is amortised)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default 10 GPU / 2 CPU)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--compile-mode", default="default", choices=COMPILE_MODES,
                   help="torch.compile mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--compare", action="store_true",
                   help="also run the fp32 eager baseline of the same code, same invocation")
    p.add_argument("--width", default="full", choices=["full", "narrow"],
                   help="network widths: the paper's, or the test suite's narrow ones")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="loader processes")
    p.add_argument("--loader-images", type=int, default=32, help="images in the loader's LMDB")
    p.add_argument("--loader-pixels", default="uint8", choices=["uint8", "float"],
                   help="what the loader's workers return: uint8 (as the trainers load; "
                        "converted on the device) or [-1, 1] floats (the earlier loader)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--workdir", help="where synthetic LMDBs go (default: a temporary folder)")
    p.add_argument("--out", help="write the results here as JSON")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    parts = [w.strip() for w in args.which.split(",") if w.strip()]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        raise SystemExit(f"--which: unknown part(s) {bad}; choose from {list(PARTS)}")
    gpu = args.device.startswith("cuda")
    if args.iters is None:
        args.iters = 48 if gpu else 16
    if args.warmup is None:
        args.warmup = 10 if gpu else 2
    if args._child:  # one part, one configuration, in this process
        part = parts[0]
        sizes = (GPU_SIZES if gpu else CPU_SIZES)[part]
        args.resolution = args.resolution or sizes[0]
        args.batch = args.batch or sizes[1]
        rec = bench_part(part, args)
        Path(args.out).write_text(json.dumps(rec))
        return rec

    tmp = tempfile.TemporaryDirectory(prefix="bench_throughput_")
    workdir = args.workdir or tmp.name
    configs = [dict(precision=args.precision, channels_last=args.channels_last,
                    compile=args.compile, compile_mode=args.compile_mode)]
    baseline = dict(precision="fp32", channels_last=False, compile=False, compile_mode="default")
    if args.compare and configs[0] != baseline:
        configs.insert(0, baseline)
    results = []
    for part in parts:
        for c in configs:
            if part == "loader" and c is not configs[-1]:
                continue  # the loader does not depend on the model options
            out = Path(workdir) / f"result_{part}_{len(results)}.json"
            cmd = [sys.executable, __file__, "--_child", "--which", part, "--device", args.device,
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--width", args.width,
                   "--workers", str(args.workers), "--loader-images", str(args.loader_images),
                   "--loader-pixels", args.loader_pixels,
                   "--threads", str(args.threads), "--workdir", workdir, "--out", str(out),
                   "--precision", c["precision"]]
            cmd += ["--channels-last"] if c["channels_last"] else []
            cmd += ["--compile", "--compile-mode", c["compile_mode"]] if c["compile"] else []
            cmd += ["--resolution", str(args.resolution)] if args.resolution else []
            cmd += ["--batch", str(args.batch)] if args.batch else []
            proc = subprocess.run(cmd)
            if proc.returncode:
                rec = {"which": part, **c, "error": f"exit status {proc.returncode}"}
            else:
                rec = json.loads(out.read_text())
            results.append(rec)
            report(rec, results)
    summary = {"torch": torch.__version__, "python": platform.python_version(),
               "host": platform.node(), "device": args.device, "results": results}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1))
        print(f"wrote {args.out}")
    return summary


def report(rec, results):
    if "error" in rec:
        print(f"{rec['which']:14s} {rec['precision']} FAILED ({rec['error']})", flush=True)
        return
    opts = rec["precision"] + ("+cl" if rec["channels_last"] else "") + \
        (f"+compile({rec.get('compile_mode', 'default')})" if rec["compile"] else "")
    if rec["which"] == "loader":
        opts = f"{rec['pixels']} pixels"
    line = (f"{rec['which']:14s} {opts:18s} {rec['resolution']:5d}px b{rec['batch']:<4d} "
            f"{rec['images_per_s']:9.2f} img/s  {rec['sec_per_iter'] * 1000:9.1f} ms/it  "
            f"peak {rec['peak_mem_bytes'] / 2 ** 30:6.2f} GiB  [{rec['device']}]")
    base = [r for r in results if r.get("which") == rec["which"] and "error" not in r
            and r["precision"] == "fp32" and not r["channels_last"] and not r["compile"]]
    if base and base[0] is not rec:
        line += f"  x{rec['images_per_s'] / base[0]['images_per_s']:.2f} vs fp32"
    print(line, flush=True)


if __name__ == "__main__":
    main()
