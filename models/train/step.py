"""One training iteration: every due phase, then the EMA update.

Shared by the loop (``loop.run``) and the benchmark, so what is timed is what trains.
"""

from __future__ import annotations

import time

import torch

from .distributed import all_reduce_mean_
from .optim import ema_beta, ema_update
from .placement import channels_last_, module_channels_last_
from .seeding import seed_step
from .trainer import Phase, Trainer

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
