"""Mixed precision: the autocast context and the loss scaler a training step runs under.

On CUDA the steps run in float16 autocast with a gradient scaler; on the CPU both are pass-throughs,
so results stay float32.
"""
from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device | str, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision (float16 autocast) on CUDA; on the CPU a no-op, so results stay float32."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler:
    """A loss scaler for float16 training on CUDA; disabled (a pass-through) elsewhere."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """One update of ``optimizer``'s parameters from ``loss``: fresh gradients, scaled for float16, then
    the step (skipped by the scaler when the gradients overflowed)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


__all__ = ["autocast", "grad_scaler", "optimizer_step"]
