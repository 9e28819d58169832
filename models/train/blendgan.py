"""BlendGAN training (method 4.2): natural and stylised branches, three discriminators.

    python -m models.train.blendgan --config CFG.yaml --face FFHQ_LMDB --style AAHQ_LMDB \
        --style-encoder E.pt --out DIR

Each iteration takes one FFHQ and one AAHQ batch. Natural branch: G(z_f, i=18) vs FFHQ through
D_face. Stylised branch: z_s = E_style(AAHQ image) (reference-guided) or z_s ~ N(0, I)
(latent-guided), chosen per sample; indicator i uniform in {0..17} per sample;
G(z_f, z_s, i) vs AAHQ through D_style; D_style_latent sees (AAHQ, E_style(AAHQ)) as real and
(fake, z_s) as fake. Non-saturating logistic losses, R1 every 16 iterations on all three Ds,
path length every 4, style mixing on z_f, EMA of G. E_style stays frozen. G starts from a
rosinality StyleGAN2 checkpoint when ``stylegan2_checkpoint`` is set (D_face from its ``d``,
D_style and D_style_latent random, or D_style a copy of D_face with ``d_style_init: copy``), from
scratch otherwise. Both branches go through G in
one batched call (natural rows use i = 18, which ignores z_s exactly).

``style_embedding: gram`` trains the supplement-D ablation: z_s is the frozen encoder's Gram
concatenation itself (its VGG, no MLP); G's style mapping and D_style_latent's projection take
that width. Decision: such a run is reference-guided only (``reference_fraction`` must be 1),
since N(0, I) draws are not Gram vectors; its samples and evaluation skip the latent-guided sets.
"""

from __future__ import annotations

import copy
import functools
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from basics.frechet import frechet_distance_of_features

from ..blendgan import (INDICATOR_RULE, LATENT_STYLES, PAPER_N_LATENT, STYLE_EMBEDDINGS,
                        BlendGenerator)
from ..checkpoint import load_checkpoint, load_style_encoder, load_stylegan2
from ..discriminators import make_discriminators
from ..images import LMDBImages, to_unit
from ..style_encoder import StyleEncoder
from ..stylegan2 import Discriminator
from .augment import hflip
from .config import LoopConfig
from .data import StepLoader, check_lmdb, step_indices
from .diffaugment import diff_augment, parse_policy
from .losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss, g_path_length
from .optim import lazy_adam
from .placement import to_device
from .seeding import step_generator
from .gan import GANTrainer


@dataclass(frozen=True)
class BlendGANConfig:
    resolution: int = 1024                # output size (must match a StyleGAN2 init)
    style_dim: int = 512                  # z and w width (= the style encoder's)
    n_mlp: int = 8                        # layers of each mapping network
    channel_multiplier: int = 2
    channel_base: int = 16384             # demo: small, with channel_max, for narrow nets
    channel_max: int = 512
    lr_mlp: float = 0.01
    stddev_group: int = 4                 # D minibatch-stddev group
    stylegan2_checkpoint: str | None = None  # rosinality FFHQ checkpoint; None: from scratch
    d_style_init: str = "random"          # D_style: random (supplement A) or copy (of D_face)
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1: float = 10.0                      # R1 gamma, all three Ds
    d_reg_every: int = 16
    path_regularize: float = 2.0
    path_batch_shrink: int = 2
    path_decay: float = 0.01
    g_reg_every: int = 4
    mixing: float = 0.9                   # style-mixing probability on z_f
    reference_fraction: float = 0.5       # stylised samples with z_s = E_style(reference)
    latent_style: str = "normal"          # latent-guided z_s ~ N(0, I), as the supplement and the
                                          # released code; fitted = N(mean, cov) of E_style's
                                          # training codes [the demo's departure: N(0, I) draws
                                          # fall off the codes' subspace, docs/models.md]
    style_embedding: str = "encoder"      # encoder: z_s = E_style(ref); gram: the raw Gram vector
                                          # (supplement D ablation; needs reference_fraction 1)
    indicator_max: int = 17               # i uniform in {0..indicator_max} for stylised rows
    xflip: bool = True                    # random horizontal flips of the reals
    diff_augment: str = ""                # D-side augmentation of reals and fakes for small sets,
                                          # e.g. "color,translation,cutout" (off: paper)
    ema_half_life_images: float = 2_500   # rosinality's train.py: decay 0.5 ** (32 / 10,000) per
                                          # step, a half-life of 2,500 images at its batch 8
    latent_avg: str = "checkpoint"        # truncation centre of the final g_ema: checkpoint = the
                                          # one the StyleGAN2 checkpoint brought (what the released
                                          # scripts and pSp read); estimate = the mean w of 4,096
                                          # draws through the final face mapping (always when G
                                          # starts from scratch)
    alpha_lr_mult: float = 1.0            # lr multiplier of the blending weights alpha (1 = paper;
                                          # the short demo raises it so alpha leaves its init of 1)
    cache_style_codes: bool = True        # E_style codes of the style set (both flips) computed
                                          # once: E_style is frozen and the set fixed
    eval_images: int = 256                # images per set for the FD-Estyle proxy
    sample_faces: int = 8                 # columns of the sample grid
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(
        batch=8, total_images=1_600_000, log_every=8_000, sample_every=40_000,
        snapshot_every=40_000, eval_every=100_000))


LATENT_AVG_SOURCES = ("checkpoint", "estimate")


def encoder_whitened(path) -> bool | None:
    """Whether the style encoder's training folded a whitening into it (its recorded config);
    None when the file does not say (a released generator's embedder)."""
    try:
        config = load_checkpoint(path, build=False)["config"]
    except ValueError:
        return None
    return config.get("whiten") if "whiten" in config else None


CODE_TABLE_MAX_BYTES = 2 << 30  # larger tables (the Gram ablation at paper scale): embed per batch


def check_config(cfg: BlendGANConfig):
    """ValueError for an unknown option value or the Gram ablation's impossible mixture."""
    for key, valid in (("latent_style", LATENT_STYLES), ("latent_avg", LATENT_AVG_SOURCES),
                       ("style_embedding", STYLE_EMBEDDINGS)):
        if getattr(cfg, key) not in valid:
            raise ValueError(f"{key} must be one of {valid}, got {getattr(cfg, key)!r}")
    if cfg.style_embedding == "gram" and cfg.reference_fraction != 1:
        raise ValueError("style_embedding: gram needs reference_fraction: 1 (a Gram vector "
                         "cannot be sampled from N(0, I): the ablation is reference-guided)")


def style_input_dim(cfg: BlendGANConfig, encoder: StyleEncoder) -> int:
    """Width of z_s as G and D_style_latent see it: the Gram dimension in the ablation, else
    the encoder's code width, which must be ``style_dim``."""
    if cfg.style_embedding == "gram":
        return encoder.gram.dim
    if encoder.style_dim != cfg.style_dim:
        raise ValueError(f"the style encoder gives {encoder.style_dim}-d codes but "
                         f"blendgan.style_dim is {cfg.style_dim}")
    return cfg.style_dim


def build_networks(cfg: BlendGANConfig, z_style_dim: int, device, log=print) -> dict:
    """G, its EMA copy and the three Ds: from ``stylegan2_checkpoint`` when set (G and D_face
    loaded, the rest random), from scratch otherwise; random draws seeded by the run's seed."""
    torch.manual_seed(cfg.loop.seed)
    if cfg.stylegan2_checkpoint:
        ck = load_stylegan2(cfg.stylegan2_checkpoint, map_location=device)
        g_ema = ck["g_ema"]
        g = ck.get("g") or copy.deepcopy(g_ema)
        if g.size != cfg.resolution or g.style_dim != cfg.style_dim:
            raise ValueError(f"{cfg.stylegan2_checkpoint}: a {g.size}px, {g.style_dim}-d "
                             f"generator, but the config asks for {cfg.resolution}px, "
                             f"{cfg.style_dim}-d")
        d_face = ck["d"]
        kw = {k: v for k, v in d_face.init_kwargs.items() if k != "size"}
        if cfg.style_embedding == "gram":
            g, g_ema = (with_style_input(g, z_style_dim, cfg.loop.seed, device),
                        with_style_input(g_ema, z_style_dim, cfg.loop.seed, device))
        log(f"initialised G and D_face from {cfg.stylegan2_checkpoint}")
    else:
        g = BlendGenerator(cfg.resolution, cfg.style_dim, cfg.n_mlp, cfg.channel_multiplier,
                           lr_mlp=cfg.lr_mlp, channel_base=cfg.channel_base,
                           channel_max=cfg.channel_max, style_input_dim=z_style_dim)
        g.copy_face_mapping_to_style()  # method 4.2 (a wider Gram input layer stays random)
        g_ema = copy.deepcopy(g)
        kw = dict(channel_multiplier=cfg.channel_multiplier, channel_base=cfg.channel_base,
                  channel_max=cfg.channel_max, stddev_group=cfg.stddev_group)
        d_face = Discriminator(cfg.resolution, **kw)
        log("no StyleGAN2 checkpoint configured: G and D_face from scratch")
    ds = make_discriminators(cfg.resolution, z_style_dim, d_face=d_face,
                             d_style_init=cfg.d_style_init, **kw)
    return {"g": g.to(device), "g_ema": g_ema.to(device), **{k: v.to(device) for k, v in ds.items()}}


def with_style_input(g: BlendGenerator, z_style_dim: int, seed: int, device) -> BlendGenerator:
    """The same generator with a style mapping that takes z_s of width ``z_style_dim``."""
    torch.manual_seed(seed)  # g and g_ema get the same random wide layer
    kw = dict(g.init_kwargs, style_input_dim=z_style_dim)
    wide = BlendGenerator(**kw).to(device)
    sd = {k: v for k, v in g.state_dict().items() if not k.startswith("embedding.1.")}
    missing, unexpected = wide.load_state_dict(sd, strict=False)
    if unexpected or any(not k.startswith("embedding.1.") for k in missing):
        raise KeyError(f"widening the style input: missing {missing}, unexpected {unexpected}")
    return wide


@dataclass(frozen=True)
class BlendGANParts:
    g: BlendGenerator                     # trained (its ``embedder`` stays out of training)
    g_ema: BlendGenerator
    d_face: nn.Module
    d_style: nn.Module
    d_style_latent: nn.Module
    encoder: StyleEncoder                 # E_style, frozen
    face_set: Dataset                     # natural images (LMDBImages)
    style_set: Dataset                    # style references (LMDBImages, or one reference)
    encoder_whitened: bool | None = None  # what the encoder's training recorded, for the record


class BlendGANTrainer(GANTrainer):
    name = "blendgan"
    code_table = None  # (flips, N, dim) z_s of the style set, when cached

    def __init__(self, cfg: BlendGANConfig, dist, out, parts: BlendGANParts):
        super().__init__(cfg, dist, out)
        check_config(cfg)
        dev = self.device
        self.encoder = parts.encoder.to(dev).requires_grad_(False)
        self.encoder_whitened = parts.encoder_whitened
        self.gram = cfg.style_embedding == "gram"
        self.z_style_dim = style_input_dim(cfg, self.encoder)
        self.models = {name: getattr(parts, name).to(dev)
                       for name in ("g", "g_ema", "d_face", "d_style", "d_style_latent")}
        g = self.models["g"]
        self.g, self.g_ema = g, self.models["g_ema"].eval().requires_grad_(False)
        self.ds = [self.models[k] for k in ("d_face", "d_style", "d_style_latent")]
        self.g_params = [p for n, p in g.named_parameters() if not n.startswith("embedder.")]
        self.d_params = [p for d in self.ds for p in d.parameters()]
        alpha = [g.add_weight]
        rest = [p for p in self.g_params if p is not g.add_weight]
        self.g_opt = lazy_adam([{"params": rest}, {"params": alpha, "lr_mult": cfg.alpha_lr_mult}],
                               cfg.lr, cfg.betas, cfg.g_reg_every)
        self.d_opt = lazy_adam(self.d_params, cfg.lr, cfg.betas, cfg.d_reg_every)
        self.optimizers = {"g": self.g_opt, "d": self.d_opt}
        self.after_g_step = g.clamp_alpha_
        self.ema_pairs = [("g_ema", "g")]
        self.ema_half_life = cfg.ema_half_life_images
        self.augment = parse_policy(cfg.diff_augment)
        lp = cfg.loop
        self.face_set, self.style_set = parts.face_set, parts.style_set
        self.face_loader = StepLoader(self.face_set.as_uint8(), lp.batch, lp.seed, dist.rank,
                                      dist.world, lp.workers)
        self.style_loader = StepLoader(self.style_set.as_uint8(), lp.batch, lp.seed + 1,
                                       dist.rank, dist.world, lp.workers)
        if cfg.cache_style_codes:
            self.code_table = self.build_code_table()
        self._real_feats = None

    @classmethod
    def from_paths(cls, cfg: BlendGANConfig, dist, out, face: str, style: str,
                   style_encoder: str) -> "BlendGANTrainer":
        """The trained style encoder ``style_encoder``, networks as ``build_networks`` makes
        them, and the face and style LMDBs."""
        check_config(cfg)
        encoder = load_style_encoder(style_encoder, map_location=dist.device)
        try:
            z_style_dim = style_input_dim(cfg, encoder)
        except ValueError as err:
            raise ValueError(f"{style_encoder}: {err}") from None
        networks = build_networks(cfg, z_style_dim, dist.device, dist.log)
        parts = BlendGANParts(**networks, encoder=encoder,
                              face_set=LMDBImages(check_lmdb(face), cfg.resolution),
                              style_set=LMDBImages(check_lmdb(style), cfg.resolution),
                              encoder_whitened=encoder_whitened(style_encoder))
        return cls(cfg, dist, out, parts)

    def latent_codes(self, eps):
        """Latent-guided z_s from standard normal draws: eps itself (latent_style: normal), or
        mapped to N(mean, cov) of E_style's training codes (fitted)."""
        if self.cfg.latent_style == "normal":
            return eps
        return self.encoder.from_normal(eps, self.style_factor)

    @functools.cached_property
    def style_factor(self) -> torch.Tensor:
        """Cholesky factor of E_style's code covariance: computed once (E_style is frozen), not
        per step (the factorisation checks its result on the host)."""
        return self.encoder.normal_factor()

    @torch.no_grad()
    def embed(self, images):
        """z_s of reference images: E_style's code, or its Gram vector in the ablation."""
        return self.encoder.gram(images) if self.gram else self.encoder(images)

    @torch.no_grad()
    def build_code_table(self) -> torch.Tensor | None:
        """z_s of every style image and of its mirror image, as the training batches see them
        (same resolution, same flip), so a step looks its codes up instead of running E_style."""
        n, flips = len(self.style_set), 2 if self.cfg.xflip else 1
        if flips * n * self.z_style_dim * 4 > CODE_TABLE_MAX_BYTES:
            self.log(f"style codes not cached: {flips} x {n} x {self.z_style_dim} floats "
                     f"exceed {CODE_TABLE_MAX_BYTES >> 30} GiB")
            return None
        table = torch.empty(flips, n, self.z_style_dim, device=self.device)
        for start in range(0, n, 64):
            stop = min(n, start + 64)
            images = torch.stack([self.style_set[i] for i in range(start, stop)]).to(self.device)
            for flip in range(flips):
                table[flip, start:stop] = self.embed(images.flip(3) if flip else images)
        return table

    def real_style_codes(self, step: int, style: torch.Tensor, flipped) -> torch.Tensor:
        """z_s of this step's style batch: from the code table (the loader's indices of
        ``step`` and the flip flags), else through E_style now."""
        if self.code_table is None:
            return self.embed(style)
        lp = self.cfg.loop
        idx = self.dist.local(torch.tensor(step_indices(len(self.style_set), lp.batch,
                                                        lp.seed + 1, step)))
        idx = to_device(idx, self.device)
        flip = flipped.long() if flipped is not None else torch.zeros_like(idx)
        return self.code_table[flip, idx]

    # ----------------------------------------------------------------------- batches
    def pair_local(self, t, dim=0):
        """Rows drawn as [natural B | stylised B] -> this rank's [natural b | stylised b]."""
        shape = list(t.shape)
        t = t.reshape(shape[:dim] + [2, shape[dim] // 2] + shape[dim + 1:])
        t = self.dist.local(t, dim + 1)
        return t.reshape(shape[:dim] + [-1] + shape[dim + 1:])

    def noise(self, n, gen):
        """Per-layer noise inputs for the 2B rows of one generator call, drawn globally."""
        return [to_device(self.pair_local(torch.randn(n, 1, 2 ** ((i + 5) // 2),
                                                      2 ** ((i + 5) // 2), generator=gen)),
                          self.device)
                for i in range(self.g.num_layers)]

    def get_batch(self, step):
        cfg, dist, dev = self.cfg, self.dist, self.device
        B, D = cfg.loop.batch, cfg.style_dim
        gen = step_generator(cfg.loop.seed, step, "blendgan")
        face = to_unit(to_device(self.face_loader.get(step), dev))
        style = to_unit(to_device(self.style_loader.get(step), dev))
        # Draws are made on the host (CPU generator, the same stream on every rank and device)
        # and copied with to_device: no host sync.
        style_flipped = None
        if cfg.xflip:
            face = hflip(face, to_device(dist.local(torch.rand(B, generator=gen) < 0.5), dev))
            style_flipped = to_device(dist.local(torch.rand(B, generator=gen) < 0.5), dev)
            style = hflip(style, style_flipped)
        z_face = to_device(self.pair_local(torch.randn(4, 2 * B, D, generator=gen), 1), dev)
        mix = bool(torch.rand((), generator=gen) < cfg.mixing)
        inject = int(torch.randint(1, self.g.n_latent, (), generator=gen))
        # A device tensor, n_latent when not mixing: one static graph either way (compile).
        inject = to_device(torch.tensor(inject if mix else self.g.n_latent), dev)
        z_latent = self.latent_codes(to_device(dist.local(torch.randn(B, D, generator=gen)), dev))
        use_ref = to_device(dist.local(torch.rand(B, generator=gen) < cfg.reference_fraction), dev)
        indicator = to_device(dist.local(torch.randint(0, cfg.indicator_max + 1, (B,),
                                                       generator=gen)), dev)
        z_real = self.real_style_codes(step, style, style_flipped)
        # The ablation is reference-guided only (z_latent is still drawn: same random stream).
        z_style = z_real if self.gram else torch.where(use_ref.unsqueeze(1), z_real, z_latent)
        return {"face": face, "style": style, "z_real": z_real, "z_style": z_style,
                "indicator": indicator, "z_face_d": z_face[:2], "z_face_g": z_face[2:],
                "inject": inject,
                "noise_d": self.noise(2 * B, gen), "noise_g": self.noise(2 * B, gen)}

    def split(self, batch, n):
        if n == 1:
            return [batch]
        out = [dict(batch) for _ in range(n)]
        for k, v in batch.items():
            if k.startswith("z_face"):
                nat, sty = v.chunk(2, dim=1)
                parts = [torch.cat([a, b], 1) for a, b in zip(nat.chunk(n, 1), sty.chunk(n, 1))]
            elif k.startswith("noise"):
                parts = [[torch.cat([t.chunk(2)[0].chunk(n)[i], t.chunk(2)[1].chunk(n)[i]])
                          for t in v] for i in range(n)]
            elif torch.is_tensor(v) and v.ndim:
                parts = v.chunk(n)
            else:
                continue
            for i in range(n):
                out[i][k] = parts[i]
        return out

    def generate(self, mb, which: str, return_latents=False):
        """Natural rows then stylised rows in one generator call."""
        z = mb[f"z_face_{which}"]
        b = mb["z_style"].shape[0]
        z_face = [z[0], z[1]]
        z_style = torch.cat([torch.zeros_like(mb["z_style"]), mb["z_style"]])
        ind = torch.cat([torch.full_like(mb["indicator"], PAPER_N_LATENT), mb["indicator"]])
        out = self.g(z_face, z_style, indicator=ind, inject_index=mb["inject"],
                     noise=mb[f"noise_{which}"], return_latents=return_latents)
        if return_latents:
            return out[0][:b], out[0][b:], out[1]
        return out[:b], out[b:]

    # ----------------------------------------------------------------------- phases
    def aug(self, images):
        """What the discriminators see: the images, augmented when diff_augment is set."""
        return diff_augment(images, self.augment) if self.augment else images

    def d_main(self, mb, step):
        d_face, d_style, d_latent = self.ds
        with torch.no_grad():
            fake_nat, fake_sty = self.generate(mb, "d")
        aug = self.aug
        l_face = d_logistic_loss(d_face(aug(mb["face"])), d_face(aug(fake_nat)))
        l_style = d_logistic_loss(d_style(aug(mb["style"])), d_style(aug(fake_sty)))
        l_latent = d_logistic_loss(d_latent(aug(mb["style"]), mb["z_real"]),
                                   d_latent(aug(fake_sty), mb["z_style"]))
        return l_face + l_style + l_latent, {"face": l_face, "style": l_style, "latent": l_latent}

    def d_reg(self, mb, step):
        d_face, d_style, d_latent = self.ds
        face = mb["face"].detach().requires_grad_(True)
        style = mb["style"].detach().requires_grad_(True)
        aug = self.aug
        r1_face = d_r1_loss(d_face(aug(face)), face)
        r1_style = d_r1_loss(d_style(aug(style)), style)
        r1_latent = d_r1_loss(d_latent(aug(style), mb["z_real"]), style)
        loss = self.cfg.r1 / 2 * (r1_face + r1_style + r1_latent) * self.cfg.d_reg_every
        return loss, {"r1_face": r1_face, "r1_style": r1_style, "r1_latent": r1_latent}

    def g_main(self, mb, step):
        d_face, d_style, d_latent = self.ds
        fake_nat, fake_sty = self.generate(mb, "g")
        aug = self.aug
        l_face = g_nonsaturating_loss(d_face(aug(fake_nat)))
        l_style = g_nonsaturating_loss(d_style(aug(fake_sty)))
        l_latent = g_nonsaturating_loss(d_latent(aug(fake_sty), mb["z_style"]))
        return l_face + l_style + l_latent, {"face": l_face, "style": l_style, "latent": l_latent}

    def g_reg(self, mb, step):
        """Path length on both branches; the running mean uses the global batch's lengths."""
        cfg = self.cfg
        b = max(1, mb["z_style"].shape[0] // cfg.path_batch_shrink)
        sub = {k: (v[:, :b] if k.startswith("z_face") else v[:b]) if torch.is_tensor(v) and v.ndim
               else v for k, v in mb.items() if not k.startswith("noise")}
        sub["z_face_g"] = torch.cat([mb["z_face_g"][:, :b],
                                     mb["z_face_g"][:, mb["z_style"].shape[0]:][:, :b]], 1)
        sub["noise_g"] = None
        fake_nat, fake_sty, latents = self.generate(sub, "g", return_latents=True)
        penalty, self.mean_path_length, lengths = g_path_length(
            torch.cat([fake_nat, fake_sty]), latents, self.mean_path_length, cfg.path_decay,
            self.dist)
        loss = cfg.path_regularize * cfg.g_reg_every * penalty
        return loss, {"path_penalty": penalty, "path_length": lengths.mean()}

    # ----------------------------------------------------------------------- outputs
    def reference_images(self, n: int) -> torch.Tensor:
        idx = np.linspace(0, len(self.style_set) - 1, n).round().astype(int)
        return torch.stack([self.style_set[int(i)] for i in idx]).to(self.device)

    @torch.no_grad()
    def sample(self):
        cfg, g = self.cfg, self.g_ema
        n = cfg.sample_faces
        gen = torch.Generator().manual_seed(cfg.loop.seed + 777)
        z = torch.randn(n, cfg.style_dim, generator=gen).to(self.device)
        refs = self.reference_images(4)
        rows = [g.generate(z)]
        for r in refs:
            zs = self.embed(r[None]).expand(n, -1)
            rows.append(g.generate(z, zs, indicator=6))
        for _ in range(2):
            zs = self.latent_codes(torch.randn(1, cfg.style_dim, generator=gen).to(self.device))
            zs = zs.expand(n, -1)
            if not self.gram:  # no latent-guided rows in the Gram ablation
                rows.append(g.generate(z, zs, indicator=6))
        return torch.cat(rows), n

    @torch.no_grad()
    def features(self, images_fn, n) -> np.ndarray:
        feats, done = [], 0
        while done < n:
            k = min(64, n - done)
            feats.append(self.encoder(images_fn(done, k)).cpu())
            done += k
        return torch.cat(feats).double().numpy()

    @torch.no_grad()
    def evaluate(self):
        """FD-Estyle: Fréchet distance in the frozen style encoder's z_s space (a named proxy,
        not FID: no Inception weights here) of natural outputs vs FFHQ and of reference- and
        latent-guided stylised outputs (i uniform in 0..17) vs AAHQ."""
        cfg, g, dev = self.cfg, self.g_ema, self.device
        n = min(cfg.eval_images, len(self.face_set), len(self.style_set))
        if n < 8:
            return {}
        if self._real_feats is None:
            fs, ss = self.face_set, self.style_set
            self._real_feats = (
                self.features(lambda s, k: torch.stack([fs[i] for i in range(s, s + k)]).to(dev), n),
                self.features(lambda s, k: torch.stack([ss[i] for i in range(s, s + k)]).to(dev), n))
        face_f, style_f = self._real_feats
        gen = torch.Generator().manual_seed(cfg.loop.seed + 999)
        z = torch.randn(n, cfg.style_dim, generator=gen).to(dev)
        zl = self.latent_codes(torch.randn(n, cfg.style_dim, generator=gen).to(dev))
        ind = torch.randint(0, cfg.indicator_max + 1, (n,), generator=gen).to(dev)
        perm = torch.randperm(len(self.style_set), generator=gen)[:n].tolist()
        ss = self.style_set

        def ref(s, k):
            zs = self.embed(torch.stack([ss[perm[i]] for i in range(s, s + k)]).to(dev))
            return g.generate(z[s:s + k], zs, indicator=ind[s:s + k])

        nat = self.features(lambda s, k: g.generate(z[s:s + k]), n)
        refd = self.features(ref, n)
        out = {"fd_estyle_natural": frechet_distance_of_features(nat, face_f),
               "fd_estyle_reference": frechet_distance_of_features(refd, style_f)}
        if not self.gram:  # latent-guided sampling is undefined for Gram vectors
            lat = self.features(lambda s, k: g.generate(z[s:s + k], zl[s:s + k],
                                                        indicator=ind[s:s + k]), n)
            out["fd_estyle_latent"] = frechet_distance_of_features(lat, style_f)
        out["alpha_mean"] = float(g.add_weight.mean())
        return out

    def final_checkpoint(self):
        """g_ema with the style encoder embedded (``embedder``, as the released weights), the
        training networks, and the encoder on its own."""
        self.latent_avg_source = self.final_latent_avg()
        kw = dict(self.g_ema.init_kwargs)
        # The ablation embeds the Gram front end alone, so the checkpoint needs no training
        # config: load_generator gives a generator whose ``embedder`` makes its z_s.
        embedder = self.encoder.gram if self.gram else self.encoder
        kw["style_encoder"] = (dict(embedder.init_kwargs) if self.gram
                               else dict(embedder.init_kwargs, projection_head=False))
        kw["style_embedding"] = self.cfg.style_embedding
        kw["latent_style"] = "normal" if self.gram else self.cfg.latent_style
        full = BlendGenerator(**kw).to(self.device)
        sd = dict(self.g_ema.state_dict())
        sd.update({f"embedder.{k}": v for k, v in embedder.state_dict().items()
                   if not k.startswith("projector.")})
        full.load_state_dict(sd, strict=True)
        models = {"g_ema": full.eval(), "g": self.g, "d_face": self.ds[0], "d_style": self.ds[1],
                  "d_style_latent": self.ds[2], "style_encoder": self.encoder}
        return models, {"mean_path_length": float(self.mean_path_length),
                        "trained_with": self.trained_with()}

    def final_latent_avg(self) -> str:
        """Set g_ema's truncation centre as ``latent_avg`` asks; which one it got."""
        brought = bool(self.g_ema.latent_avg.any())  # zeros: G started from scratch
        if self.cfg.latent_avg == "checkpoint" and brought:
            return "checkpoint"
        if self.cfg.latent_avg == "checkpoint":
            self.log("latent_avg: the starting checkpoint brought no truncation centre: estimated")
        self.g_ema.update_latent_avg()
        return "estimate (mean w of 4,096 draws)"

    def trained_with(self) -> dict:
        """The behaviours a reader of the checkpoint needs to know (docs/models.md)."""
        cfg = self.cfg
        return {"latent_style": "normal" if self.gram else cfg.latent_style,
                "style_encoder_whitened": self.encoder_whitened,
                "d_style_init": cfg.d_style_init, "ema_half_life_images": cfg.ema_half_life_images,
                "latent_avg": self.latent_avg_source,
                "indicator_max": cfg.indicator_max, "indicator_rule": INDICATOR_RULE,
                "stylegan2_checkpoint": cfg.stylegan2_checkpoint,
                "style_embedding": cfg.style_embedding}


def main(argv=None):
    from .cli import train_main

    def add(p):
        p.add_argument("--face", required=True, help="FFHQ (natural) LMDB folder")
        p.add_argument("--style", required=True, help="AAHQ (style) LMDB folder")
        p.add_argument("--style-encoder", required=True, help="trained style encoder checkpoint")

    return train_main(
        argv, BlendGANConfig,
        lambda cfg, dist, out, a: BlendGANTrainer.from_paths(cfg, dist, out, a.face, a.style,
                                                             a.style_encoder),
        __doc__.split("\n\n")[0], add)


if __name__ == "__main__":
    main(sys.argv[1:])
