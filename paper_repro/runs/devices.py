"""Devices, processes and seeds: where a run computes and how its random streams start.

- :func:`resolve_device` turns ``"cpu"``, ``"cuda:1"``, ``"mps"`` or ``"auto"`` into a ``torch.device``,
  with one clear error when the machine lacks it (:func:`available_devices` says what it has).
- :class:`Distributed` is the process group ``torchrun`` describes (one process when it does not):
  gloo on the CPU, nccl on CUDA, DistributedDataParallel around a module.
- :func:`seed_everything` seeds Python's, NumPy's and torch's generators.
"""
from __future__ import annotations

import dataclasses
import os
import random

import numpy as np
import torch
import torch.distributed
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from paper_repro.errors import UserError


LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")  # what torchrun sets for each process


def launch_environment(env=None) -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from torchrun's variables, the one place they are read.

    Unset, the process is alone: ``(1, 0, 0)``. Each variable that is set must be a whole number; with
    ``WORLD_SIZE`` above 1, ``RANK`` must be set and lie in ``[0, WORLD_SIZE)``. Anything else is one
    line naming the variable. A stray ``RANK`` without ``WORLD_SIZE`` describes no group: the process is
    alone (and takes its run folder's lock like any other, :func:`paper_repro.runs.folders.run_lock`)."""
    env = os.environ if env is None else env
    values = {}
    for name in LAUNCH_VARIABLES:
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise UserError(f"{name}={raw!r}: expected a whole number (torchrun sets it; unset it to run one "
                            "process)") from None
        if values[name] < 0:
            raise UserError(f"{name}={raw}: expected 0 or more")
    world_size = values.get("WORLD_SIZE", 1)
    if world_size <= 1:
        return 1, 0, 0
    if "RANK" not in values:
        raise UserError(f"WORLD_SIZE={world_size} but RANK is not set: launch with torchrun, which sets both, "
                        "or unset WORLD_SIZE to run one process")
    if values["RANK"] >= world_size:
        raise UserError(f"RANK={values['RANK']}: expected a rank below WORLD_SIZE={world_size}")
    return world_size, values["RANK"], values.get("LOCAL_RANK", 0)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# Device types a run may compute on, beside the CPU, with the name the messages use.
ACCELERATORS = {"cuda": "CUDA", "mps": "MPS (Apple GPU)", "xpu": "XPU (Intel GPU)"}


def _accelerator(kind: str):
    """torch's module for an accelerator type (``torch.cuda``, ``torch.mps``, ``torch.xpu``), or None."""
    return getattr(torch, kind, None) if kind in ACCELERATORS else None


def _has(kind: str) -> bool:
    check = getattr(_accelerator(kind), "is_available", None)
    try:
        return bool(check is not None and check())
    except (RuntimeError, AssertionError):  # a build that knows the type but cannot use it
        return False


def available_devices() -> list[str]:
    """The device types this machine has, ``cpu`` first."""
    return ["cpu", *(kind for kind in ACCELERATORS if _has(kind))]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"xpu"``, or ``None``/``"auto"`` (CUDA when
    present, else CPU). A device this machine lacks is a one-line UserError naming what it has."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"unknown device {str(device)!r}: expected cpu, cuda, cuda:N, mps, xpu or auto") from err
    if resolved.type == "cpu":
        return resolved
    has = ", ".join(available_devices())
    if resolved.type not in ACCELERATORS:
        raise UserError(f"device {str(device)!r}: runs compute on cpu, cuda, mps or xpu; this machine has {has}")
    if not _has(resolved.type):
        raise UserError(f"device {str(device)!r} was asked for, but this machine has no "
                        f"{ACCELERATORS[resolved.type]} device (it has {has})")
    module = _accelerator(resolved.type)
    count = module.device_count() if hasattr(module, "device_count") else 1
    if resolved.index is not None and resolved.index >= count:
        raise UserError(f"device {str(device)!r}: this machine has {count} {resolved.type} device(s), "
                        f"numbered from 0")
    return resolved


@dataclasses.dataclass
class Distributed:
    """The process group a run belongs to. One process (``enabled=False``) unless launched by torchrun."""

    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device | str = "cpu") -> "Distributed":
        """Join the group torchrun describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``.

        gloo on the CPU, nccl on CUDA. With ``WORLD_SIZE`` unset or 1, nothing is initialised.
        """
        world_size, rank, local_rank = launch_environment()
        if world_size <= 1:
            return cls()
        device = torch.device(device)
        if not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world_size)
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        return cls(enabled=True, rank=rank, world_size=world_size, local_rank=local_rank)

    def device(self, device: torch.device | str) -> torch.device:
        """The device this process works on: ``cuda:<local_rank>`` under torchrun with CUDA."""
        device = torch.device(device)
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def per_rank_batch(self, global_batch: int) -> int:
        """This process's share of the paper's batch: ``global_batch / world_size`` exactly, so a run on K
        GPUs takes the same optimiser steps over the same batches as the paper's one GPU, and its
        learning rate stays the paper's. A batch that does not split evenly is one line."""
        if global_batch % self.world_size:
            fits = [str(k) for k in range(1, global_batch + 1) if global_batch % k == 0]
            raise UserError(f"the batch of {global_batch} does not split evenly over {self.world_size} processes: run "
                            f"on {', '.join(fits)} GPU(s), so that each takes an equal share of the paper's batch")
        return global_batch // self.world_size

    def wrap(self, module: nn.Module, sync_batchnorm: bool = False) -> nn.Module:
        """``DistributedDataParallel(module)`` in a group, else ``module`` itself. ``sync_batchnorm``: its
        BatchNorm layers become SyncBatchNorm on CUDA, so their statistics are those of the whole batch, as
        on one GPU (in place: the module keeps its identity and its checkpoint keys). DDP accepts
        SyncBatchNorm on GPU modules only, so on the CPU (gloo) each process normalises over its share."""
        if not self.enabled:
            return module
        device = next(module.parameters()).device
        if sync_batchnorm and device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of ``value`` over the group (the value itself with one process)."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        torch.distributed.all_reduce(value)
        return value / self.world_size

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


__all__ = ["LAUNCH_VARIABLES", "launch_environment", "seed_everything", "ACCELERATORS", "available_devices", "resolve_device", "Distributed", "unwrap"]
