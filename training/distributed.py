"""Which of several processes this is, when a script runs under ``torchrun`` or ``accelerate``.

Launchers describe each process in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, or MPI's names for them); without them a script is the only process.
``accelerate launch --cpu --num_processes N`` is a trap: without an MPI hostfile it starts one
process that believes it is alone, so ``current_world`` refuses it and names the commands that do
start N processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch.distributed as dist
from accelerate.utils import get_cpu_distributed_information

T = TypeVar("T")

CPU_LAUNCH_HINT = (
    "`accelerate launch --cpu --num_processes N` starts a single process (accelerate needs an "
    "MPI hostfile for several CPU processes); start N processes with `torchrun "
    "--nproc_per_node N -m training.X ... --device cpu` or `accelerate launch --multi_gpu "
    "--num_processes N -m training.X ... --device cpu`"
)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # on this machine: the GPU index a process uses
    local_size: int = 1  # processes on this machine, sharing its CPU cores

    @property
    def first(self) -> bool:
        """The process that writes the run's files."""
        return self.rank == 0


def current_world() -> World:
    """The world the launcher describes in the environment; raises on the ``--cpu`` trap."""
    info = get_cpu_distributed_information()
    asked_for_more = (
        "MASTER_PORT" in os.environ and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
    )
    if info.world_size == 1 and asked_for_more:
        raise RuntimeError(CPU_LAUNCH_HINT)
    return World(info.rank, info.world_size, info.local_rank, info.local_world_size)


@contextmanager
def joined(world: World) -> Iterator[None]:
    """Join the run's other processes (gloo, at ``MASTER_ADDR:MASTER_PORT``) while inside."""
    if world.size == 1 or dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", rank=world.rank, world_size=world.size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(items: Sequence[T], world: World) -> list[T]:
    """This process's share of ``items``: every ``size``-th one from its rank on."""
    return list(items[world.rank :: world.size])


def gather(part: Any, world: World) -> list[Any] | None:
    """Every process's ``part``, in rank order, on the first process (None on the others)."""
    if world.size == 1:
        return [part]
    parts: list[Any] | None = [None] * world.size if world.first else None
    dist.gather_object(part, parts, dst=0)
    return parts


def unshard(parts: Sequence[Sequence[T]]) -> list[T]:
    """The items ``shard`` split into ``parts``, back in their original order."""
    merged: list[T] = []
    for i in range(max(map(len, parts), default=0)):
        merged += [part[i] for part in parts if i < len(part)]
    return merged
