"""Plain StyleGAN2 on one natural-face LMDB: the natural-domain generator BlendGAN starts from.

    python -m models.train.stylegan2 --config CFG.yaml --data FFHQ_LMDB --out DIR --final G.pt

The paper starts BlendGAN's face branch and D_face from a pretrained FFHQ StyleGAN2; this
trainer makes one where no public checkpoint fits (another natural domain, another resolution,
the demo's narrow networks). Recipe of StyleGAN2 config-f as rosinality's train.py runs it:
non-saturating logistic loss, lazy R1 on reals, lazy path-length regularisation, style mixing
on z, horizontal flips of the reals, an EMA copy of G. The final checkpoint is in rosinality's
format (``g``, ``d``, ``g_ema`` state dicts and ``latent_avg``), which ``load_generator`` and
``blendgan.stylegan2_checkpoint`` read like the official converted FFHQ file; it also carries
this run's resolved config and counters (extra keys that rosinality's loaders ignore).
"""

from __future__ import annotations

import copy
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checkpoint import save_atomic
from ..images import LMDBImages, to_unit
from ..stylegan2 import Discriminator, Generator
from .augment import hflip
from .config import LoopConfig
from .data import StepLoader, check_lmdb
from .diffaugment import diff_augment, parse_policy
from .losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss, g_path_length
from .optim import lazy_adam
from .placement import to_device
from .seeding import step_generator
from .gan import GANTrainer


@dataclass(frozen=True)
class StyleGAN2Config:
    resolution: int = 1024                # output size
    style_dim: int = 512                  # z and w width
    n_mlp: int = 8                        # mapping-network layers
    channel_multiplier: int = 2           # config-f
    channel_base: int = 16384             # width numerator; small for the demo's narrow nets
    channel_max: int = 512                # width cap
    lr_mlp: float = 0.01                  # mapping-network lr multiplier
    stddev_group: int = 4                 # D minibatch-stddev group
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1: float = 10.0                      # R1 gamma (config-f at 1024; far smaller at low res)
    d_reg_every: int = 16
    path_regularize: float = 2.0          # 0 switches the path-length term off
    path_batch_shrink: int = 2
    path_decay: float = 0.01
    g_reg_every: int = 4
    mixing: float = 0.9                   # style-mixing probability
    xflip: bool = True                    # random horizontal flips of the reals
    diff_augment: str = ""                # D-side augmentation of reals and fakes, e.g.
                                          # "color,translation,cutout" for small sets (off: paper)
    ema_half_life_images: float = 10_000  # NVlabs' ema_kimg = 10
    init_checkpoint: str | None = None    # start G, its EMA and D from this file's weights
                                          # (g_ema, d; g when present) with fresh optimisers:
                                          # continues a shipped model that kept no snapshots
    sample_faces: int = 32                # images in the sample grid
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(
        batch=32, total_images=25_000_000, log_every=10_000, sample_every=100_000,
        snapshot_every=200_000, eval_every=0))


@dataclass(frozen=True)
class StyleGAN2Parts:
    g: Generator                          # trained
    d: Discriminator
    g_ema: Generator                      # the EMA copy of g (what the checkpoint ships)
    reals: Dataset                        # natural images at the training resolution


def build_networks(cfg: StyleGAN2Config) -> dict:
    """G, D and G's EMA copy, freshly initialised from the run's seed."""
    torch.manual_seed(cfg.loop.seed)
    widths = dict(channel_multiplier=cfg.channel_multiplier, channel_base=cfg.channel_base,
                  channel_max=cfg.channel_max)
    g = Generator(cfg.resolution, cfg.style_dim, cfg.n_mlp, lr_mlp=cfg.lr_mlp, **widths)
    d = Discriminator(cfg.resolution, stddev_group=cfg.stddev_group, **widths)
    if cfg.init_checkpoint:
        load_start(cfg.init_checkpoint, g, d)
    return {"g": g, "d": d, "g_ema": copy.deepcopy(g).eval().requires_grad_(False)}


def load_start(path, g: Generator, d: Discriminator):
    """G and D from a rosinality-format file; G from its training ``g`` when the file kept one,
    else from ``g_ema`` (a released file keeps only the EMA copy). Shapes must match the
    config's widths exactly: a mismatch is a config error, not something to paper over."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"init_checkpoint {path}: not a readable PyTorch file "
                         f"({str(err).splitlines()[0]})") from None
    missing = [k for k in ("g_ema", "d") if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise ValueError(f"init_checkpoint {path}: no {', '.join(missing)} (not a StyleGAN2 file)")
    for net, state, name in ((g, payload.get("g") or payload["g_ema"], "G"), (d, payload["d"], "D")):
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"init_checkpoint {path}: {name} does not fit the configured "
                             f"widths/resolution ({str(err).splitlines()[0]})") from None


class StyleGAN2Trainer(GANTrainer):
    name = "stylegan2"

    def __init__(self, cfg: StyleGAN2Config, dist, out, parts: StyleGAN2Parts):
        super().__init__(cfg, dist, out)
        self.models = {"g": parts.g.to(self.device), "d": parts.d.to(self.device),
                       "g_ema": parts.g_ema.to(self.device)}
        self.g, self.d, self.g_ema = self.models["g"], self.models["d"], self.models["g_ema"]
        self.g_params, self.d_params = list(self.g.parameters()), list(self.d.parameters())
        self.g_opt = lazy_adam(self.g_params, cfg.lr, cfg.betas, cfg.g_reg_every)
        self.d_opt = lazy_adam(self.d_params, cfg.lr, cfg.betas, cfg.d_reg_every)
        self.optimizers = {"g": self.g_opt, "d": self.d_opt}
        self.ema_pairs = [("g_ema", "g")]
        self.ema_half_life = cfg.ema_half_life_images
        self.augment = parse_policy(cfg.diff_augment)
        self.loader = StepLoader(parts.reals.as_uint8(), cfg.loop.batch, cfg.loop.seed,
                                 dist.rank, dist.world, cfg.loop.workers)

    @classmethod
    def from_paths(cls, cfg: StyleGAN2Config, dist, out, data: str) -> "StyleGAN2Trainer":
        """Fresh networks on the natural-face LMDB ``data``."""
        parts = StyleGAN2Parts(**build_networks(cfg),
                               reals=LMDBImages(check_lmdb(data), cfg.resolution))
        return cls(cfg, dist, out, parts)

    # ----------------------------------------------------------------------- batches
    def get_batch(self, step):
        cfg, dist, dev = self.cfg, self.dist, self.device
        B, D = cfg.loop.batch, cfg.style_dim
        gen = step_generator(cfg.loop.seed, step, "stylegan2")
        real = to_unit(to_device(self.loader.get(step), dev))
        if cfg.xflip:
            real = hflip(real, to_device(dist.local(torch.rand(B, generator=gen) < 0.5), dev))
        z = to_device(dist.local(torch.randn(4, B, D, generator=gen), 1), dev)
        mix = bool(torch.rand((), generator=gen) < cfg.mixing)
        inject = int(torch.randint(1, self.g.n_latent, (), generator=gen))
        # A device tensor, n_latent when not mixing: one static graph either way (compile).
        inject = to_device(torch.tensor(inject if mix else self.g.n_latent), dev)
        return {"real": real, "z_d": z[:2], "z_g": z[2:], "inject": inject}

    def split(self, batch, n):
        if n == 1:
            return [batch]
        z_d, z_g = batch["z_d"].chunk(n, 1), batch["z_g"].chunk(n, 1)
        return [{"real": r, "z_d": zd, "z_g": zg, "inject": batch["inject"]}
                for r, zd, zg in zip(batch["real"].chunk(n), z_d, z_g)]

    def fake(self, z, inject, return_latents=False):
        return self.g(list(z), inject_index=inject, return_latents=return_latents)

    def disc(self, images):
        """D of (augmented, when diff_augment is set) images."""
        return self.d(diff_augment(images, self.augment) if self.augment else images)

    # ----------------------------------------------------------------------- phases
    def d_main(self, mb, step):
        with torch.no_grad():
            fake, _ = self.fake(mb["z_d"], mb["inject"])
        real_pred, fake_pred = self.disc(mb["real"]), self.disc(fake)
        loss = d_logistic_loss(real_pred, fake_pred)
        return loss, {"loss": loss, "real_score": real_pred.mean(), "fake_score": fake_pred.mean()}

    def d_reg(self, mb, step):
        real = mb["real"].detach().requires_grad_(True)
        r1 = d_r1_loss(self.disc(real), real)
        return self.cfg.r1 / 2 * r1 * self.cfg.d_reg_every, {"r1": r1}

    def g_main(self, mb, step):
        fake, _ = self.fake(mb["z_g"], mb["inject"])
        loss = g_nonsaturating_loss(self.disc(fake))
        return loss, {"loss": loss}

    def g_reg(self, mb, step):
        """Path length on a shrunk batch; the running mean uses the global batch's lengths."""
        cfg = self.cfg
        b = max(1, mb["z_g"].shape[1] // cfg.path_batch_shrink)
        fake, latents = self.fake(mb["z_g"][:, :b], mb["inject"], return_latents=True)
        penalty, self.mean_path_length, lengths = g_path_length(
            fake, latents, self.mean_path_length, cfg.path_decay, self.dist)
        loss = cfg.path_regularize * cfg.g_reg_every * penalty
        return loss, {"path_penalty": penalty, "path_length": lengths.mean()}

    # ----------------------------------------------------------------------- outputs
    @torch.no_grad()
    def sample(self):
        n = self.cfg.sample_faces
        gen = torch.Generator().manual_seed(self.cfg.loop.seed + 777)
        z = torch.randn(n, self.cfg.style_dim, generator=gen).to(self.device)
        image, _ = self.g_ema([z], randomize_noise=False)
        return image, int(np.ceil(np.sqrt(n)))

    def save_final(self, path, config: dict, extra: dict) -> Path:
        """rosinality's layout: state dicts under g, d, g_ema, plus latent_avg (the truncation
        centre); written to a temporary file and renamed."""
        payload = {name: self.models[name].state_dict() for name in ("g", "d", "g_ema")}
        payload["latent_avg"] = self.g_ema.mean_latent(4096, seed=0)[0].cpu()
        payload.update(config=config, extra={**extra, "trainer": "stylegan2",
                                             "mean_path_length": float(self.mean_path_length)})
        return save_atomic(payload, path)


def main(argv=None):
    from .cli import train_main

    def add(p):
        p.add_argument("--data", required=True, help="natural-face (FFHQ) LMDB folder")

    return train_main(argv, StyleGAN2Config,
                      lambda cfg, dist, out, a: StyleGAN2Trainer.from_paths(cfg, dist, out, a.data),
                      __doc__.split("\n\n")[0], add)


if __name__ == "__main__":
    main(sys.argv[1:])
