"""Checkpoints: this project's format, rosinality StyleGAN2 and the released BlendGAN.

Project format (one file, ``torch.save``; always read with ``weights_only=True``)::

    {"format": "blendgan-repro", "version": 1,
     "models": {name: {"class": "BlendGenerator", "kwargs": {...}, "state_dict": {...}}},
     "config": {...resolved config...}, "extra": {...optimiser states, counters...}}

Models are rebuilt from class name + constructor kwargs alone (on the meta device, then the
weights are loaded, so nothing is initialised twice). ``load_generator`` (method 7.5) also accepts
a rosinality checkpoint (``g``, ``d``, ``g_ema``, ``latent_avg``) and a released BlendGAN
checkpoint (``g_ema`` with ``embedding.*``, ``add_weight``, ``embedder.*``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from torch import nn

from basics.files import atomic_output

from .blendgan import BlendGenerator
from .discriminators import StyleLatentDiscriminator
from .psp import PSPEncoder
from .style_encoder import GramEmbedding, StyleEncoder
from .stylegan2 import Discriminator, Generator, channel_table

FORMAT = "blendgan-repro"
VERSION = 1
MODEL_CLASSES = {cls.__name__: cls for cls in (
    Generator, Discriminator, BlendGenerator, StyleLatentDiscriminator, StyleEncoder,
    GramEmbedding, PSPEncoder)}
GENERATOR_NAMES = ("g_ema", "generator", "g")
RELEASED_SAMPLING_KEY = "blendgan_repro_sampling"
# Our StyleEncoder names -> released BlendGAN names, under the generator's "embedder." prefix.
RELEASED_ENCODER_MAP = (("gram.vgg.features.", "embedder.feature_extractor.vgg_layers."),
                        ("mlp.", "embedder_mlp."))


def _load(path, map_location):
    try:
        # rosinality's train.py stores its argparse.Namespace under "args": a plain attribute
        # bag, safe to rebuild, so it is the one class allowed beyond tensors and containers.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling refused, truncated file, not a torch file
        raise ValueError(f"{path}: cannot read as a weights-only torch checkpoint: {err}") from None


# ------------------------------------------------------------------------- project format
def model_entry(module: nn.Module) -> dict:
    if type(module).__name__ not in MODEL_CLASSES or not hasattr(module, "init_kwargs"):
        raise TypeError(f"{type(module).__name__} cannot be stored in a checkpoint")
    return {"class": type(module).__name__, "kwargs": dict(module.init_kwargs),
            "state_dict": module.state_dict()}


def build_model(entry: dict, map_location="cpu") -> nn.Module:
    """Rebuild a module from a checkpoint entry (class + kwargs + state dict), strictly."""
    cls = MODEL_CLASSES[entry["class"]]
    with torch.device("meta"):
        module = cls(**entry["kwargs"])
    module = module.to_empty(device=map_location)
    module.load_state_dict(entry["state_dict"], strict=True)
    return module


def save_checkpoint(path, models: dict[str, nn.Module], config: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write atomically (temporary file + rename) so a kill never leaves a half checkpoint."""
    payload = {"format": FORMAT, "version": VERSION,
               "models": {name: model_entry(m) for name, m in models.items()},
               "config": config or {}, "extra": extra or {}}
    return save_atomic(payload, path)


def save_atomic(payload: dict, path) -> Path:
    """``torch.save`` through a temporary file and a rename (every checkpoint writer)."""
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path, map_location="cpu", build: bool = True) -> dict:
    """Read a project checkpoint: {"models": {name: module or entry}, "config", "extra"}."""
    payload = _load(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint")
    models = payload["models"]
    if build:
        models = {name: build_model(e, map_location) for name, e in models.items()}
    return {"models": models, "config": payload.get("config", {}),
            "extra": payload.get("extra", {}), "version": payload.get("version")}


# ------------------------------------------------------------------ inferring architectures
def _fit_widths(widths: dict[int, int], size: int) -> dict:
    """channel_multiplier/base/max reproducing the observed per-resolution widths."""
    cmax = widths[4]
    base = widths[size] * size
    cm = 1
    if base % 16384 == 0:
        cm, base = base // 16384, 16384
    if channel_table(size, cm, base, cmax) != widths:
        raise ValueError(f"unsupported channel layout {widths}")
    return dict(channel_multiplier=cm, channel_base=base, channel_max=cmax)


def _blur_taps(kernel: torch.Tensor) -> list:
    taps = kernel.float().sum(1)
    taps = taps / taps.min()
    return [int(round(t)) for t in taps.tolist()]


def infer_generator_kwargs(sd: dict) -> dict:
    """Constructor kwargs of a rosinality-layout generator state dict."""
    n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
    style_dim = sd["style.1.weight"].shape[1]
    n_rgb = len([k for k in sd if re.fullmatch(r"to_rgbs\.\d+\.bias", k)])
    size = 2 ** (n_rgb + 2)
    widths = {4: sd["conv1.conv.weight"].shape[1]}
    for i in range(n_rgb):
        widths[2 ** (i + 3)] = sd[f"convs.{2 * i}.conv.weight"].shape[1]
    kwargs = dict(size=size, style_dim=style_dim, n_mlp=n_mlp, **_fit_widths(widths, size))
    if "to_rgbs.0.upsample.kernel" in sd:
        kwargs["blur_kernel"] = _blur_taps(sd["to_rgbs.0.upsample.kernel"])
    return kwargs


def infer_discriminator_kwargs(sd: dict) -> dict:
    n_res = len([k for k in sd if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", k)])
    size = 2 ** (n_res + 2)
    widths = {size: sd["convs.0.0.weight"].shape[0], 4: sd["final_conv.0.weight"].shape[0]}
    for j in range(1, n_res + 1):
        widths[size >> j] = sd[f"convs.{j}.conv2.1.weight"].shape[0]
    kwargs = dict(size=size, **_fit_widths(dict(sorted(widths.items())), size))
    if "convs.1.conv2.0.kernel" in sd:
        kwargs["blur_kernel"] = _blur_taps(sd["convs.1.conv2.0.kernel"])
    return kwargs


def infer_style_encoder_kwargs(sd: dict, prefix: str = "embedder.") -> dict:
    """StyleEncoder kwargs of a released BlendGAN ``embedder.*`` state dict."""
    vgg0 = sd[f"{prefix}embedder.feature_extractor.vgg_layers.0.weight"]
    n_mlp = len([k for k in sd if re.fullmatch(re.escape(prefix) + r"embedder_mlp\.\d+\.weight", k)])
    style_dim = sd[f"{prefix}embedder_mlp.0.weight"].shape[0]
    return dict(style_dim=style_dim, n_mlp=n_mlp, vgg_width=vgg0.shape[0] / 64, pool_size=256,
                imagenet_normalize=False, projection_head=False)


# -------------------------------------------------------------------- foreign formats
def _detect(payload) -> str:
    if isinstance(payload, dict):
        if payload.get("format") == FORMAT:
            return "project"
        g = payload.get("g_ema")
        if isinstance(g, dict):
            if "add_weight" in g or "embedding.1.weight" in g:
                return "released"
            if "style.1.weight" in g:
                return "rosinality"
    raise ValueError("unrecognised checkpoint: expected this project's format, a rosinality "
                     "StyleGAN2 checkpoint (g_ema, latent_avg) or a released BlendGAN one (g_ema)")


def blend_generator_from_stylegan2(sd: dict, latent_avg=None, map_location="cpu") -> BlendGenerator:
    """Face branch from a rosinality generator state dict (strict); style branch per method 4.2."""
    with torch.device("meta"):
        g = BlendGenerator(**infer_generator_kwargs(sd))
    g = g.to_empty(device=map_location)
    g.load_face_state_dict(sd, latent_avg=latent_avg)
    return g


def load_stylegan2(path, map_location="cpu") -> dict:
    """A rosinality checkpoint for training: {"g", "g_ema": BlendGenerator, "d": Discriminator,
    "latent_avg"}; every network loaded with no missing or unexpected key."""
    payload = _load(path, map_location)
    if _detect(payload) != "rosinality":
        raise ValueError(f"{path}: not a rosinality StyleGAN2 checkpoint")
    avg = payload.get("latent_avg")
    out = {"latent_avg": avg}
    for name in ("g", "g_ema"):
        if name in payload:
            out[name] = blend_generator_from_stylegan2(payload[name], avg, map_location)
    if "d" in payload:
        with torch.device("meta"):
            d = Discriminator(**infer_discriminator_kwargs(payload["d"]))
        d = d.to_empty(device=map_location)
        d.load_state_dict(payload["d"], strict=True)
        out["d"] = d
    return out


def to_released_state_dict(g: BlendGenerator) -> dict:
    """Rename to the released BlendGAN layout; drops what it does not have (latent_avg,
    projection head, style statistics)."""
    out = {}
    for k, v in g.state_dict().items():
        if k == "latent_avg":
            continue
        if k.startswith("embedder."):
            rest = k[len("embedder."):]
            for ours, theirs in RELEASED_ENCODER_MAP:
                if rest.startswith(ours):
                    out["embedder." + theirs + rest[len(ours):]] = v
                    break
            continue  # projector.*, style_mean, style_cov
        out[k] = v
    return out


def from_released_state_dict(sd: dict, map_location="cpu", latent_avg=None,
                             sampling: dict | None = None) -> BlendGenerator:
    """``sampling``: the ``RELEASED_SAMPLING_KEY`` record an export of this project adds (how
    latent-guided z_s were drawn in training); absent in the authors' files: N(0, I)."""
    sampling = sampling or {}
    kwargs = infer_generator_kwargs(sd)
    has_encoder = any(k.startswith("embedder.") for k in sd)
    if has_encoder:
        kwargs["style_encoder"] = infer_style_encoder_kwargs(sd)
        kwargs["latent_style"] = sampling.get("latent_style", "normal")
    with torch.device("meta"):
        g = BlendGenerator(**kwargs)
    g = g.to_empty(device=map_location)
    ours = {}
    for k, v in sd.items():
        if k.startswith("embedder."):
            rest = k[len("embedder."):]
            for mine, theirs in RELEASED_ENCODER_MAP:
                if rest.startswith(theirs):
                    ours["embedder." + mine + rest[len(theirs):]] = v
                    break
            else:
                ours[k] = v  # unknown: let the strict load report it
        else:
            ours[k] = v
    if has_encoder:
        ours["embedder.style_mean"] = sampling.get(
            "style_mean", torch.zeros_like(g.embedder.style_mean)).to(map_location)
        ours["embedder.style_cov"] = sampling.get(
            "style_cov", torch.eye(g.embedder.style_dim, device=map_location)).to(map_location)
    ours["latent_avg"] = (latent_avg.reshape(1, -1) if latent_avg is not None
                          else torch.zeros_like(g.latent_avg))
    g.load_state_dict(ours, strict=True)
    if latent_avg is None:
        g.update_latent_avg()
    return g


def released_sampling(g: BlendGenerator) -> dict:
    """What latent-guided sampling needs beyond the released weights: the draw rule and, for
    ``fitted``, the encoder's code statistics (the released layout has no place for them)."""
    out = {"latent_style": g.latent_style}
    if g.latent_style == "fitted" and g.embedder is not None:
        out.update(style_mean=g.embedder.style_mean.detach().cpu().clone(),
                   style_cov=g.embedder.style_cov.detach().cpu().clone())
    return out


def export_released(g: BlendGenerator, path, truncation: float | None = None,
                    trained_with: dict | None = None) -> Path:
    """Write ``{"g_ema": ..., "latent_avg": ...}`` loadable by the released BlendGAN code
    (which also expects the embedded style encoder: build ``g`` with ``style_encoder``), plus
    keys that code ignores: ``RELEASED_SAMPLING_KEY`` (latent-guided sampling, read back by
    ``load_generator``) and ``trained_with`` (the training behaviour, for the record).
    ``truncation`` is written only when given: the released scripts adopt a stored one."""
    payload = {"g_ema": to_released_state_dict(g), "latent_avg": g.latent_avg[0].clone(),
               RELEASED_SAMPLING_KEY: released_sampling(g)}
    if trained_with:
        payload["trained_with"] = dict(trained_with)
    if truncation is not None:
        payload["truncation"] = float(truncation)
    return save_atomic(payload, path)


# ------------------------------------------------------------------------- public loaders
def _pick_generator(names: list[str]) -> str:
    """Prefer the EMA generator, as rosinality's samplers do."""
    return next((n for n in GENERATOR_NAMES if n in names), names[0])


def load_generator(path, map_location="cpu") -> BlendGenerator:
    """method 7.5: a ready BlendGenerator (eval mode) from any of the three formats."""
    payload = _load(path, map_location)
    kind = _detect(payload)
    if kind == "rosinality":
        g = blend_generator_from_stylegan2(payload["g_ema"], payload.get("latent_avg"), map_location)
    elif kind == "released":
        g = from_released_state_dict(payload["g_ema"], map_location, payload.get("latent_avg"),
                                     payload.get(RELEASED_SAMPLING_KEY))
    else:
        entries = payload["models"]
        blend = [n for n, e in entries.items() if e["class"] == "BlendGenerator"]
        plain = [n for n, e in entries.items() if e["class"] == "Generator"]
        if blend:
            g = build_model(entries[_pick_generator(blend)], map_location)
        elif plain:
            g = blend_generator_from_stylegan2(entries[_pick_generator(plain)]["state_dict"],
                                               None, map_location)
        else:
            raise ValueError(f"{path}: no generator in this checkpoint")
    # Where the truncation centre came from: pSp and the released scripts read the stored one.
    if kind == "project":
        g.latent_avg_source = "checkpoint" if g.latent_avg.any() else None
    else:
        g.latent_avg_source = "checkpoint" if payload.get("latent_avg") is not None else "estimated"
    # The released scripts replace their default psi by a checkpoint's stored "truncation";
    # the user tools do the same when no --truncation is given (stored_truncation, else 0.75).
    stored = payload.get("truncation") if kind != "project" else payload.get("extra", {}).get("truncation")
    if torch.is_tensor(stored) and stored.numel() == 1:
        stored = stored.item()
    g.stored_truncation = float(stored) if isinstance(stored, (int, float)) else None
    return g.eval()


def load_style_encoder(path, map_location="cpu") -> StyleEncoder:
    """method 7.7: a StyleEncoder (eval mode) from a project checkpoint (a StyleEncoder entry,
    preferably named "style_encoder", or a generator's embedder) or a released BlendGAN one."""
    payload = _load(path, map_location)
    kind = _detect(payload)
    if kind == "project":
        entries = payload["models"]
        names = [n for n, e in entries.items() if e["class"] == "StyleEncoder"]
        if names:
            name = "style_encoder" if "style_encoder" in names else names[0]
            return build_model(entries[name], map_location).eval()
    if kind in ("project", "released"):
        g = load_generator(path, map_location)
        if g.embedder is not None:
            return g.embedder.eval()
    raise ValueError(f"{path}: no style encoder in this checkpoint")


def load_psp_encoder(path, map_location="cpu") -> PSPEncoder:
    """A PSPEncoder from a project checkpoint or a pixel2style2pixel checkpoint (IR-SE50)."""
    payload = _load(path, map_location)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        for entry in payload["models"].values():
            if entry["class"] == "PSPEncoder":
                return build_model(entry, map_location).eval()
        raise ValueError(f"{path}: no PSPEncoder in this checkpoint")
    sd = payload.get("state_dict", payload)
    n_styles = len([k for k in sd if re.fullmatch(r"encoder\.styles\.\d+\.linear\.weight", k)])
    enc = PSPEncoder(n_styles=n_styles or 18).to(map_location)
    return enc.load_psp(path, map_location).eval()


# ------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    """``python -m models.checkpoint export-released SRC --out DST``: any generator checkpoint
    this module reads, written in the released BlendGAN layout (with the sampling record)."""
    p = argparse.ArgumentParser(prog="python -m models.checkpoint", description=main.__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export-released", help="write a generator in the released layout")
    ex.add_argument("checkpoint", help="a BlendGAN checkpoint (ours, released or rosinality)")
    ex.add_argument("--out", required=True, help="the file to write")
    ex.add_argument("--truncation", type=float, default=None,
                    help="store this psi (the released scripts then use it instead of theirs)")
    a = p.parse_args(argv)
    try:
        g = load_generator(a.checkpoint)
        trained_with = None
        payload = _load(a.checkpoint, "cpu")
        if _detect(payload) == "project":
            trained_with = payload.get("extra", {}).get("trained_with")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    if g.embedder is None:
        raise SystemExit(f"error: {a.checkpoint}: no embedded style encoder; the released "
                         "layout needs one (train with models.train.blendgan)")
    export_released(g, a.out, a.truncation, trained_with)
    print(f"{a.out}: released layout, latent-guided draws {g.latent_style}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
