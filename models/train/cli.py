"""The command line shared by the trainers: config loading, processes, output folder, run."""

from __future__ import annotations

import argparse
import platform
import sys
import warnings
from pathlib import Path

import torch
import yaml

from .config import add_config_args, load_config, to_dict
from .distributed import init_distributed, main_wrapper
from .loop import run
from .snapshots import ResumeError


def train_main(argv, cfg_cls, build_trainer, description: str, add_args=None):
    """Parse ``argv``, build the trainer with ``build_trainer(cfg, dist, out, args)``, train.
    Returns the final checkpoint path on rank 0 (None elsewhere or when stopped early)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_args(parser)
    if add_args:
        add_args(parser)
    args = parser.parse_args(argv)

    def go():
        cfg = load_config(cfg_cls, args.config, args.config_json, args.set)
        configure_threads(cfg.loop.threads)
        dist = init_distributed(cfg.loop.device)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        resolved = to_dict(cfg)
        if dist.main:
            (out / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
            print(f"{cfg_cls.__name__}: {dist.world} process(es) on {dist.device}, "
                  f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{platform.processor() or platform.machine()}", flush=True)
        trainer = build_trainer(cfg, dist, out, args)
        final = Path(args.final) if args.final else out / "final.pt"
        return run(trainer, resolved, final, args.stop_after_images, not args.no_resume)

    try:
        return main_wrapper(go)
    except (ResumeError, OSError, ValueError) as exc:  # a bad setting or input: say which, briefly
        if args.debug:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def configure_threads(threads: int):
    if threads > 0:
        torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
