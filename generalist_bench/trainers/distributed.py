"""Distributed discipline (torchvision references): init from torchrun's env, primary-only writes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1): gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return DistInfo(True, dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


def all_reduce_mean(values: list[float], info: DistInfo) -> list[float]:
    if not info.enabled:
        return values
    device = f"cuda:{info.local_rank}" if info.backend == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def average_float_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating buffers (BatchNorm running statistics) across ranks, so every rank merges the same
    global learner (DDP broadcasts buffers only at the start of a forward pass)."""
    if not info.enabled:
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if bufs:
        flat = torch.cat([b.reshape(-1) for b in bufs])
        dist.all_reduce(flat)
        flat /= info.world_size
        offset = 0
        for b in bufs:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
