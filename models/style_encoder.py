"""Style encoder E_style (method 3.1) and the Gram-concatenation baseline (supplement D).

Image in [-1, 1] -> average-pooled to ``pool_size`` -> frozen VGG-19 -> Gram matrices of
relu1_2..relu5_4, flattened and concatenated (610,304 values at full width) -> 4 equalized-lr
linear layers -> z_s. The projection head is used only by the contrastive loss.
The released reference feeds [-1, 1] straight into VGG; ``imagenet_normalize=True`` maps to
[0, 1] and applies ImageNet mean/std instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualLinear
from .vgg import STYLE_LAYERS, VGG19Features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W) per sample: (N, C, H, W) -> (N, C, C)."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class GramEmbedding(nn.Module):
    """The 610,304-d Gram concatenation; the ablation baseline and the encoder's front end."""

    def __init__(
        self,
        vgg_width: float = 1.0,            # VGG channel multiplier (1.0 = the real VGG-19)
        pool_size: int | None = 256,       # adaptive average pool to this size; None: as given
        imagenet_normalize: bool = False,  # False = released reference behaviour
    ):
        super().__init__()
        self.init_kwargs = dict(vgg_width=vgg_width, pool_size=pool_size,
                                imagenet_normalize=imagenet_normalize)
        self.pool_size = pool_size
        self.imagenet_normalize = imagenet_normalize
        self.vgg = VGG19Features(vgg_width)
        self.vgg.requires_grad_(False)  # frozen (method 3.1): only the MLPs ever learn

    @property
    def dim(self) -> int:
        return sum(c * c for c in self.vgg.tap_channels(STYLE_LAYERS))

    def load_vgg(self, path, map_location="cpu"):
        self.vgg.load_torchvision(path, map_location)
        return self

    def forward(self, image):
        if self.pool_size:
            image = F.adaptive_avg_pool2d(image, (self.pool_size, self.pool_size))
        if self.imagenet_normalize:
            # Made per call, not buffers: everything a checkpoint rebuilds lives in the state dict.
            mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
            image = ((image + 1) / 2 - mean) / std
        grams = [gram_matrix(f).flatten(1) for f in self.vgg(image, STYLE_LAYERS)]
        return torch.cat(grams, dim=1)


class StyleEncoder(nn.Module):
    def __init__(
        self,
        style_dim: int = 512,              # width of z_s
        n_mlp: int = 4,                    # linear layers of the embedding MLP
        vgg_width: float = 1.0,
        pool_size: int | None = 256,
        imagenet_normalize: bool = False,
        projection_head: bool = True,      # contrastive-training head (3 x lrelu + linear)
        n_proj: int = 4,
    ):
        super().__init__()
        self.init_kwargs = dict(style_dim=style_dim, n_mlp=n_mlp, vgg_width=vgg_width,
                                pool_size=pool_size, imagenet_normalize=imagenet_normalize,
                                projection_head=projection_head, n_proj=n_proj)
        self.style_dim = style_dim
        self.gram = GramEmbedding(vgg_width, pool_size, imagenet_normalize)
        dims = [self.gram.dim] + [style_dim] * n_mlp
        self.mlp = nn.Sequential(*[
            EqualLinear(dims[i], dims[i + 1], activation="fused_lrelu" if i < n_mlp - 1 else None)
            for i in range(n_mlp)])
        self.projector = None
        if projection_head:
            self.projector = nn.Sequential(*[
                EqualLinear(style_dim, style_dim,
                            activation="fused_lrelu" if i < n_proj - 1 else None)
                for i in range(n_proj)])
        # Statistics of z_s over the training set, for sampling in-distribution styles (method 4.1).
        self.register_buffer("style_mean", torch.zeros(style_dim))
        self.register_buffer("style_cov", torch.eye(style_dim))

    def trainable_parameters(self):
        """The MLPs only; VGG stays frozen."""
        params = list(self.mlp.parameters())
        if self.projector is not None:
            params += list(self.projector.parameters())
        return params

    def load_vgg(self, path, map_location="cpu"):
        self.gram.load_vgg(path, map_location)
        return self

    def forward(self, image):
        """Images (N, 3, H, W) in [-1, 1] -> z_s (N, style_dim)."""
        return self.mlp(self.gram(image))

    def project(self, z_style):
        if self.projector is None:
            raise RuntimeError("built without a projection head")
        return self.projector(z_style)

    @torch.no_grad()
    def set_style_stats(self, z_styles: torch.Tensor):
        """Store mean and covariance of a set of codes (M, style_dim)."""
        self.style_mean.copy_(z_styles.mean(0))
        self.style_cov.copy_(torch.cov(z_styles.T).reshape_as(self.style_cov))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """n style codes from N(style_mean, style_cov) (N(0, I) until stats are set)."""
        return self.from_normal(torch.randn(n, self.style_dim, generator=generator))

    @torch.no_grad()
    def normal_factor(self) -> torch.Tensor:
        """L with L L^T = style_cov (+ a small jitter), for ``from_normal``."""
        jitter = 1e-5 * torch.eye(self.style_dim, device=self.style_cov.device, dtype=torch.float64)
        return torch.linalg.cholesky(self.style_cov.double() + jitter).float()

    @torch.no_grad()
    def from_normal(self, eps: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
        """Map standard normal draws (N, style_dim) to N(style_mean, style_cov): mean + L eps.
        Pass ``normal_factor()`` once computed when calling this in a loop: the factorisation
        checks its result on the host (a GPU sync)."""
        chol = self.normal_factor() if factor is None else factor
        if eps.device != self.style_mean.device:  # (a training loop passes them on the device)
            eps = eps.to(self.style_mean.device)
        return self.style_mean + eps @ chol.T
