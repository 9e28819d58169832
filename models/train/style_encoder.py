"""Style encoder training (method 4.1): contrastive learning on affine-only views, VGG frozen.

    python -m models.train.style_encoder --config CFG.yaml --data STYLE_LMDB --out DIR

Two affine views of every image (random resized crop, flip, small rotation and translation;
never colour) -> frozen VGG Gram features -> embedding MLP -> projection head -> NT-Xent
(temperature 0.2). Only the two MLPs learn. Under several processes the loss uses the global
batch's negatives. The final checkpoint holds the encoder with the mean and covariance of its
codes over the training set stored (for sampling in-distribution styles), and the names of the
images it kept out (for probes). ``whiten: true`` (the demo's choice) first folds a whitening
of the codes into the last layer (mean 0, covariance I, as latent-guided z_s ~ N(0, I)).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from ..images import LMDBImages, to_unit
from ..style_encoder import StyleEncoder
from .augment import AffineAugment
from .config import LoopConfig
from .data import StepLoader, check_lmdb, split_indices
from .distributed import gather_rows
from .losses import nt_xent
from .placement import to_device
from .seeding import step_generator
from .trainer import Phase, Trainer


@dataclass(frozen=True)
class StyleEncoderConfig:
    resolution: int = 256                 # images read at this size (AAHQ at 256^2)
    pool_size: int = 256                  # encoder pools its input to this size (method 3.1)
    style_dim: int = 512                  # width of z_s
    n_mlp: int = 4                        # embedding MLP layers
    n_proj: int = 4                       # projection-head layers (training only)
    vgg_width: float = 1.0                # VGG channel multiplier (demo: narrow)
    vgg_weights: str | None = None        # torchvision VGG-19 file; None: random VGG (demo only)
    imagenet_normalize: bool = False      # False = released reference behaviour
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    temperature: float = 0.2              # NT-Xent temperature [decision]
    holdout: int = 0                      # images kept out of training (probes use them)
    whiten: bool = False                  # fold a whitening of z_s over the training set into
                                          # the last MLP layer, so reference codes have mean 0
                                          # and covariance I like latent-guided N(0, I) draws
                                          # [the demo's departure; the paper has none]
    whiten_floor: float = 1e-2            # eigenvalues below floor * largest are raised to it:
                                          # the weak tail directions stay small [decision: on
                                          # the demo, 1e-6 / 1e-4 / 1e-3 / 1e-2 let BlendGAN
                                          # follow references 0.14 / 0.23 / 0.37 / 0.44 (chance 0.11)]
    augment: AffineAugment = AffineAugment()
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(
        batch=256, total_images=128_000_000, log_every=25_600, sample_every=0,
        snapshot_every=2_560_000))


def init_random_vgg(encoder: StyleEncoder, seed: int):
    """He-normal convs, zero biases: activations keep their scale through 16 layers, so every
    Gram block carries signal (PyTorch's default init shrinks them layer by layer)."""
    gen = torch.Generator().manual_seed(seed)
    for m in encoder.gram.vgg.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                m.bias.zero_()


def build_encoder(cfg: StyleEncoderConfig, log=print) -> StyleEncoder:
    torch.manual_seed(cfg.loop.seed)
    enc = StyleEncoder(style_dim=cfg.style_dim, n_mlp=cfg.n_mlp, vgg_width=cfg.vgg_width,
                       pool_size=cfg.pool_size, imagenet_normalize=cfg.imagenet_normalize,
                       projection_head=True, n_proj=cfg.n_proj)
    if cfg.vgg_weights:
        enc.load_vgg(cfg.vgg_weights)
        log(f"VGG-19 weights from {cfg.vgg_weights}")
    else:
        init_random_vgg(enc, cfg.loop.seed)
        log("NOTE: no VGG-19 weights configured: using a RANDOMLY INITIALISED, frozen VGG "
            f"(width {cfg.vgg_width}). Fine for the demo; the paper needs ImageNet weights.")
    return enc


@dataclass(frozen=True)
class StyleEncoderParts:
    encoder: StyleEncoder                 # with its projection head; the VGG stays frozen
    train_set: LMDBImages
    held_set: LMDBImages | None           # images kept out of training (evaluation, probes)


class StyleEncoderTrainer(Trainer):
    name = "style_encoder"

    def __init__(self, cfg: StyleEncoderConfig, dist, out, parts: StyleEncoderParts):
        super().__init__(cfg, dist, out)
        self.enc = parts.encoder.to(self.device)
        self.models = {"style_encoder": self.enc}
        self.opt = torch.optim.Adam(self.enc.trainable_parameters(), lr=cfg.lr, betas=cfg.betas)
        self.optimizers = {"style_encoder": self.opt}
        self.train_set, self.held_set = parts.train_set, parts.held_set
        self.loader = StepLoader(self.train_set.as_uint8(), cfg.loop.batch, cfg.loop.seed,
                                 dist.rank, dist.world, cfg.loop.workers)
        self.log(f"{len(self.train_set)} training images, "
                 f"{len(self.held_set) if self.held_set else 0} held out, "
                 f"Gram dim {self.enc.gram.dim}")

    @classmethod
    def from_paths(cls, cfg: StyleEncoderConfig, dist, out, data: str) -> "StyleEncoderTrainer":
        """A fresh encoder on the style LMDB ``data``, ``holdout`` of its images kept out."""
        encoder = build_encoder(cfg, dist.log)
        full = LMDBImages(check_lmdb(data), cfg.resolution)
        train_idx, held_idx = split_indices(len(full), cfg.holdout, cfg.loop.seed)
        parts = StyleEncoderParts(
            encoder, LMDBImages(data, cfg.resolution, train_idx),
            LMDBImages(data, cfg.resolution, held_idx) if held_idx else None)
        return cls(cfg, dist, out, parts)

    def views(self, images, gen, local=True):
        n = images.shape[0] * (self.dist.world if local else 1)
        t1, t2 = self.cfg.augment.params(n, gen), self.cfg.augment.params(n, gen)
        if local:
            t1, t2 = self.dist.local(t1), self.dist.local(t2)
        t1, t2 = to_device(t1, images.device), to_device(t2, images.device)
        return self.cfg.augment.apply(images, t1), self.cfg.augment.apply(images, t2)

    def get_batch(self, step):
        x = to_unit(to_device(self.loader.get(step), self.device))
        v1, v2 = self.views(x, step_generator(self.loop.seed, step, "views"))
        return {"v1": v1, "v2": v2}

    def project(self, views):
        with torch.no_grad():  # VGG is frozen: no graph through it
            feats = self.enc.gram(views)
        return self.enc.project(self.enc.mlp(feats))

    def loss(self, mb, step):
        h1 = gather_rows(self.project(mb["v1"]), self.dist)
        h2 = gather_rows(self.project(mb["v2"]), self.dist)
        loss = nt_xent(h1, h2, self.cfg.temperature)
        return loss * self.dist.world, {"nt_xent": loss.detach(),
                                        "view_retrieval": retrieval_accuracy(h1, h2)}

    def phases(self):
        return [Phase("E_main", self.enc.trainable_parameters(), self.opt, self.loss)]

    @torch.no_grad()
    def evaluate(self):
        """NT-Xent and view-retrieval accuracy on held-out images (no labels involved)."""
        if self.held_set is None:
            return {}
        x = torch.stack([self.held_set[i] for i in range(min(len(self.held_set), 256))])
        v1, v2 = self.views(x.to(self.device), torch.Generator().manual_seed(12345), local=False)
        h1, h2 = self.project(v1), self.project(v2)
        return {"holdout_nt_xent": float(nt_xent(h1, h2, self.cfg.temperature)),
                "holdout_view_retrieval": float(retrieval_accuracy(h1, h2))}

    @torch.no_grad()
    def final_checkpoint(self):
        codes = embed_dataset(self.enc, self.train_set, self.device)
        if self.cfg.whiten:
            kept = whiten_output_(self.enc, codes, self.cfg.whiten_floor)
            codes = embed_dataset(self.enc, self.train_set, self.device)
            self.log(f"z_s whitened over the training set (folded into the MLP); {kept} of "
                     f"{codes.shape[1]} directions above the eigenvalue floor")
        self.enc.set_style_stats(codes)
        self.log(f"z_s statistics over {codes.shape[0]} training images stored in the encoder")
        extra = {"holdout_names": self.held_set.names if self.held_set else [],
                 "train_count": len(self.train_set),
                 "vgg": self.cfg.vgg_weights or "random-init (demo)"}
        return {"style_encoder": self.enc}, extra


def whitening(codes: torch.Tensor, floor: float):
    """(mean, A, A^-1, lambda') with A = U diag(lambda')^-1/2 U^T, lambda' the covariance's
    eigenvalues floored at floor * max(lambda). The symmetric (ZCA) form has no eigenvector sign
    ambiguity, so runs that differ by float noise (1 vs 2 processes) still agree."""
    codes = codes.double()
    lam, u = torch.linalg.eigh(torch.cov(codes.T))
    lam = lam.clamp_min(max(floor, 1e-12) * float(lam.max()))
    return codes.mean(0), (u * lam.rsqrt()) @ u.T, (u * lam.sqrt()) @ u.T, lam


@torch.no_grad()
def whiten_output_(enc: StyleEncoder, codes: torch.Tensor, floor: float = 1e-2) -> int:
    """Make the encoder output A (z - mean) by rewriting its last linear layer, so codes over
    ``codes``' images have mean 0 and covariance I (below the floor: less than I). The
    projection head's first layer absorbs the inverse, so head(encoder(x)) is unchanged.
    Returns how many directions are fully whitened (not floored)."""
    mean, a, a_inv, lam = (t.to(enc.mlp[-1].weight.device) for t in whitening(codes, floor))
    last, first = enc.mlp[-1], enc.projector[0] if enc.projector is not None else None
    w, b = last.weight.double(), last.bias.double() * last.lr_mul  # z = scale * w h + b
    last.weight.copy_(a @ w)
    last.bias.copy_(a @ (b - mean) / last.lr_mul)
    if first is not None:  # head sees z = A^-1 z' + mean
        w1 = first.weight.double()
        first.bias.add_((mean @ (w1 * first.scale).T / first.lr_mul).to(first.bias))
        first.weight.copy_(w1 @ a_inv)
    return int((lam > floor * float(lam.max())).sum())


def retrieval_accuracy(h1, h2):
    """Share of views whose nearest other view (cosine) is their positive partner."""
    z1 = nn.functional.normalize(h1.detach(), dim=1)
    z2 = nn.functional.normalize(h2.detach(), dim=1)
    return (torch.argmax(z1 @ z2.T, dim=1) == torch.arange(len(z1), device=z1.device)).float().mean()


@torch.no_grad()
def embed_dataset(encoder, dataset, device, batch: int = 64) -> torch.Tensor:
    out = []
    for start in range(0, len(dataset), batch):
        x = torch.stack([dataset[i] for i in range(start, min(start + batch, len(dataset)))])
        out.append(encoder(x.to(device)).cpu())
    return torch.cat(out)


def main(argv=None):
    from .cli import train_main
    return train_main(
        argv, StyleEncoderConfig,
        lambda cfg, dist, out, a: StyleEncoderTrainer.from_paths(cfg, dist, out, a.data),
        __doc__.split("\n\n")[0],
        lambda p: p.add_argument("--data", required=True, help="AAHQ (style) LMDB folder"))


if __name__ == "__main__":
    main(sys.argv[1:])
