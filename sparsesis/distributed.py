"""Process-group helpers for ``torchrun`` (DistributedDataParallel); single-process runs need nothing."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: torch.device) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def all_mean(x: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= d.world
    return x


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device("cpu")


def weights_checksums(model: torch.nn.Module, d: Dist) -> list[float]:
    """One float64 checksum of the weights per rank (equal on all ranks when gradients were synced)."""
    local = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    if d.world == 1:
        return [float(local)]
    out = [torch.zeros_like(local) for _ in range(d.world)]
    dist.all_gather(out, local)
    return [float(x) for x in out]


def gather_rows(x, d: Dist):
    """Concatenate each rank's ``(n_r, D)`` numpy rows in rank order, on every rank."""
    import numpy as np

    if d.world == 1:
        return x
    parts = [None] * d.world
    dist.all_gather_object(parts, x)
    return np.concatenate(parts)
