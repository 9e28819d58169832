"""The training loop (StyleGAN3-style, in plain PyTorch): ``run`` trains a trainer to its end.

Around the iterations (``step.StepRunner``) the loop keeps counters in images seen, a stats log
(+ TensorBoard when installed), sample grids, atomic snapshots and resume from the newest valid
one, a progress bar, and evaluations; gradient accumulation and data parallelism across
processes started by ``torchrun`` happen inside the step. A resumed run continues exactly
where an uninterrupted one would be (``seeding``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .distributed import all_reduce_mean_
from .snapshots import (check_resumable, latest_valid_snapshot, set_aside_snapshots,
                        step_settings, write_snapshot)
from .stats import StatsLog, save_image_grid
from .step import StepRunner
from .trainer import Trainer


# What a config sets in an optimiser's groups. load_state_dict restores the snapshot's values,
# which would silently undo an lr or betas changed before a resume.
HYPERPARAMETERS = ("lr", "betas")


def keep_configured(opt, configured: list[dict]) -> list[str]:
    """Put the configured hyperparameters back after a snapshot's state was loaded; returns
    what differed ("lr 0.002 -> 0.001")."""
    changes = []
    for i, (group, want) in enumerate(zip(opt.param_groups, configured)):
        for key, value in want.items():
            as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v
            if as_tuple(group[key]) != as_tuple(value):
                changes.append(f"group {i} {key} {group[key]} -> {value}")
                group[key] = value
    return changes


def _crossed(prev: int, now: int, every: int) -> bool:
    return every > 0 and prev // every != now // every


def run(trainer: Trainer, config: dict, final_path, stop_after_images: int | None = None,
        resume: bool = True) -> Path | None:
    """Train to ``loop.total_images``; returns the final checkpoint path (rank 0), or None when
    stopped early by ``stop_after_images``."""
    cfg, dist, out = trainer.loop, trainer.dist, trainer.out
    if cfg.batch % (dist.world * cfg.accum):
        raise ValueError(f"loop.batch={cfg.batch} must be divisible by processes ({dist.world}) "
                         f"x accum ({cfg.accum})")
    snap_dir = out / "snapshots"
    step = 0
    if not resume and dist.main:
        aside = set_aside_snapshots(snap_dir)
        if aside:
            trainer.log(f"restarting: previous snapshots moved to {aside}")
    dist.barrier()
    if resume:
        found = latest_valid_snapshot(snap_dir, log=trainer.log)
        if found:
            path, payload = found
            check_resumable(path, payload, cfg, trainer.models)
            for name, entry in payload["models"].items():
                trainer.models[name].load_state_dict(entry["state_dict"], strict=True)
            for name, opt in trainer.optimizers.items():
                configured = [{k: g[k] for k in HYPERPARAMETERS if k in g} for g in opt.param_groups]
                opt.load_state_dict(payload["extra"]["optimizers"][name])
                for change in keep_configured(opt, configured):
                    trainer.log(f"optimizer {name}: {change} (the config's value; the "
                                f"snapshot's moments are kept)")
            trainer.load_extra_state(payload["extra"].get("trainer", {}))
            step = int(payload["extra"]["step"])
            trainer.log(f"resumed from {path} at {step * cfg.batch} images")
    total_steps = math.ceil(cfg.total_images / cfg.batch)
    images = step * cfg.batch
    stats = StatsLog(out, images, cfg.tensorboard, dist.main)

    def snapshot():
        if dist.main:
            extra = {"step": step, "images": images, "settings": step_settings(cfg, trainer.models),
                     "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
                     "trainer": trainer.extra_state()}
            p = write_snapshot(snap_dir, images, trainer.models, config, extra, cfg.keep_snapshots)
            trainer.log(f"snapshot {p}")
        dist.barrier()

    def evaluate():
        if dist.main:
            rec = trainer.evaluate()
            if rec:
                stats.write({"images": images, "step": step, "kimg": images / 1000,
                             **{f"eval/{k}": v for k, v in rec.items()}})
                trainer.log(f"[eval {images} img] " + " ".join(f"{k}={v:.4g}" for k, v in rec.items()))

    def sample():
        if dist.main:
            grid = trainer.sample()
            if grid is not None:
                save_image_grid(grid[0], out / "samples" / f"{images:012d}.png", grid[1])

    if step == 0:
        evaluate()
        sample()
    runner = StepRunner(trainer)
    t0, last_t, last_step = time.time(), time.time(), step
    bar = tqdm(total=total_steps, initial=step, desc=trainer.name, unit="it",
               disable=None if dist.main else True, file=sys.stdout)
    while step < total_steps:
        runner.step(step)
        prev, step = images, step + 1
        images = step * cfg.batch
        bar.update(1)
        if _crossed(prev, images, cfg.log_every) or step == total_steps:
            keys, vals = runner.pop_stats()
            all_reduce_mean_([vals], dist)
            now = time.time()
            iters = max(step - last_step, 1)
            # sec_data_per_iter near sec_per_iter: the loader starves the device (more workers)
            rec = {"images": images, "step": step, "kimg": images / 1000,
                   "sec": round(now - t0, 3), "sec_per_iter": round((now - last_t) / iters, 4),
                   "sec_data_per_iter": round(runner.data_seconds / iters, 4),
                   **dict(zip(keys, vals.tolist()))}  # the loop's one host sync
            runner.data_seconds = 0.0
            last_t, last_step = now, step
            stats.write(rec)
            bar.set_postfix({k.split("/")[-1]: f"{rec[k]:.3f}" for k in keys[:4]})
            if not sys.stdout.isatty():
                trainer.log(f"[{images} img] " + " ".join(f"{k}={rec[k]:.4f}" for k in keys))
        if _crossed(prev, images, cfg.sample_every):
            sample()
        if _crossed(prev, images, cfg.eval_every) and step < total_steps:
            evaluate()
        if stop_after_images is not None and images >= stop_after_images and step < total_steps:
            snapshot()
            bar.close()
            stats.close()
            trainer.log(f"stopped at {images} images (--stop-after-images)")
            return None
        if _crossed(prev, images, cfg.snapshot_every) and step < total_steps:
            snapshot()
    bar.close()
    evaluate()
    sample()
    snapshot()
    final = None
    if dist.main:
        final = trainer.save_final(final_path, config, {"images": images, "step": step})
        trainer.log(f"final checkpoint {final} ({images} images, {time.time() - t0:.1f}s)")
    stats.close()
    trainer.close()
    dist.barrier()
    return final
