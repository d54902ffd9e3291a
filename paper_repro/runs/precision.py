"""Mixed precision, an explicit setting: the autocast context and loss scaler a training step runs under.

A run's ``precision`` is one of:

- ``"fp32"``: no autocast (the reference; what the CPU runs unless told otherwise);
- ``"bf16"``: bfloat16 autocast, no loss scaling (bfloat16 keeps float32's exponent range); on CUDA
  only where the GPU computes it natively (``torch.cuda.is_bf16_supported(including_emulation=False)``,
  Ampere and newer), and also on CPUs (faster at full geometry on AVX-512 bf16 machines);
- ``"fp16"``: float16 autocast on CUDA with a GradScaler (older GPUs);
- ``"auto"``: bf16 on a CUDA GPU that has it, fp16 on one that does not, fp32 on the CPU.

The resolved precision is recorded in ``run.json`` and named in every table caption. Losses that need
the range (the WGAN-GP gradient penalty, :func:`paper_repro.defect_gan.losses.gradient_penalty`) turn
autocast off and run in float32 whatever the setting.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from paper_repro.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved setting: its name (``fp32``, ``bf16``, ``fp16``) and the device type it runs on."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return DTYPES.get(self.name)

    @property
    def scales_loss(self) -> bool:
        return self.name == "fp16"


def resolve_precision(setting: str, device: torch.device | str) -> Precision:
    """The precision ``setting`` means on ``device``; one line of error when the device cannot run it."""
    device = torch.device(device)
    if setting not in PRECISIONS:
        raise UserError(f"precision {setting!r}: expected one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    native_bf16 = cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if setting == "auto":
        setting = ("bf16" if native_bf16 else "fp16") if cuda else "fp32"
    if setting == "fp16" and not cuda:
        raise UserError(f"precision fp16 needs a CUDA device (float16 autocast with loss scaling); {device} "
                        "can run fp32 or bf16")
    if setting == "bf16" and cuda and not native_bf16:
        raise UserError(f"precision bf16: {device} has no native bfloat16 (Ampere or newer); use fp16 or fp32")
    return Precision(setting, device.type)


def autocast(precision: Precision) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` (a no-op for fp32)."""
    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=precision.device_type, dtype=precision.dtype)


def grad_scaler(precision: Precision) -> torch.amp.GradScaler:
    """A loss scaler for fp16 (on CUDA); a pass-through for every other precision."""
    return torch.amp.GradScaler(precision.device_type if precision.device_type == "cuda" else "cpu",
                                enabled=precision.scales_loss)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """One update of ``optimizer``'s parameters from ``loss``: fresh gradients, scaled for float16, then
    the step (skipped by the scaler when the gradients overflowed)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


__all__ = ["PRECISIONS", "Precision", "resolve_precision", "autocast", "grad_scaler", "optimizer_step"]
