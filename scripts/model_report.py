"""Parameter counts at paper configuration (beside method 3.3b) and CPU forward times at 1024.

    python scripts/model_report.py [--out report.json] [--repeats 3] [--no-timing]

Counts are taken on the meta device (nothing allocated). Timings build the real networks with
random weights, batch 1, ``torch.no_grad``, one warm-up run, then the median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.blendgan import BlendGenerator  # noqa: E402
from models.discriminators import StyleLatentDiscriminator  # noqa: E402
from models.psp import PSPEncoder  # noqa: E402
from models.style_encoder import StyleEncoder  # noqa: E402
from models.stylegan2 import Discriminator, Generator  # noqa: E402

# method 3.3b (None: the method gives no figure).
SPEC = {
    "stylegan2_generator_state_values": 33_166_492,
    "stylegan2_generator_state_entries": 171,
    "discriminator_state_values": 29_012_769,
    "discriminator_state_entries": 64,
    "style_mlp_first_layer": 312_476_160,
    "style_mlp": 313_300_000,
    "vgg19_features": 20_000_000,
    "blend_generator_with_encoder": 366_000_000,
    "blend_generator_with_encoder_fp32_bytes": 1_460_000_000,
}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def state_size(module) -> tuple[int, int]:
    sd = module.state_dict()
    return len(sd), sum(v.numel() for v in sd.values())


def counts() -> dict:
    with torch.device("meta"):
        sg = Generator(1024)
        g = BlendGenerator(1024, style_encoder=dict(projection_head=False))
        enc = StyleEncoder()
        d = Discriminator(1024)
        dl = StyleLatentDiscriminator(1024)
        psp = PSPEncoder()
    entries, values = state_size(sg)
    mapping = n_params(g.style)
    out = {
        "stylegan2_generator_state_values": values,
        "stylegan2_generator_state_entries": entries,
        "face_mapping": mapping,
        "style_mapping": n_params(g.embedding),
        "synthesis_parameters": n_params(sg) - mapping,
        "noise_buffers": sum(b.numel() for b in sg.noises.buffers()),
        "add_weight": g.add_weight.numel(),
        "vgg19_features": n_params(enc.gram.vgg),
        "style_mlp_first_layer": n_params(enc.mlp[0]),
        "style_mlp": n_params(enc.mlp),
        "projection_head": n_params(enc.projector),
        "gram_dim": enc.gram.dim,
        "blend_generator_with_encoder": n_params(g),
        "blend_generator_with_encoder_fp32_bytes": 4 * n_params(g),
        "blend_generator_without_encoder": n_params(g) - n_params(g.embedder),
        "discriminator_state_values": state_size(d)[1],
        "discriminator_state_entries": state_size(d)[0],
        "d_face": n_params(d),
        "d_style": n_params(d),
        "d_style_latent": n_params(dl),
        "psp_encoder": n_params(psp),
    }
    return out


def time_it(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitive caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.no_grad()
def timings(repeats: int) -> dict:
    torch.manual_seed(0)
    out = {}
    g = BlendGenerator(1024).eval()
    z, zs = torch.randn(1, 512), torch.randn(1, 512)
    out["generator_natural_s"] = time_it(lambda: g(z, randomize_noise=False), repeats)
    out["generator_blended_s"] = time_it(lambda: g(z, zs, indicator=6, randomize_noise=False),
                                         repeats)
    img = g(z, zs, indicator=6)
    del g
    d = Discriminator(1024).eval()
    out["d_face_s"] = time_it(lambda: d(img), repeats)
    out["d_style_s"] = out["d_face_s"]  # same network as D_face
    del d
    dl = StyleLatentDiscriminator(1024).eval()
    out["d_style_latent_s"] = time_it(lambda: dl(img, zs), repeats)
    del dl
    enc = StyleEncoder(projection_head=False).eval()
    out["style_encoder_s"] = time_it(lambda: enc(img), repeats)
    del enc
    psp = PSPEncoder().eval()
    out["psp_encoder_s"] = time_it(lambda: psp(img), repeats)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the report as JSON here")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)

    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "torch": torch.__version__},
              "counts": counts(), "spec": SPEC}
    print(f"{'quantity':42s} {'ours':>16s} {'method 3.3b':>16s}")
    for k, v in report["counts"].items():
        spec = SPEC.get(k)
        print(f"{k:42s} {v:16,d} {'' if spec is None else format(spec, ','):>16s}")
    if not args.no_timing:
        report["timing_batch1_1024"] = timings(args.repeats)
        print(f"\nCPU forward, 1024x1024, batch 1, median of {args.repeats} "
              f"({torch.get_num_threads()} threads):")
        for k, v in report["timing_batch1_1024"].items():
            print(f"  {k:30s} {v:8.2f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
