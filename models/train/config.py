"""Typed, frozen training configs that reject unknown keys.

Every trainer declares a frozen dataclass whose defaults are the paper's settings (method 4);
the demo scale is the same dataclass with a few keys overridden from config.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class LoopConfig:
    """Settings of the shared training loop (counts are in images seen, as in StyleGAN)."""
    batch: int = 8                       # global batch (all processes, all accumulation rounds)
    accum: int = 1                       # gradient-accumulation rounds per optimiser step
    total_images: int = 1_600_000        # stop after this many images
    log_every: int = 1_000               # images between stats lines
    sample_every: int = 10_000           # images between sample grids (0: only at the end)
    snapshot_every: int = 50_000         # images between snapshots (0: only at the end)
    eval_every: int = 0                  # images between evaluations (0: only at start and end)
    keep_snapshots: int = 3              # newest snapshots kept on disk
    seed: int = 0
    workers: int = 0                     # data-loader processes per rank
    device: str = "auto"                 # auto | cpu | cuda
    threads: int = 0                     # torch intra-op threads per rank (0: torch default)
    tensorboard: bool = True             # also write TensorBoard scalars when available
    # speed-ups (docs/performance.md); the defaults are the reference fp32 eager path
    precision: str = "fp32"              # fp32 | bf16 | fp16 autocast of the non-regulariser phases
    channels_last: bool = False          # models and image batches in channels_last layout
    compile: bool = False                # torch.compile the non-regulariser phases' losses
    compile_mode: str = "default"        # torch.compile mode: default | reduce-overhead (CUDA
                                         # graphs) | max-autotune | max-autotune-no-cudagraphs
    compile_backend: str = "inductor"    # inductor (Triton on GPU, C++ on CPU); aot_eager traces
                                         # and checks the graphs without code generation


def _coerce(tp, value, where: str):
    """Turn YAML values into the annotated type (nested dataclasses, tuples)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        inner = args[0] if args else object
        return tuple(_coerce(inner, v, where) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def from_dict(cls, data: dict | None, where: str = "config"):
    """Build ``cls`` from a mapping; unknown keys are an error naming the valid ones."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def load_config(cls, path: str | Path | None = None, text: str | None = None,
                overrides: list[str] | None = None):
    """Config from a YAML file and/or a JSON/YAML string, then ``key=value`` overrides
    (``loop.batch=16`` reaches into nested sections; values are parsed as YAML)."""
    data: dict = {}
    if path:
        data.update(yaml.safe_load(Path(path).read_text()) or {})
    if text:
        data.update(yaml.safe_load(text) or {})
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return from_dict(cls, data, cls.__name__)


def add_config_args(parser):
    parser.add_argument("--config", help="YAML file with this trainer's section")
    parser.add_argument("--config-json", help="the section as a JSON/YAML string")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key (repeatable), e.g. --set loop.batch=16")
    parser.add_argument("--out", required=True, help="output folder (snapshots, stats, samples)")
    parser.add_argument("--final", help="path of the final checkpoint (default OUT/final.pt)")
    parser.add_argument("--stop-after-images", type=int, default=None,
                        help="stop (after a snapshot) once this many images are seen, as if killed")
    parser.add_argument("--restart", "--no-resume", dest="no_resume", action="store_true",
                        help="start over instead of resuming (existing snapshots are moved to "
                             "OUT/snapshots.previous)")
    parser.add_argument("--debug", action="store_true",
                        help="full traceback of an expected failure instead of one line")
    return parser
