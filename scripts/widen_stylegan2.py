"""A StyleGAN2 file made wider without changing what it computes (a Net2Net-style widening).

    python scripts/widen_stylegan2.py SRC.pt --channel-base 1024 --out WIDE.pt

Rebuilds G (``g_ema``) and D (``d``) of a rosinality-format file with the given channel_base /
channel_max and copies every old weight into the leading block of the new one. Channels that
are new to a layer's input get zero weights in the old outputs (their old weights are scaled by
sqrt(new_in / old_in), which undoes the change of the equalised learning-rate constant), so the
old outputs are unchanged; new output channels keep their fresh initialisation. The outputs of
G and D are checked against the originals before the file is written. Continue training it
with ``stylegan2.init_checkpoint`` and the new widths. The 4 px width must stay the same: D
appends its minibatch-stddev channel after it.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from models.checkpoint import infer_discriminator_kwargs, infer_generator_kwargs, save_atomic
from models.stylegan2 import Discriminator, Generator, channel_table
from models.train.release import read

INPUT_DIM = {5: 2, 4: 1, 2: 1}  # modulated conv (1, out, in, k, k), conv (out, in, k, k), linear


def widen_tensor(old: torch.Tensor, new: torch.Tensor, key: str) -> torch.Tensor:
    """``new`` (fresh initialisation) with ``old`` in its leading block, as described above."""
    if old.shape == new.shape:
        return old.clone()
    if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape)):
        raise ValueError(f"{key}: cannot widen {tuple(old.shape)} to {tuple(new.shape)}")
    out = new.clone()
    block = tuple(slice(0, o) for o in old.shape)
    in_dim = INPUT_DIM.get(old.dim())
    factor = 1.0
    if in_dim is not None and new.shape[in_dim] != old.shape[in_dim]:
        factor = math.sqrt(new.shape[in_dim] / old.shape[in_dim])
        rows = list(block)
        rows[in_dim] = slice(old.shape[in_dim], None)
        out[tuple(rows)] = 0  # old outputs ignore the new inputs
    out[block] = old * factor
    return out


def widen_state(old: dict, fresh: dict) -> dict:
    missing = set(old) ^ set(fresh)
    if missing:
        raise ValueError(f"state dicts differ in keys: {sorted(missing)[:4]}")
    return {k: widen_tensor(old[k], fresh[k], k) for k in fresh}


@torch.no_grad()
def widen(src, dst, channel_base: int, channel_max: int | None = None,
          channel_multiplier: int = 2, seed: int = 0, check: int = 4) -> dict:
    """Write the widened file; returns the largest output differences of the check."""
    payload = read(src)
    missing = [k for k in ("g_ema", "d", "latent_avg") if k not in payload]
    if missing:
        raise ValueError(f"{src}: not a rosinality StyleGAN2 file (no {', '.join(missing)})")
    gk, dk = infer_generator_kwargs(payload["g_ema"]), infer_discriminator_kwargs(payload["d"])
    g_old, d_old = Generator(**gk), Discriminator(**dk)
    g_old.load_state_dict(payload["g_ema"])
    d_old.load_state_dict(payload["d"])
    widths = {"channel_base": channel_base, "channel_multiplier": channel_multiplier}
    if channel_max is not None:
        widths["channel_max"] = channel_max
    gk, dk = {**gk, **widths}, {**dk, **widths}
    if channel_table(gk["size"], channel_multiplier, channel_base, gk["channel_max"]) == g_old.channels:
        raise ValueError("these widths are the file's own: nothing to widen")
    torch.manual_seed(seed)
    g_new, d_new = Generator(**gk), Discriminator(**dk)
    if d_new.final_channels != d_old.final_channels:
        raise ValueError(f"the 4 px width would change ({d_old.final_channels} -> "
                         f"{d_new.final_channels}); keep channel_max so that it stays")
    g_sd = widen_state(g_old.state_dict(), g_new.state_dict())
    g_new.load_state_dict(g_sd)
    d_new.load_state_dict(widen_state(d_old.state_dict(), d_new.state_dict()))
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(check, g_new.style_dim, generator=gen)
    img_old, _ = g_old([z], randomize_noise=False)
    img_new, _ = g_new([z], randomize_noise=False)
    x = torch.rand(check, 3, g_new.size, g_new.size, generator=gen) * 2 - 1
    diff = {"generator": float((img_old - img_new).abs().max()),
            "discriminator": float((d_old(x) - d_new(x)).abs().max())}
    if max(diff.values()) > 1e-4:
        raise RuntimeError(f"widening changed the outputs: {diff}")
    payload = {"g_ema": g_sd, "d": d_new.state_dict(), "latent_avg": payload["latent_avg"],
               "extra": {"widened_from": str(src), "widths": g_new.channels}}
    save_atomic(payload, dst)
    return diff


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="rosinality-format StyleGAN2 file with g_ema and d")
    p.add_argument("--channel-base", type=int, required=True, help="new width numerator")
    p.add_argument("--channel-max", type=int, default=None, help="new width cap (default: kept)")
    p.add_argument("--channel-multiplier", type=int, default=2,
                   help="as the stylegan2 config section's (width = base x multiplier / size)")
    p.add_argument("--seed", type=int, default=0, help="initialisation of the new channels")
    p.add_argument("--out", required=True, help="the widened file")
    a = p.parse_args(argv)
    try:
        diff = widen(a.checkpoint, a.out, a.channel_base, a.channel_max, a.channel_multiplier,
                     a.seed)
    except (ValueError, RuntimeError) as err:
        sys.exit(f"error: {err}")
    print(f"{a.out}: outputs unchanged (largest difference G {diff['generator']:.2e}, "
          f"D {diff['discriminator']:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
