"""BlendGAN generator (method 3.2): StyleGAN2 synthesis driven by a blend of face and style codes.

Face mapping ``style.*`` (z_f -> w_f, one w per layer, or W+ given directly), style mapping
``embedding.*`` (z_s -> w_s, broadcast to every layer), weighted blending module ``add_weight``
(alpha, shape (1, n_latent, 1)):

    w_l = alpha_l * w_f,l + (1 - alpha_l) * w_s   for l >= L(i)
    w_l = w_f,l                                   for l <  L(i)

The indicator i is given in the paper's units 0..18. At other resolutions it is scaled to the
number of w-vectors n by ``L(i) = floor(i * n / 18)``: identity at 1024 (n = 18), L(18) = n
(natural face) everywhere, and every i < 18 still stylises at least the last layer.

Ablation (supplement D): ``style_embedding="gram"`` makes z_s the raw Gram concatenation of the
frozen VGG (``embedder`` is then a ``GramEmbedding``, no learned MLP) and widens the first layer
of the style mapping to its dimension (``style_input_dim``; w stays ``style_dim``). Such a
generator is reference-guided only: a Gaussian draw is no Gram vector.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import EqualLinear
from .stylegan2 import Generator, mapping_network

PAPER_N_LATENT = 18
STYLE_EMBEDDINGS = ("encoder", "gram")
LATENT_STYLES = ("normal", "fitted")
INDICATOR_RULE = "L(i) = floor(i * n_latent / 18)"


def indicator_to_layer(indicator, n_latent: int):
    """Paper indicator (0..18, int or integer tensor) -> first blended layer index L(i).
    Integers are range-checked here; tensors by ``check_indicator`` (it reads them back)."""
    if torch.is_tensor(indicator):
        return torch.div(indicator * n_latent, PAPER_N_LATENT, rounding_mode="floor")
    if not 0 <= int(indicator) <= PAPER_N_LATENT:
        raise ValueError(f"indicator must lie in 0..18, got {indicator}")
    return int(indicator) * n_latent // PAPER_N_LATENT


def check_indicator(indicator):
    """Raise unless every indicator lies in 0..18. For a tensor this reads values back to the
    host (a GPU sync and a torch.compile graph break), so ``BlendGenerator`` calls it only
    outside training mode: the trainer draws its indicators in range by construction."""
    if torch.is_tensor(indicator):
        bad = (indicator < 0) | (indicator > PAPER_N_LATENT)
        if bad.any():
            raise ValueError(f"indicator must lie in 0..18, got {indicator[bad].tolist()}")
    else:
        indicator_to_layer(indicator, PAPER_N_LATENT)


class BlendGenerator(Generator):
    stored_truncation: float | None = None  # psi a checkpoint asks for (load_generator sets it)
    latent_avg_source: str | None = None    # "checkpoint" | "estimated" | None (load_generator)

    def __init__(
        self,
        size: int,                    # output resolution (power of two)
        style_dim: int = 512,
        n_mlp: int = 8,               # layers of each mapping network
        channel_multiplier: int = 2,
        blur_kernel=(1, 3, 3, 1),
        lr_mlp: float = 0.01,
        channel_base: int = 16384,
        channel_max: int = 512,
        style_encoder: dict | None = None,  # kwargs of the embedded ``embedder`` (see below)
        style_embedding: str = "encoder",   # encoder: z_s = E_style(image); gram: the Gram vector
        style_input_dim: int | None = None, # width of z_s (None: style_dim; gram: the Gram dim)
        latent_style: str = "normal",       # latent-guided z_s: N(0, I), or fitted: N(mean, cov)
                                            # of the embedded encoder's training codes
    ):
        super().__init__(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp,
                         channel_base, channel_max)
        if latent_style not in LATENT_STYLES:
            raise ValueError(f"latent_style must be one of {LATENT_STYLES}")
        if style_embedding not in STYLE_EMBEDDINGS:
            raise ValueError(f"style_embedding must be one of {STYLE_EMBEDDINGS}")
        embedder = None
        if style_encoder and style_embedding == "gram":
            from .style_encoder import GramEmbedding
            embedder = GramEmbedding(**style_encoder)
            style_input_dim = style_input_dim or embedder.dim
            if style_input_dim != embedder.dim:
                raise ValueError(f"style_input_dim {style_input_dim} != Gram dim {embedder.dim}")
        elif style_encoder:
            from .style_encoder import StyleEncoder
            embedder = StyleEncoder(**style_encoder)
        self.style_embedding = style_embedding
        self.latent_style = latent_style
        self.style_input_dim = int(style_input_dim or style_dim)
        self.init_kwargs.update(style_encoder=dict(style_encoder) if style_encoder else None,
                                style_embedding=style_embedding,
                                style_input_dim=self.style_input_dim, latent_style=latent_style)
        self.embedding = mapping_network(style_dim, n_mlp, lr_mlp)
        if self.style_input_dim != style_dim:
            # Same keys (embedding.1..n), only the first layer is wider: 610,304 x 512 at paper
            # width, as large as the learned encoder's first layer (method 3.3b).
            self.embedding[1] = EqualLinear(self.style_input_dim, style_dim, lr_mul=lr_mlp,
                                            activation="fused_lrelu")
        self.add_weight = nn.Parameter(torch.ones(1, self.n_latent, 1))
        # Mean w of the face mapping: the truncation centre (rosinality keeps it beside g_ema).
        self.register_buffer("latent_avg", torch.zeros(1, style_dim))
        self.embedder = embedder  # registered last: parameter order as before (optimiser states)

    # ----------------------------------------------------------------------------- helpers
    def face_state_keys(self) -> list[str]:
        """State-dict keys of the plain StyleGAN2 generator inside (rosinality ``g_ema``)."""
        skip = ("embedding.", "embedder.")
        return [k for k in self.state_dict()
                if not k.startswith(skip) and k not in ("add_weight", "latent_avg")]

    def load_face_state_dict(self, state_dict: dict, latent_avg=None):
        """Load a rosinality StyleGAN2 ``g_ema`` into the face branch, strictly: any missing or
        unexpected key is an error. The style mapping starts as a copy of the face mapping and
        alpha as ones (method 4.2)."""
        want, have = set(self.face_state_keys()), set(state_dict)
        if want != have:
            raise KeyError(f"not a matching StyleGAN2 generator: missing {sorted(want - have)[:5]}, "
                           f"unexpected {sorted(have - want)[:5]}")
        full = self.state_dict()
        full.update(state_dict)
        for k, v in state_dict.items():
            # A wider (Gram-input) first layer keeps its random init: it has no counterpart.
            name = "embedding." + k[len("style."):]
            if k.startswith("style.") and full[name].shape == v.shape:
                full[name] = v.clone()
        full["add_weight"] = torch.ones_like(self.add_weight)
        if latent_avg is not None:
            full["latent_avg"] = latent_avg.reshape(1, -1)
        self.load_state_dict(full, strict=True)
        if latent_avg is None:
            self.update_latent_avg()

    @torch.no_grad()
    def copy_face_mapping_to_style(self):
        """Style mapping := face mapping (method 4.2), every layer whose shape matches."""
        own = self.embedding.state_dict()
        own.update({k: v.clone() for k, v in self.style.state_dict().items()
                    if own[k].shape == v.shape})
        self.embedding.load_state_dict(own)

    @torch.no_grad()
    def update_latent_avg(self, n: int = 4096, seed: int = 0):
        """Recompute the truncation centre (deterministic: fixed seed)."""
        self.latent_avg.copy_(self.mean_latent(n, seed=seed))

    @torch.no_grad()
    def clamp_alpha_(self):
        """Keep alpha in [0, 1]; call after every optimiser step (method 3.2)."""
        self.add_weight.clamp_(0.0, 1.0)

    @torch.no_grad()
    def style_code(self, style_image):
        """z_s of images in [-1, 1] through the frozen embedded style encoder (or Gram vector)."""
        if self.embedder is None:
            raise RuntimeError("this generator has no embedded style encoder; pass z_style")
        return self.embedder(style_image)

    @torch.no_grad()
    def latent_style_codes(self, eps: torch.Tensor) -> torch.Tensor:
        """Latent-guided z_s from standard normal draws, as this generator was trained on them:
        eps itself, or (latent_style: fitted) mapped to the embedded encoder's code Gaussian."""
        if self.latent_style == "normal":
            return eps
        if self.embedder is None:
            raise RuntimeError("latent_style fitted needs the embedded style encoder's statistics")
        return self.embedder.from_normal(eps)

    def check_style_code(self, z_style):
        if z_style.shape[-1] != self.style_input_dim:
            hint = (" (a Gram-embedding generator: reference-guided only, z_s = its embedder's "
                    "Gram vector of a reference image)" if self.style_embedding == "gram" else "")
            raise ValueError(f"z_style has width {z_style.shape[-1]}, this generator takes "
                             f"{self.style_input_dim}{hint}")

    def blend(self, w_face, w_style, indicator):
        """Weighted blending module. w_face (N, n_latent, D), w_style (N, D) -> (N, n_latent, D)."""
        n = w_face.shape[0]
        alpha = self.add_weight.clamp(0.0, 1.0).expand(n, -1, -1)
        start = indicator_to_layer(indicator, self.n_latent)
        start = torch.as_tensor(start, device=w_face.device).reshape(-1, 1)
        layer = torch.arange(self.n_latent, device=w_face.device).unsqueeze(0)
        face_only = (layer < start).unsqueeze(-1)  # (N or 1, n_latent, 1)
        # torch.where, not masking in place: the remaining alphas keep their gradients.
        alpha = torch.where(face_only, torch.ones_like(alpha), alpha)
        return alpha * w_face + (1 - alpha) * w_style.unsqueeze(1)

    # ----------------------------------------------------------------------------- forward
    def forward(
        self,
        z_face=None,               # (N, D) Gaussian, or a list of two for style mixing
        z_style=None,              # (N, D) style code z_s; None: natural face
        *,
        w_face=None,               # instead of z_face: w (N, D) or W+ (N, n_latent, D), e.g. pSp
        style_image=None,          # instead of z_style: images in [-1, 1] through ``embedder``
        indicator=PAPER_N_LATENT,  # paper units 0..18, int or (N,) integer tensor
        truncation: float = 1.0,   # psi, applied to the face code only
        truncation_latent=None,    # default: self.latent_avg
        inject_index=None,         # mixing switch layer (random if None and two z_face)
        noise=None,
        randomize_noise: bool = True,
        return_latents: bool = False,
    ):
        if (z_face is None) == (w_face is None):
            raise ValueError("give exactly one of z_face and w_face")
        if w_face is not None:
            styles = [w_face]
        else:
            styles = [z_face] if torch.is_tensor(z_face) else list(z_face)
            styles = [self.style(z) for z in styles]
        if truncation < 1:
            centre = self.latent_avg if truncation_latent is None else truncation_latent
            styles = [centre + truncation * (s - centre) for s in styles]
        latent = self.mix_latents(styles, inject_index)

        if z_style is None and style_image is not None:
            z_style = self.style_code(style_image)
        if z_style is not None:
            self.check_style_code(z_style)
            if not self.training:
                check_indicator(indicator)
            latent = self.blend(latent, self.embedding(z_style), indicator)

        image = self.synthesis(latent, noise, randomize_noise)
        return (image, latent) if return_latents else image

    @torch.no_grad()
    def generate(self, z_face, z_style=None, indicator: int = PAPER_N_LATENT,
                 truncation: float = 1.0):
        """method 7.6: constant noise, output (N, 3, R, R) clamped to [-1, 1]."""
        if truncation < 1 and not self.latent_avg.any():
            self.update_latent_avg()  # never set (fresh model): compute it once
        image = self(z_face, z_style, indicator=indicator, truncation=truncation,
                     randomize_noise=False)
        return image.clamp(-1, 1)
