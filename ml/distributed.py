"""Data-parallel training under torchrun: one process per device, DistributedDataParallel, rank 0 writes.

    torchrun --standalone --nproc-per-node=N -m ml.train --data DIR --out CKPT      # one machine, N processes
    torchrun --nnodes=M --nproc-per-node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 --rdzv-id=RUN \\
        -m ml.train …                                                              # M machines (docs/scaling.md)

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them (a plain `python -m ml.train`) everything here is a
no-op for one process. Backend: NCCL when CUDA is present (one GPU per process, LOCAL_RANK picks it), gloo on CPU
(the tests run two CPU processes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def from_environment() -> Distributed:
    """The process group torchrun describes in the environment (joined here), or a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)  # before the group: NCCL binds each rank to its own GPU
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Distributed(dist.get_rank(), local_rank, dist.get_world_size(), backend)


class TrainingStep(nn.Module):
    """Routes both training forwards of UnifiedNet (the full one and the regressor-only one on ground-truth crops)
    through one `forward`, so DistributedDataParallel sees every call and averages every gradient."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, regressor_only: bool, *args: Any) -> Any:
        if regressor_only:
            return self.net.forward_regressor_only(*args)  # type: ignore[operator]
        return self.net(*args)


def wrap_for_training(net: nn.Module, context: Distributed) -> nn.Module:
    """A module to call as step(regressor_only, *args): DDP over TrainingStep when distributed, else TrainingStep.

    find_unused_parameters: a regressor-only step leaves the segmenter without gradients, and the attention
    ablations leave some mask branches unused; DDP must not wait for those."""
    step = TrainingStep(net)
    if not context.enabled:
        return step
    device_ids = [context.local_rank] if context.backend == "nccl" else None
    return DistributedDataParallel(step, device_ids=device_ids, find_unused_parameters=True)


def mean_over_ranks(value: float, context: Distributed) -> float:
    """The mean of a number over all processes (e.g. the epoch's loss); the value itself for one process."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64,
                          device=context.device() if context.backend == "nccl" else "cpu")
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


def agree(flag: bool, context: Distributed) -> bool:
    """True on every rank when rank 0 says so (stop early, cancel): ranks must leave the loop together."""
    if not context.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32,
                          device=context.device() if context.backend == "nccl" else "cpu")
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def barrier(context: Distributed) -> None:
    if context.enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
