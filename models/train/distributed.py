"""Processes started by ``torchrun``: which one this is, and the collectives the loop needs.

Determinism across process counts: every random draw of an iteration is made for the *global*
batch and sliced per rank (``Dist.local``), and gradients are averaged across ranks by an
explicit all-reduce, so two processes give the same update as one on the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as tdist


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

    def log(self, msg: str):
        """Print once per run: on the main process only."""
        if self.main:
            print(msg, flush=True)


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


def main_wrapper(train_fn):
    """Run a trainer's main, then tear the process group down cleanly."""
    try:
        return train_fn()
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()


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
