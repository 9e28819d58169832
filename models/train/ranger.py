"""Ranger: rectified Adam, a Lookahead wrapper and gradient centralisation in one optimiser.

This is the optimiser the pSp authors train their encoder with by default (their version
20.4.11 of Ranger). Its defaults are theirs: ``betas=(0.95, 0.999)``, ``eps=1e-5``, no weight
decay, Lookahead every ``k=6`` steps with ``alpha=0.5``, the rectified step only once the
approximated SMA length exceeds ``n_sma_threshold=5`` (a momentum step before that), and
gradient centralisation of every weight with more than one dimension (conv and linear weights;
``gc_conv_only`` restricts it to 4-D conv weights). pSp passes ``lr=1e-4``.

One step of one parameter ``p`` with gradient ``g`` (step count ``t``, from 1):

    g     <- g - mean(g over all but dim 0)          if GC applies to p
    m     <- beta1 m + (1 - beta1) g
    v     <- beta2 v + (1 - beta2) g^2
    rho_inf = 2 / (1 - beta2) - 1,  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
    p     <- p (1 - lr wd)                           if weight_decay
    p     <- p - lr r_t sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)   if rho_t > 5
             with r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
    p     <- p - lr / (1 - beta1^t) * m              otherwise
    every k steps:  slow <- slow + alpha (p - slow);  p <- slow

``slow`` starts as the parameter's value before its first step. All of it (``step``,
``exp_avg``, ``exp_avg_sq``, ``slow_buffer``) lives in the per-parameter state and the
hyper-parameters in the param groups, so ``state_dict`` / ``load_state_dict`` resume a run
exactly. With ``use_gc=False`` and ``alpha=1`` it is rectified Adam as ``torch.optim.RAdam``
computes it (same threshold, same placement of eps).
"""

from __future__ import annotations

import math

import torch
from torch.optim.optimizer import Optimizer


class Ranger(Optimizer):
    def __init__(self, params, lr: float = 1e-3, alpha: float = 0.5, k: int = 6,
                 n_sma_threshold: float = 5.0, betas: tuple[float, float] = (0.95, 0.999),
                 eps: float = 1e-5, weight_decay: float = 0.0, use_gc: bool = True,
                 gc_conv_only: bool = False):
        if not lr > 0:
            raise ValueError(f"Ranger: invalid learning rate {lr}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Ranger: invalid Lookahead alpha {alpha} (0..1)")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"Ranger: invalid Lookahead k {k} (an integer >= 1)")
        if not eps > 0:
            raise ValueError(f"Ranger: invalid eps {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Ranger: invalid betas {betas}")
        if weight_decay < 0:
            raise ValueError(f"Ranger: invalid weight_decay {weight_decay}")
        defaults = dict(lr=lr, alpha=alpha, k=k, n_sma_threshold=n_sma_threshold,
                        betas=tuple(betas), eps=eps, weight_decay=weight_decay, use_gc=use_gc,
                        gc_min_dim=4 if gc_conv_only else 2)
        super().__init__(params, defaults)

    @staticmethod
    def rectification(step: int, beta1: float, beta2: float, threshold: float):
        """(rectified?, step size without lr) at step ``step`` (from 1)."""
        beta2_t = beta2 ** step
        n_sma_max = 2 / (1 - beta2) - 1
        n_sma = n_sma_max - 2 * step * beta2_t / (1 - beta2_t)
        bias1 = 1 - beta1 ** step
        if n_sma > threshold:
            rect = math.sqrt((n_sma - 4) * (n_sma - 2) * n_sma_max
                             / ((n_sma_max - 4) * (n_sma_max - 2) * n_sma))
            return True, rect * math.sqrt(1 - beta2_t) / bias1
        return False, 1.0 / bias1

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                # Half-precision parameters are updated through an fp32 copy (as pSp's Ranger
                # does for every parameter); fp32 and fp64 ones in place.
                work = torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype
                grad = p.grad.to(work)
                p32 = p.to(work)  # p itself unless half precision
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p32, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p32, memory_format=torch.preserve_format)
                    state["slow_buffer"] = p.detach().clone(memory_format=torch.preserve_format)
                elif state["exp_avg"].dtype != work:  # a load casts them to p's dtype
                    state["exp_avg"] = state["exp_avg"].to(work)
                    state["exp_avg_sq"] = state["exp_avg_sq"].to(work)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                if group["use_gc"] and grad.dim() >= group["gc_min_dim"]:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                state["step"] += 1
                t = state["step"]
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                rectified, step_size = self.rectification(t, beta1, beta2,
                                                          group["n_sma_threshold"])
                if wd != 0:
                    p32.mul_(1 - wd * lr)
                if rectified:
                    p32.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-step_size * lr)
                else:
                    p32.add_(exp_avg, alpha=-step_size * lr)
                if p32 is not p:
                    p.copy_(p32)
                if t % group["k"] == 0:  # Lookahead: slow weights move towards the fast ones
                    slow = state["slow_buffer"]
                    slow.add_(p - slow, alpha=group["alpha"])
                    p.copy_(slow)
        return loss
