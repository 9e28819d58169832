"""A StyleGAN2 checkpoint made ready to ship: what BlendGAN starts from, nothing else.

    python -m models.train.release STYLEGAN2.pt --out FILE.pt --record FILE.json

Keeps ``g_ema``, ``d`` and ``latent_avg`` of a rosinality-format checkpoint (as the official
converted FFHQ file has them: BlendGAN's G starts from the EMA weights, D_face from ``d``) plus
the config and counters it was trained with, and drops the raw training G. The JSON record holds
what the pretrained registry needs (SHA-256, size) and the recipe: the trainer's resolved
config and the images it saw.

A training snapshot (``OUT/snapshots/snapshot-*.pt``) is accepted too, so any point of a run can
be shipped: its ``latent_avg`` is computed as the trainer's final file computes it (mean w of
4,096 seeded draws of the EMA mapping) and its optimiser states are dropped.
"""

from __future__ import annotations

import argparse
import pickle
import sys

import torch

from basics.files import sha256_file, write_json_atomic

from ..checkpoint import FORMAT, build_model, save_atomic

KEEP = ("g_ema", "d", "latent_avg", "config", "extra")


@torch.no_grad()
def from_snapshot(payload: dict) -> dict:
    """A stylegan2 trainer snapshot in rosinality's layout, as ``save_final`` writes it."""
    models = payload["models"]
    g_ema = build_model(models["g_ema"])
    extra = payload.get("extra") or {}
    return {"g_ema": models["g_ema"]["state_dict"], "d": models["d"]["state_dict"],
            "latent_avg": g_ema.mean_latent(4096, seed=0)[0],
            "config": payload.get("config") or {},
            "extra": {"images": extra.get("images"), "trainer": "stylegan2", "from": "snapshot"}}


def read(src) -> dict:
    """The file's payload, or a one-line ValueError naming it (missing, not a weights-only
    torch file)."""
    try:
        payload = torch.load(src, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{src}: cannot read as a weights-only torch file "
                         f"({str(err).splitlines()[0]})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{src}: not a checkpoint (a {type(payload).__name__})")
    return payload


def is_stylegan2_snapshot(payload: dict) -> bool:
    models = payload.get("models") or {}
    return (payload.get("format") == FORMAT and {"g_ema", "d"} <= set(models)
            and models["g_ema"].get("class") == "Generator")


def release(src, dst) -> dict:
    payload = read(src)
    if is_stylegan2_snapshot(payload):
        payload = from_snapshot(payload)
    missing = [k for k in ("g_ema", "d", "latent_avg") if k not in payload]
    if missing:
        raise ValueError(f"{src}: not a StyleGAN2 training checkpoint (no {', '.join(missing)})")
    dst = save_atomic({k: payload[k] for k in KEEP if k in payload}, dst)
    digest = sha256_file(dst)
    extra = payload.get("extra") or {}
    return {"file": dst.name, "sha256": digest, "size": dst.stat().st_size,
            "images": extra.get("images"), "config": payload.get("config") or {}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a final checkpoint or snapshot written by models.train.stylegan2")
    p.add_argument("--out", required=True, help="the file to ship")
    p.add_argument("--record", help="JSON record: sha256, size, recipe")
    a = p.parse_args(argv)
    try:
        rec = release(a.checkpoint, a.out)
    except ValueError as err:
        sys.exit(f"error: {err}")
    if a.record:
        write_json_atomic(a.record, rec)
    print(f"{a.out}: sha256 {rec['sha256']}, {rec['size']:,} bytes, {rec['images']} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
