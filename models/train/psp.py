"""pSp training (method 4.3): an encoder into W+ against the frozen BlendGAN generator at i = 18.

    python -m models.train.psp --config CFG.yaml --face FFHQ_LMDB --generator G.pt --out DIR

Loss = l2 * MSE + lpips * LPIPS + id * (1 - ArcFace cosine) + w_norm * |w - w_avg|. A term whose
pretrained weights are not configured is switched off with a warning, never faked: LPIPS needs
an AlexNet LPIPS file (models.lpips), the identity term pSp's model_ir_se50.pth (models.arcface). ``holdout`` faces are kept out of training; their reconstruction error is logged
as ``eval/val_l2`` (MSE in [-1, 1] units) at every evaluation.

Optimisation follows the pSp authors by default: their Ranger (``optimizer: ranger``,
models.train.ranger) at lr 1e-4, and random noise inputs in the generator during the loss
(``train_noise: random``); evaluation, samples and the final reconstructions use constant noise,
as pSp's inference does. ``optimizer: adam`` is ``torch.optim.Adam`` (pSp's ``adam`` option
when ``betas`` is left unset); the project's former recipe is ``optimizer: adam``,
``betas: [0.0, 0.99]``, ``train_noise: constant``. The encoder's latent average is the
generator checkpoint's ``latent_avg``; only a checkpoint without one gets an estimate (logged).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..arcface import ArcFace, load_arcface
from ..blendgan import BlendGenerator
from ..checkpoint import load_generator
from ..images import LMDBImages, to_unit
from ..lpips import LPIPS, load_lpips
from ..psp import PSPEncoder
from .config import LoopConfig
from .data import StepLoader, check_lmdb, split_indices
from .placement import to_device
from .ranger import Ranger
from .seeding import step_generator
from .trainer import Phase, Trainer

# The betas each optimiser runs with in pSp when none are configured: Ranger's own defaults,
# and PyTorch's for torch.optim.Adam (pSp passes only the learning rate).
OPTIMIZER_BETAS = {"ranger": (0.95, 0.999), "adam": (0.9, 0.999)}
OPTIMIZERS = tuple(OPTIMIZER_BETAS)     # the schema's psp.optimizer enum, in this order
TRAIN_NOISE = ("random", "constant")    # the schema's psp.train_noise enum


@dataclass(frozen=True)
class PSPConfig:
    input_size: int = 256                 # encoder input size (images pooled to it)
    loss_size: int = 256                  # reconstructions compared at this size
    num_layers: int = 50                  # IR-SE depth (ignored when units is given)
    mode: str = "ir_se"
    widths: tuple[int, ...] = (64, 128, 256, 512)
    units: tuple[int, ...] | None = None  # residual units per stage (demo: (1, 1, 1, 1))
    l2_weight: float = 1.0
    lpips_weight: float = 0.8
    lpips_weights: str | None = None      # LPIPS (AlexNet) weights file; None: term off
    lpips_backbone: str | None = None     # torchvision AlexNet file, when lpips_weights holds only
                                          # the lpips package's linear layers
    id_weight: float = 0.1
    arcface_weights: str | None = None    # ArcFace IR-SE50 weights file; None: term off
    w_norm_weight: float = 0.0
    optimizer: str = "ranger"             # ranger (pSp's default) | adam
    lr: float = 1e-4
    betas: tuple[float, float] | None = None  # None: the optimiser's pSp default (OPTIMIZER_BETAS)
    train_noise: str = "random"           # generator noise in the loss: random (pSp) | constant
    holdout: int = 500                    # FFHQ images kept out for validation
    eval_images: int = 256                # held-out images per evaluation
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(
        batch=8, total_images=4_000_000, log_every=8_000, sample_every=40_000,
        snapshot_every=40_000, eval_every=40_000))


def check_options(cfg: PSPConfig):
    """ValueError naming the valid values of an unknown optimiser or noise setting."""
    if cfg.train_noise not in TRAIN_NOISE:
        raise ValueError(f"psp.train_noise must be one of {list(TRAIN_NOISE)}, "
                         f"got {cfg.train_noise!r}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"psp.optimizer must be one of {list(OPTIMIZERS)}, "
                         f"got {cfg.optimizer!r}")


def make_optimizer(cfg: PSPConfig, params) -> torch.optim.Optimizer:
    """The configured optimiser over ``params``; an unknown name is a ValueError."""
    check_options(cfg)
    betas = resolved_betas(cfg)
    if cfg.optimizer == "ranger":
        return Ranger(params, lr=cfg.lr, betas=betas)
    return torch.optim.Adam(params, lr=cfg.lr, betas=betas)


def resolved_betas(cfg: PSPConfig) -> tuple[float, float]:
    return (tuple(float(b) for b in cfg.betas) if cfg.betas is not None
            else OPTIMIZER_BETAS.get(cfg.optimizer, OPTIMIZER_BETAS["adam"]))


def active_weights(cfg: PSPConfig, log=print) -> dict:
    """Loss weights after switching off the terms whose pretrained networks are absent."""
    weights = {"l2": cfg.l2_weight, "w_norm": cfg.w_norm_weight, "lpips": 0.0, "id": 0.0}
    for term, weight, path in (("lpips", cfg.lpips_weight, cfg.lpips_weights),
                               ("id", cfg.id_weight, cfg.arcface_weights)):
        if weight <= 0:
            continue
        if not path:
            msg = (f"pSp loss term '{term}' (weight {weight}) switched OFF: no pretrained "
                   f"weights configured ({'lpips_weights' if term == 'lpips' else 'arcface_weights'})")
            warnings.warn(msg)
            log("WARNING: " + msg)
        elif not os.path.isfile(path):
            raise FileNotFoundError(f"pSp loss term '{term}': weights file {path} does not exist")
        else:
            weights[term] = weight
    return weights


def latent_avg_source(g: BlendGenerator, path, log=print) -> str:
    """Where the encoder's latent average comes from: the checkpoint's stored centre (which
    load_generator leaves in g.latent_avg and names), else an estimate written into g."""
    if getattr(g, "latent_avg_source", None) == "checkpoint":
        return "checkpoint"
    n = 4096
    g.update_latent_avg(n)
    msg = (f"generator checkpoint {path} stores no latent_avg: the pSp latent "
           f"average is ESTIMATED as the mean of {n} mapped random z")
    warnings.warn(msg)
    log("WARNING: " + msg)
    return "estimated"


def build_encoder(cfg: PSPConfig, g: BlendGenerator) -> PSPEncoder:
    """A fresh encoder into g's W+, initialised from the run's seed."""
    torch.manual_seed(cfg.loop.seed)
    return PSPEncoder(n_styles=g.n_latent, style_dim=g.style_dim, num_layers=cfg.num_layers,
                      mode=cfg.mode, widths=cfg.widths, units=cfg.units,
                      input_size=cfg.input_size)


@dataclass(frozen=True)
class PSPParts:
    generator: BlendGenerator             # frozen, its latent_avg set (latent_avg_source)
    encoder: PSPEncoder                   # trained; starts at the generator's latent average
    weights: dict                         # loss weights, 0 for the terms switched off
    lpips: LPIPS | None                   # frozen loss networks of the active terms
    arcface: ArcFace | None
    latent_avg_source: str                # "checkpoint" | "estimated"
    train_set: LMDBImages                 # faces at the generator's resolution
    held_set: LMDBImages | None           # kept out: eval/val_l2


class PSPTrainer(Trainer):
    name = "psp"

    def __init__(self, cfg: PSPConfig, dist, out, parts: PSPParts):
        super().__init__(cfg, dist, out)
        dev = self.device
        check_options(cfg)
        # Frozen networks: gradients reach the reconstruction, never their weights.
        self.g = parts.generator.to(dev).requires_grad_(False).eval()
        self.weights, self.latent_avg_source = parts.weights, parts.latent_avg_source
        self.lpips = parts.lpips.to(dev) if parts.lpips is not None else None
        self.arcface = parts.arcface.to(dev) if parts.arcface is not None else None
        self.enc = parts.encoder.to(dev)
        self.enc.set_latent_avg(self.g.latent_avg)
        self.models = {"psp": self.enc}
        self.opt = make_optimizer(cfg, self.enc.parameters())
        self.optimizers = {"psp": self.opt}
        self.train_set, self.held_set = parts.train_set, parts.held_set
        self.loader = StepLoader(self.train_set.as_uint8(), cfg.loop.batch, cfg.loop.seed,
                                 dist.rank, dist.world, cfg.loop.workers)
        self.log(f"generator {self.g.resolution}px, {self.g.n_latent} w-vectors; "
                 f"{len(self.train_set)} training faces, "
                 f"{len(self.held_set) if self.held_set else 0} held out; loss weights "
                 f"{self.weights}; optimiser {cfg.optimizer} lr {cfg.lr} betas "
                 f"{resolved_betas(cfg)}; {cfg.train_noise} noise in the loss; latent average "
                 f"from the {self.latent_avg_source}")

    @classmethod
    def from_paths(cls, cfg: PSPConfig, dist, out, face: str, generator: str) -> "PSPTrainer":
        """The generator checkpoint ``generator``, the configured loss networks (terms without
        weights switched off, with a warning) and the face LMDB ``face``."""
        check_options(cfg)
        dev = dist.device
        g = load_generator(generator, map_location=dev)
        source = latent_avg_source(g, generator, dist.log)
        weights = active_weights(cfg, dist.log)
        lpips = (load_lpips(cfg.lpips_weights, map_location=dev, backbone=cfg.lpips_backbone)
                 if weights["lpips"] else None)
        arcface = load_arcface(cfg.arcface_weights, map_location=dev) if weights["id"] else None
        encoder = build_encoder(cfg, g)
        full = LMDBImages(check_lmdb(face), g.resolution)
        train_idx, held_idx = split_indices(len(full), cfg.holdout, cfg.loop.seed)
        held = LMDBImages(face, g.resolution, held_idx) if held_idx else None
        parts = PSPParts(g, encoder, weights, lpips, arcface, source,
                         LMDBImages(face, g.resolution, train_idx), held)
        return cls(cfg, dist, out, parts)

    def get_batch(self, step):
        batch = {"x": to_unit(to_device(self.loader.get(step), self.device))}
        if self.cfg.train_noise == "random":
            batch.update(self.noise_inputs(step))
        return batch

    def noise_inputs(self, step) -> dict:
        """Fresh noise maps for every noise input of the generator, drawn for the global batch
        from a generator seeded by the step (then this rank's share): independent of the
        process count, of accumulation and of what else drew random numbers, so a resumed run
        sees the noise the uninterrupted one would have."""
        seed = step_generator(self.cfg.loop.seed, step, "psp_noise").initial_seed()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        n = self.cfg.loop.batch
        return {f"noise_{i}": self.dist.local(torch.randn(n, *c.shape[1:], generator=gen,
                                                          device=self.device))
                for i, c in enumerate(self.g.constant_noise())}

    def reconstruct(self, x, noise: list | None = None):
        """Constant noise unless noise maps are given: evaluation, samples and inference use
        the generator's fixed noise, as pSp's inference does."""
        w = self.enc(x)
        if noise is None:
            y = self.g(w_face=w, indicator=18, randomize_noise=False)
        else:
            y = self.g(w_face=w, indicator=18, noise=noise)
        return y, w

    def pool(self, x):
        s = min(self.cfg.loss_size, x.shape[-1])
        return F.adaptive_avg_pool2d(x, (s, s))

    def loss(self, mb, step):
        x = mb["x"]
        noise = ([mb[f"noise_{i}"] for i in range(self.g.num_layers)]
                 if self.cfg.train_noise == "random" else None)  # random: pSp's training
        y, w = self.reconstruct(x, noise)
        l2 = F.mse_loss(self.pool(y), self.pool(x))
        loss = self.weights["l2"] * l2
        stats = {"l2": l2}
        if self.lpips is not None:
            lp = self.lpips(self.pool(y), self.pool(x)).mean()
            loss = loss + self.weights["lpips"] * lp
            stats["lpips"] = lp
        if self.arcface is not None:
            with torch.no_grad():
                target = self.arcface.identity(x)
            id_loss = (1 - (self.arcface.identity(y) * target).sum(1)).mean()
            loss = loss + self.weights["id"] * id_loss
            stats["id"] = id_loss
        if self.weights["w_norm"] > 0:
            w_norm = (w - self.enc.latent_avg).norm(2, dim=(1, 2)).mean()
            loss = loss + self.weights["w_norm"] * w_norm
            stats["w_norm"] = w_norm
        return loss, stats

    def phases(self):
        return [Phase("E_main", list(self.enc.parameters()), self.opt, self.loss)]

    def held_images(self):
        n = min(len(self.held_set), self.cfg.eval_images)
        return torch.stack([self.held_set[i] for i in range(n)]).to(self.device)

    @torch.no_grad()
    def evaluate(self):
        if self.held_set is None:
            return {}
        self.enc.eval()
        x = self.held_images()
        l2, l1 = [], []
        for i in range(0, len(x), 32):
            y, _ = self.reconstruct(x[i:i + 32])
            l2.append(F.mse_loss(self.pool(y), self.pool(x[i:i + 32]), reduction="sum"))
            l1.append((self.pool(y) - self.pool(x[i:i + 32])).abs().sum())
        self.enc.train()
        n = self.pool(x).numel()
        return {"val_l2": float(sum(l2) / n), "val_l1": float(sum(l1) / n)}

    @torch.no_grad()
    def sample(self):
        if self.held_set is None:
            return None
        self.enc.eval()
        x = self.held_images()[:8]
        y, _ = self.reconstruct(x)
        self.enc.train()
        return torch.cat([x, y.clamp(-1, 1)]), len(x)

    def final_checkpoint(self):
        self.enc.eval()
        return {"psp": self.enc}, {"holdout_names": self.held_set.names if self.held_set else [],
                                   "loss_weights": self.weights,
                                   "optimizer": self.cfg.optimizer,
                                   "betas": list(resolved_betas(self.cfg)),
                                   "train_noise": self.cfg.train_noise,
                                   "latent_avg_source": self.latent_avg_source}


def main(argv=None):
    from .cli import train_main

    def add(p):
        p.add_argument("--face", required=True, help="FFHQ (natural) LMDB folder")
        p.add_argument("--generator", required=True, help="BlendGAN (or StyleGAN2) checkpoint")

    return train_main(argv, PSPConfig,
                      lambda cfg, dist, out, a: PSPTrainer.from_paths(cfg, dist, out, a.face, a.generator),
                      __doc__.split("\n\n")[0], add)


if __name__ == "__main__":
    main(sys.argv[1:])
