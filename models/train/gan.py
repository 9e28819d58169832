"""What the GAN trainers (StyleGAN2, BlendGAN) share: StyleGAN2's schedule of phases.

G main every iteration, path length every ``g_reg_every``, D main, R1 every ``d_reg_every``
(lazy regularisation); a regulariser with weight or interval 0 is left out. The running mean
of the path lengths is trainer state that snapshots carry.
"""

from __future__ import annotations

import abc
from typing import Callable

import torch

from .trainer import Phase, Trainer


class GANTrainer(Trainer):
    """Subclasses set ``g_params``, ``d_params``, ``g_opt`` and ``d_opt`` and write the four
    losses; ``after_g_step`` runs after every G update when set."""

    after_g_step: Callable | None = None

    def __init__(self, cfg, dist, out):
        super().__init__(cfg, dist, out)
        self.mean_path_length = torch.zeros((), device=self.device)

    @abc.abstractmethod
    def g_main(self, mb, step): ...

    @abc.abstractmethod
    def g_reg(self, mb, step): ...

    @abc.abstractmethod
    def d_main(self, mb, step): ...

    @abc.abstractmethod
    def d_reg(self, mb, step): ...

    def phases(self):
        cfg, after = self.cfg, self.after_g_step
        phases = [Phase("G_main", self.g_params, self.g_opt, self.g_main, 1, after)]
        if cfg.path_regularize > 0 and cfg.g_reg_every > 0:
            phases.append(Phase("G_reg", self.g_params, self.g_opt, self.g_reg,
                                cfg.g_reg_every, after, double_backward=True))
        phases.append(Phase("D_main", self.d_params, self.d_opt, self.d_main))
        if cfg.r1 > 0 and cfg.d_reg_every > 0:
            phases.append(Phase("D_reg", self.d_params, self.d_opt, self.d_reg, cfg.d_reg_every,
                                double_backward=True))
        return phases

    def extra_state(self):
        return {"mean_path_length": self.mean_path_length.detach().cpu()}

    def load_extra_state(self, state):
        if "mean_path_length" in state:
            self.mean_path_length = state["mean_path_length"].to(self.device)
