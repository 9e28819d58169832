"""Tiny checkpoints and datasets for the evaluation tests (no conftest: imported directly)."""

from __future__ import annotations

from pathlib import Path

import torch

from models.blendgan import BlendGenerator
from models.checkpoint import save_checkpoint
from models.psp import PSPEncoder
from models.style_encoder import StyleEncoder

from train_helpers import make_lmdb, write_truth  # noqa: F401  (re-exported)

DIM = 16


def tiny_models(seed: int = 0):
    torch.manual_seed(seed)
    enc = StyleEncoder(style_dim=DIM, n_mlp=2, vgg_width=0.0625, pool_size=16).eval()
    g = BlendGenerator(16, style_dim=DIM, n_mlp=2, channel_base=64, channel_max=16,
                       style_encoder=enc.init_kwargs)
    g.embedder.load_state_dict(enc.state_dict())
    g.add_weight.data.fill_(0.5)  # fresh alpha = 1 would ignore the style entirely
    g.update_latent_avg(256)
    psp = PSPEncoder(n_styles=g.n_latent, style_dim=DIM, widths=(8, 8, 16, 16),
                     units=(1, 1, 1, 1), input_size=16)
    psp.set_latent_avg(g.latent_avg)
    return g.eval(), enc, psp.eval()


def tiny_checkpoints(root: Path, seed: int = 0) -> dict:
    """{blendgan, style_encoder, psp, finetune} checkpoint paths of tiny random networks."""
    g, enc, psp = tiny_models(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = {k: root / f"{k}.pt" for k in ("blendgan", "style_encoder", "psp", "finetune")}
    save_checkpoint(paths["blendgan"], {"g_ema": g})
    save_checkpoint(paths["finetune"], {"g_ema": g})
    save_checkpoint(paths["style_encoder"], {"style_encoder": enc})
    save_checkpoint(paths["psp"], {"psp": psp})
    return {k: str(v) for k, v in paths.items()}


def tiny_gram_checkpoint(root: Path, seed: int = 1) -> str:
    """A tiny Gram-embedding BlendGAN (the supplement-D ablation generator), same widths."""
    g, enc, _ = tiny_models(seed)
    gram = BlendGenerator(16, style_dim=DIM, n_mlp=2, channel_base=64, channel_max=16,
                          style_encoder=enc.gram.init_kwargs, style_embedding="gram")
    sd = {k: v for k, v in g.state_dict().items() if not k.startswith(("embedder.", "embedding.1."))}
    sd.update({f"embedder.{k}": v for k, v in enc.gram.state_dict().items()})
    missing, _ = gram.load_state_dict(sd, strict=False)
    assert all(k.startswith("embedding.1.") for k in missing), missing
    root.mkdir(parents=True, exist_ok=True)
    path = root / "blendgan_gram.pt"
    save_checkpoint(path, {"g_ema": gram.eval()})
    return str(path)


def random_lpips(path: Path) -> Path:
    """An LPIPS file with random features and non-negative random linear layers (as LPIPS'
    own: weights of squared feature differences), so distances are positive."""
    from models.lpips import LPIPS
    torch.manual_seed(0)
    net = LPIPS()
    for k in range(5):
        getattr(net, f"lin{k}").model[1].weight.data.uniform_(0, 1)
    torch.save(net.state_dict(), path)
    return path
