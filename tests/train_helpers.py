"""Tiny datasets and configs shared by the training tests (no conftest: imported directly)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from workflow.synthetic_data import make_lmdb


def write_truth(path: Path, style_truth: dict):
    path.write_text(json.dumps({"datasets": {"style": style_truth, "face": {}}}))
    return path


def write_yaml(path: Path, obj: dict) -> Path:
    path.write_text(yaml.safe_dump(obj))
    return path


def loop(**kw):
    base = dict(batch=4, total_images=16, log_every=8, sample_every=0, snapshot_every=8,
                eval_every=0, threads=1, tensorboard=False)
    base.update(kw)
    return base


def encoder_cfg(**kw):
    cfg = dict(resolution=16, pool_size=16, style_dim=16, vgg_width=0.0625, holdout=4,
               whiten=True, loop=loop())  # the demo's whitening (the paper default: none)
    cfg.update(kw)
    return cfg


def tiny_style_and_face(root: Path):
    """(style LMDB, its truth records, face LMDB) at 16 px: the trainer tests' datasets."""
    style, truth = make_lmdb(root / "style", n=24, size=16, seed=0)
    face, _ = make_lmdb(root / "face", n=16, size=16, seed=1, styles=1)
    return style, truth, face


def blendgan_cfg(**kw):
    cfg = dict(resolution=16, style_dim=16, n_mlp=2, channel_base=64, channel_max=16,
               eval_images=8, sample_faces=2, loop=loop())
    cfg.update(kw)
    return cfg


def psp_cfg(**kw):
    cfg = dict(input_size=16, loss_size=16, widths=[8, 8, 16, 16], units=[1, 1, 1, 1],
               holdout=4, eval_images=4, loop=loop(eval_every=8))
    cfg.update(kw)
    return cfg


def torchrun_two(module: str, args: list, timeout: int = 240):
    """Run `python -m module args` as two gloo processes on loopback; returns the finished process."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={port}", "-m", module, *args]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
