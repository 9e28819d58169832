"""The training-loop core shared by every trainer (StyleGAN3-style, in plain PyTorch).

One iteration runs the trainer's phases in order (typically G main, G reg, D main, D reg); a
regularisation phase runs every ``interval`` iterations (lazy regularisation: the trainer scales
the loss by ``interval`` and its optimiser's lr/betas by k/(k+1)). Around that the core keeps:
counters in images seen, EMA copies, a stats JSON-lines log (+ TensorBoard when installed),
sample grids, atomic snapshots with a SHA-256 sidecar (a corrupt or unverified snapshot is
skipped and the previous one used), resume from the newest valid snapshot, a progress bar,
gradient accumulation and data parallelism across processes started by ``torchrun``.

Determinism: every random draw of an iteration comes from a generator seeded by (seed, step),
drawn for the *global* batch and sliced per rank; gradients are averaged across ranks by an
explicit all-reduce. Hence two processes give the same update as one on the same global
batch, and a resumed run continues exactly where an uninterrupted one would be.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint

SNAPSHOT_PREFIX = "snapshot-"


# ------------------------------------------------------------------------------ processes
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def local(self, x, batch_dim: int = 0):
        """This rank's contiguous share of a tensor drawn for the global batch."""
        if self.world == 1:
            return x
        n = x.shape[batch_dim]
        if n % self.world:
            raise ValueError(f"global batch {n} is not divisible by {self.world} processes")
        b = n // self.world
        return x.narrow(batch_dim, self.rank * b, b)

    def barrier(self):
        if self.active:
            tdist.barrier()


def init_distributed(device: str = "auto") -> Dist:
    """Read torchrun's environment; gloo on CPU, NCCL on GPU. One process: no process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, local_rank, dev)


def all_reduce_mean_(tensors: list[torch.Tensor], dist: Dist):
    """Average tensors across ranks in place, as one flat buffer (one collective)."""
    if not dist.active or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    tdist.all_reduce(flat)
    flat /= dist.world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def gather_rows(x: torch.Tensor, dist: Dist) -> torch.Tensor:
    """All ranks' rows in rank order; only this rank's rows carry gradients. A loss on the
    gathered batch is then the global loss, and its gradient w.r.t. the parameters is
    1/world of the global gradient per rank: multiply the loss by ``dist.world`` so the
    gradient all-reduce (a mean) yields exactly the one-process gradient."""
    if not dist.active:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.world)]
    tdist.all_gather(parts, x.detach().contiguous())
    parts[dist.rank] = x
    return torch.cat(parts, dim=0)


# ------------------------------------------------------------------------------ randomness
def _mix(*parts: int) -> int:
    h = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def step_generator(seed: int, step: int, stream: str = "") -> torch.Generator:
    """A CPU generator for one iteration's global-batch draws (same on every rank)."""
    return torch.Generator().manual_seed(_mix(seed, step, stream))


def seed_step(seed: int, step: int, rank: int):
    """Seed the global RNGs per (iteration, rank), for draws made inside models."""
    s = _mix(seed, step, "global", rank)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % (2 ** 32))


# ------------------------------------------------------------------------------ EMA
@torch.no_grad()
def ema_update(ema: nn.Module, src: nn.Module, beta: float):
    """ema = beta * ema + (1 - beta) * src for parameters; buffers copied."""
    for pe, ps in zip(ema.parameters(), src.parameters()):
        pe.lerp_(ps.detach(), 1.0 - beta)
    for be, bs in zip(ema.buffers(), src.buffers()):
        be.copy_(bs)


def ema_beta(batch: int, half_life_images: float) -> float:
    return 0.5 ** (batch / max(half_life_images, 1e-8)) if half_life_images > 0 else 0.0


def lazy_adam(params, lr: float, betas, reg_every: int = 0) -> torch.optim.Adam:
    """Adam with StyleGAN2's lazy-regularisation correction c = k / (k + 1)."""
    c = reg_every / (reg_every + 1) if reg_every else 1.0
    params = list(params)
    if params and isinstance(params[0], dict):  # param groups may carry an "lr_mult"
        params = [{**{k: v for k, v in g.items() if k != "lr_mult"},
                   "lr": lr * c * g.get("lr_mult", 1.0)} for g in params]
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c))


# ------------------------------------------------------------------------------ snapshots
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, obj):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def write_snapshot(folder, images: int, models: dict, config: dict, extra: dict,
                   keep: int = 3) -> Path:
    """snapshot-<images>.pt (atomic) then its .sha256.json sidecar (atomic); prune old ones."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{SNAPSHOT_PREFIX}{images:012d}.pt"
    save_checkpoint(path, models, config=config, extra=extra)
    _write_json_atomic(path.with_suffix(".sha256.json"),
                       {"file": path.name, "sha256": _sha256(path), "images": images})
    snaps = sorted(folder.glob(f"{SNAPSHOT_PREFIX}*.pt"))
    for old in snaps[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256.json").unlink(missing_ok=True)
    return path


def verify_snapshot(path: Path) -> str | None:
    """None when the snapshot matches its checksum; otherwise the reason it cannot be used."""
    side = path.with_suffix(".sha256.json")
    if not side.exists():
        return "no checksum sidecar (write interrupted?)"
    try:
        want = json.loads(side.read_text())["sha256"]
    except (ValueError, KeyError) as err:
        return f"unreadable checksum sidecar: {err}"
    got = _sha256(path)
    return None if got == want else f"checksum mismatch (sha256 {got[:12]} != {want[:12]})"


def latest_valid_snapshot(folder, log=print) -> tuple[Path, dict] | None:
    """Newest snapshot that verifies and loads; corrupt ones are reported and skipped."""
    folder = Path(folder)
    for path in sorted(folder.glob(f"{SNAPSHOT_PREFIX}*.pt"), reverse=True):
        reason = verify_snapshot(path)
        if reason is None:
            try:
                return path, load_checkpoint(path, build=False)
            except ValueError as err:
                reason = str(err)
        log(f"WARNING: snapshot {path} is unusable: {reason}; trying the previous one")
    return None


class ResumeError(ValueError):
    """The newest snapshot was made with settings that change what a step means."""


def step_settings(loop, models: dict) -> dict:
    """What a snapshot must share with the run resuming it: images per step, accumulation
    rounds and every network's class and constructor arguments (JSON-normalised)."""
    return json.loads(json.dumps({
        "batch": loop.batch, "accum": loop.accum,
        "networks": {name: {"class": type(m).__name__, "kwargs": dict(getattr(m, "init_kwargs", {}))}
                     for name, m in models.items()},
    }))


def check_resumable(path: Path, payload: dict, loop, models: dict):
    """ResumeError (one line: the snapshot, what differs, what to do) unless ``payload`` was
    saved with the same step settings; a resumed run would otherwise count images wrongly."""
    now = step_settings(loop, models)
    saved = payload["extra"].get("settings")
    if saved is None:  # snapshots written before settings were stored
        saved_loop = payload.get("config", {}).get("loop", {})
        saved = {"batch": saved_loop.get("batch", now["batch"]),
                 "accum": saved_loop.get("accum", now["accum"]),
                 "networks": json.loads(json.dumps(
                     {n: {"class": e["class"], "kwargs": e["kwargs"]}
                      for n, e in payload["models"].items()}))}
    diffs = [f"loop.{k} {saved[k]} -> {now[k]}" for k in ("batch", "accum") if saved[k] != now[k]]
    for name in sorted(set(saved["networks"]) | set(now["networks"])):
        if saved["networks"].get(name) != now["networks"].get(name):
            diffs.append(f"network {name}")
    images = payload["extra"].get("images")
    if not diffs and images is not None and images != int(payload["extra"]["step"]) * loop.batch:
        diffs.append(f"images {images} != step x batch")
    if diffs:
        raise ResumeError(
            f"{path}: cannot resume: the snapshot's settings differ ({', '.join(diffs)}); "
            f"restore them, or pass --restart to start over (old snapshots are moved aside)")


def set_aside_snapshots(snap_dir: Path) -> Path | None:
    """--restart: move old snapshots out of the way (to ``snapshots.previous``, replacing an
    older set), so a later resume can never pick one of them up."""
    if not snap_dir.is_dir() or not any(snap_dir.glob(f"{SNAPSHOT_PREFIX}*.pt")):
        return None
    aside = snap_dir.with_name(snap_dir.name + ".previous")
    if aside.exists():
        import shutil
        shutil.rmtree(aside)
    os.replace(snap_dir, aside)
    return aside


# ------------------------------------------------------------------------------ logging
class StatsLog:
    """stats.jsonl (always) and TensorBoard scalars (when the tensorboard package exists)."""

    def __init__(self, folder, resume_images: int, tensorboard: bool, enabled: bool):
        self.enabled = enabled
        self.path = Path(folder) / "stats.jsonl"
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop lines a resumed run is about to redo
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("images", 0) <= resume_images]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(folder) / "tensorboard"))
            except Exception as err:  # the tensorboard package is optional
                print(f"note: TensorBoard scalars off ({err.__class__.__name__}: {err}); "
                      f"stats.jsonl is written regardless", flush=True)

    def write(self, record: dict):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("images", "step"):
                    self.tb.add_scalar(k, v, record["images"])
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_stats(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def save_image_grid(images: torch.Tensor, path, nrow: int):
    """(N, 3, H, W) in [-1, 1] -> one PNG, ``nrow`` images per row (no torchvision)."""
    from PIL import Image
    images = images.detach().float().cpu().clamp(-1, 1)
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + 2) + 2, nrow * (w + 2) + 2)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, 2 + r * (h + 2):2 + r * (h + 2) + h, 2 + col * (w + 2):2 + col * (w + 2) + w] = images[i]
    arr = ((grid + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ trainers
@dataclass
class Phase:
    name: str                                  # e.g. "G_main", "D_reg"
    params: list                               # parameters this phase updates
    optimizer: torch.optim.Optimizer
    loss: Callable                             # (micro_batch, step) -> (loss, {stat: tensor})
    interval: int = 1                          # run every `interval` iterations
    after_step: Callable | None = None         # e.g. clamp alpha
    double_backward: bool = False              # a regulariser differentiating a gradient (R1,
                                               # path length): never compiled, always fp32


class Trainer(abc.ABC):
    """Subclasses build networks/optimisers in __init__ and implement the hooks below."""

    name = "trainer"

    def __init__(self, cfg, dist: Dist, out: Path):
        self.cfg = cfg
        self.loop = cfg.loop
        self.dist = dist
        self.out = Path(out)
        self.device = dist.device
        self.models: dict[str, nn.Module] = {}       # everything a snapshot stores
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.ema_pairs: list[tuple[str, str]] = []    # (ema model name, source model name)
        self.ema_half_life: float = 0.0               # images

    # hooks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def phases(self) -> list[Phase]:
        """The optimisation phases of one iteration, in order (G main, G reg, D main, D reg)."""

    @abc.abstractmethod
    def get_batch(self, step: int):
        """This rank's share of iteration ``step``'s global batch (deterministic in step)."""

    def split(self, batch, n: int) -> list:
        """Micro-batches for gradient accumulation (dicts of tensors split on dim 0)."""
        if n == 1:
            return [batch]
        parts = {k: v.chunk(n) if torch.is_tensor(v) and v.ndim else [v] * n
                 for k, v in batch.items()}
        return [{k: parts[k][i] for k in batch} for i in range(n)]

    def sample(self) -> tuple[torch.Tensor, int] | None:
        return None

    def evaluate(self) -> dict:
        return {}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict):
        pass

    def final_checkpoint(self) -> tuple[dict, dict]:
        """(models, extra) of the final checkpoint."""
        return self.models, {}

    def save_final(self, path, config: dict, extra: dict) -> Path:
        """Write the final checkpoint (this project's format unless a trainer overrides it)."""
        models, own = self.final_checkpoint()
        return save_checkpoint(path, models, config=config, extra={**extra, **own})

    def close(self):
        pass

    # helpers -------------------------------------------------------------------------
    def log(self, msg: str):
        if self.dist.main:
            print(msg, flush=True)

# ------------------------------------------------------------------------------ one iteration
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy that does not block the host on CUDA (pinned, non_blocking; a plain
    ``.to(device)`` of a host tensor waits for the GPU queue to drain); nothing when ``x`` is
    already there. Same values either way. Every copy inside the training step goes here."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def channels_last_(obj):
    """4-D tensors (also inside dicts/lists) -> channels_last memory format (values unchanged)."""
    if torch.is_tensor(obj):
        return obj.contiguous(memory_format=torch.channels_last) if obj.ndim == 4 else obj
    if isinstance(obj, dict):
        return {k: channels_last_(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(channels_last_(v) for v in obj)
    return obj


@torch.no_grad()
def module_channels_last_(module: nn.Module) -> nn.Module:
    """4-D parameters and buffers -> channels_last, in place (same Parameter objects, so
    optimisers keep them). ``Module.to(memory_format=...)`` cannot be used: it refuses the
    5-D modulated-conv weights."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.ndim == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return module


class StepRunner:
    """One training iteration (all due phases, then EMA), shared by ``run`` and the benchmark.

    The speed-up options of ``loop`` apply here, all off by default (fp32, eager, contiguous):
    ``precision`` bf16/fp16 autocasts the forward of the phases that are not double-backward
    regularisers (fp16 adds a GradScaler per phase); ``channels_last`` converts every model
    and each batch's 4-D tensors; ``compile`` wraps those same phases' loss functions in
    ``torch.compile`` (the regularisers stay eager: no compile through double backward).
    Loss statistics accumulate on the device; the host reads them only in ``pop_stats``."""

    def __init__(self, trainer: Trainer):
        cfg = trainer.loop
        self.trainer, self.cfg = trainer, cfg
        if cfg.precision not in PRECISIONS:
            raise ValueError(f"loop.precision must be one of {sorted(PRECISIONS)}, "
                             f"got {cfg.precision!r}")
        self.dtype = PRECISIONS[cfg.precision]
        self.device_type = trainer.device.type
        self.phases = trainer.phases()
        self.trainable = [p for ph in self.phases for p in ph.params]
        self.beta = ema_beta(cfg.batch, trainer.ema_half_life)
        if cfg.channels_last:
            for m in trainer.models.values():
                module_channels_last_(m)
        self.fast = {ph.name: not ph.double_backward for ph in self.phases}
        self.losses = {ph.name: (self.compiled(ph.loss) if cfg.compile and self.fast[ph.name]
                                 else ph.loss) for ph in self.phases}
        self.scalers = {ph.name: torch.amp.GradScaler(self.device_type)
                        for ph in self.phases
                        if self.dtype is torch.float16 and self.fast[ph.name]}
        self.acc: dict[str, list] = {}
        self.data_seconds = 0.0  # host time spent getting batches (loader waits included)

    def compiled(self, fn):
        if self.cfg.compile_mode not in COMPILE_MODES:
            raise ValueError(f"loop.compile_mode must be one of {COMPILE_MODES}, "
                             f"got {self.cfg.compile_mode!r}")
        return torch.compile(fn, mode=self.cfg.compile_mode, backend=self.cfg.compile_backend)

    def batches(self, step: int) -> list:
        trainer = self.trainer
        batch = trainer.get_batch(step)
        # Seeded after the batch: a loader that starts a fresh iterator (the first step, or the
        # first after a resume) draws from the global RNG, which must not shift the draws made
        # inside the models.
        seed_step(self.cfg.seed, step, trainer.dist.rank)
        if self.cfg.channels_last:
            batch = channels_last_(batch)
        return trainer.split(batch, self.cfg.accum)

    def forward(self, ph: Phase, mb, step: int):
        amp = self.dtype is not None and self.fast[ph.name]
        with torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=amp):
            loss, st = self.losses[ph.name](mb, step)
        return loss.float(), st

    def step(self, step: int, micro: list | None = None):
        trainer = self.trainer
        if micro is None:
            t0 = time.perf_counter()
            micro = self.batches(step)
            self.data_seconds += time.perf_counter() - t0
        for ph in self.phases:
            if step % ph.interval:
                continue
            for p in self.trainable:
                p.requires_grad_(False)
            for p in ph.params:
                p.requires_grad_(True)
            ph.optimizer.zero_grad(set_to_none=True)
            scaler = self.scalers.get(ph.name)
            for mb in micro:
                loss, st = self.forward(ph, mb, step)
                loss = loss / len(micro)
                (scaler.scale(loss) if scaler else loss).backward()
                for k, v in st.items():
                    self.acc.setdefault(f"{ph.name}/{k}", []).append(v.detach().float().mean())
            grads = [p.grad for p in ph.params if p.grad is not None]
            all_reduce_mean_(grads, trainer.dist)
            if scaler:
                scaler.step(ph.optimizer)  # skips the step on inf/nan grads (one host sync)
                scaler.update()
            else:
                ph.optimizer.step()
            if ph.after_step:
                ph.after_step()
        for ema_name, src_name in trainer.ema_pairs:
            ema_update(trainer.models[ema_name], trainer.models[src_name], self.beta)

    def pop_stats(self) -> tuple[list[str], torch.Tensor]:
        """(names, device tensor of their means since the last call); resets the accumulator."""
        keys = sorted(self.acc)
        dev = self.trainer.device
        vals = (torch.stack([torch.stack(self.acc[k]).mean().to(dev) for k in keys])
                if keys else torch.zeros(0, device=dev))
        self.acc = {}
        return keys, vals


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
                opt.load_state_dict(payload["extra"]["optimizers"][name])
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


def main_wrapper(train_fn):
    """Run a trainer's main, then tear the process group down cleanly."""
    try:
        return train_fn()
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()


def configure_threads(threads: int):
    if threads > 0:
        torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
