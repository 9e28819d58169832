"""What the loop asks of a trainer: its optimisation phases, its batches and its outputs.

One iteration runs the trainer's phases in order (typically G main, G reg, D main, D reg); a
regularisation phase runs every ``interval`` iterations (lazy regularisation: the trainer scales
the loss by ``interval`` and its optimiser's lr/betas by k/(k+1), ``optim.lazy_adam``).
A trainer is built from its parts (networks, datasets); each one's ``from_paths`` builds
those from files for the command line.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..checkpoint import save_checkpoint
from .distributed import Dist


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
    """Subclasses set up networks/optimisers in __init__ and implement the hooks below."""

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
        self.dist.log(msg)
