"""One-shot fine-tuning for a new style (method 4.4, supplement E).

    python -m models.train.finetune --config CFG.yaml --checkpoint BLENDGAN.pt --face FFHQ_LMDB \
        (--reference IMAGE | --reference-lmdb LMDB --reference-index N) --out DIR

Starts from a BlendGAN training checkpoint (g, g_ema, the three Ds and the style encoder);
the style encoder stays frozen, G and the three Ds train (1000 iterations at batch 1 at paper
scale). D_face still sees FFHQ; D_style and D_style_latent see only the reference image, and
every stylised sample uses z_s = E_style(reference). The loop, losses and regularisers are
BlendGAN's (models.train.blendgan). ``eval/ref_style_cosine`` logs the cosine similarity of
E_style(output) and E_style(reference) for reference-guided outputs (i = 6), and
``eval/natural_drift`` the mean absolute change of the natural outputs (i = 18) since the start:
the face branch must survive. The final checkpoint carries the reference as used (uint8, at the
generator's resolution, ``extra.reference_image``) so figures and probes show the same pixels.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..checkpoint import load_checkpoint, load_style_encoder
from ..images import LMDBImages, load_image
from .blendgan import BlendGANConfig, BlendGANParts, BlendGANTrainer
from .config import LoopConfig
from .data import check_lmdb


@dataclass(frozen=True)
class FinetuneConfig(BlendGANConfig):
    """BlendGAN's training keys; architecture keys (resolution, widths, style_dim, ...) are
    read from the checkpoint and the ones given here are ignored."""
    reference_fraction: float = 1.0       # every stylised sample is reference-guided
    ema_half_life_images: float = 100.0   # short run: a short EMA
    eval_samples: int = 16                # outputs for eval/ref_style_cosine
    reference: str | None = None          # reference image file (--reference overrides); "auto"
                                          # is the workflow's (it resolves it): no file here
    reference_index: int = 0              # else: this image of --reference-lmdb
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(
        batch=1, total_images=1000, log_every=100, sample_every=500, snapshot_every=500,
        eval_every=500))


class OneImage(Dataset):
    """The reference as the style set: every style batch is that image, already in [-1, 1]."""

    def __init__(self, image: torch.Tensor):
        self.image = image

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.image

    def as_uint8(self) -> "OneImage":
        return self  # resized floats have no exact uint8 form; to_unit passes floats through


def starting_networks(checkpoint, device) -> dict:
    """G, g_ema and the three Ds of a BlendGAN training checkpoint, G starting from the EMA
    weights: the model users see (and Fig. 5's "before"); starting from the raw g made a short
    EMA pull g_ema to g and moved natural outputs by itself."""
    m = load_checkpoint(checkpoint, map_location=device)["models"]
    g_ema = m["g"]
    ema_sd = {k: v for k, v in m["g_ema"].state_dict().items() if not k.startswith("embedder.")}
    g_ema.load_state_dict(ema_sd, strict=True)
    return {"g": copy.deepcopy(g_ema), "g_ema": g_ema, "d_face": m["d_face"],
            "d_style": m["d_style"], "d_style_latent": m["d_style_latent"]}


class FinetuneTrainer(BlendGANTrainer):
    name = "finetune"

    def __init__(self, cfg: FinetuneConfig, dist, out, parts: BlendGANParts):
        super().__init__(cfg, dist, out, parts)
        self.ref = self.style_set[0].to(self.device)
        self.g_start = copy.deepcopy(self.g_ema).requires_grad_(False)  # for eval/natural_drift

    @classmethod
    def from_paths(cls, cfg: FinetuneConfig, dist, out, checkpoint: str, face: str,
                   reference: torch.Tensor) -> "FinetuneTrainer":
        """The BlendGAN training checkpoint ``checkpoint`` (networks and frozen encoder), the
        face LMDB ``face`` and the reference image (resized to the generator's resolution)."""
        ck = load_checkpoint(checkpoint, build=False)
        kw = ck["models"]["g"]["kwargs"]
        cfg = dataclasses.replace(  # latent sampling as the base model was trained
            cfg, resolution=kw["size"], style_dim=kw["style_dim"],
            latent_style=ck["models"]["g_ema"]["kwargs"].get("latent_style", "normal"),
            cache_style_codes=False)  # E_style(reference) per step, as this recipe computes it
        encoder = load_style_encoder(checkpoint, map_location=dist.device)
        networks = starting_networks(checkpoint, dist.device)
        dist.log(f"fine-tuning from {checkpoint}")
        if reference.shape[-1] != cfg.resolution:
            reference = F.interpolate(reference[None], size=cfg.resolution, mode="bilinear",
                                      align_corners=False, antialias=True)[0]
        parts = BlendGANParts(
            **networks, encoder=encoder,
            face_set=LMDBImages(check_lmdb(face), cfg.resolution), style_set=OneImage(reference),
            encoder_whitened=ck["extra"].get("trained_with", {}).get("style_encoder_whitened"))
        return cls(cfg, dist, out, parts)

    @torch.no_grad()
    def evaluate(self):
        n = self.cfg.eval_samples
        gen = torch.Generator().manual_seed(self.cfg.loop.seed + 4242)
        z = torch.randn(n, self.cfg.style_dim, generator=gen).to(self.device)
        z_ref = self.encoder(self.ref[None])
        out = self.g_ema.generate(z, z_ref.expand(n, -1), indicator=6)
        cos = F.cosine_similarity(self.encoder(out), z_ref).mean()
        drift = (self.g_ema.generate(z) - self.g_start.generate(z)).abs().mean()
        return {"ref_style_cosine": float(cos), "natural_drift": float(drift)}

    def final_checkpoint(self):
        models, extra = super().final_checkpoint()
        extra["reference_image"] = ((self.ref.cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return models, extra


def config_reference(cfg: FinetuneConfig) -> str | None:
    """The config's reference file; the workflow's ``auto`` names none (the rule resolves it)."""
    return None if cfg.reference == "auto" else cfg.reference


def reference_image(cfg: FinetuneConfig, args, resolution=None) -> torch.Tensor:
    path = args.reference or config_reference(cfg)
    if path:
        try:
            return load_image(path)
        except ValueError as e:
            raise SystemExit(f"reference image: {e}") from e
    index = cfg.reference_index if args.reference_index is None else args.reference_index
    ds = LMDBImages(check_lmdb(args.reference_lmdb), resolution or 256)
    if not 0 <= index < len(ds):
        raise SystemExit(f"{args.reference_lmdb}: reference_index {index} outside 0..{len(ds) - 1}")
    return ds[index]


def main(argv=None):
    from .cli import train_main

    def add(p):
        p.add_argument("--checkpoint", required=True, help="BlendGAN training checkpoint")
        p.add_argument("--face", required=True, help="FFHQ (natural) LMDB folder")
        p.add_argument("--reference", help="the reference image file")
        p.add_argument("--reference-lmdb", help="or: an LMDB holding the reference")
        p.add_argument("--reference-index", type=int, default=None,
                       help="index in --reference-lmdb (default: the config's reference_index)")

    def build(cfg, dist, out, a):
        if not (a.reference or config_reference(cfg) or a.reference_lmdb):
            raise SystemExit("give --reference IMAGE or --reference-lmdb LMDB")
        size = load_checkpoint(a.checkpoint, build=False)["models"]["g"]["kwargs"]["size"]
        return FinetuneTrainer.from_paths(cfg, dist, out, a.checkpoint, a.face,
                                          reference_image(cfg, a, size))

    return train_main(argv, FinetuneConfig, build, __doc__.split("\n\n")[0], add)


if __name__ == "__main__":
    main(sys.argv[1:])
