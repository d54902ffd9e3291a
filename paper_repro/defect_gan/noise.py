"""Adaptive noise injection (Defect-GAN §3.1, "Stochastic variation of defects").

After every conv block of the encoder and the decoder, Gaussian noise is added to the feature map,
scaled by a learned scalar of its own, initialised to 0 (so training starts without noise and
learns how much stochastic variation each depth needs):

    h ← h + w · z,   z ~ N(0, 1) of shape (N, 1, H, W), broadcast over channels.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))  # one learned scalar, starts at 0

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        return x + self.weight * noise


@contextlib.contextmanager
def noise_scaled(module: nn.Module, factor: float):
    """Temporarily multiply every learned noise scalar in ``module`` by ``factor`` (0 switches the
    stochastic variation off), restoring them afterwards."""
    injections = [m for m in module.modules() if isinstance(m, NoiseInjection)]
    saved = [m.weight.detach().clone() for m in injections]
    try:
        with torch.no_grad():
            for m in injections:
                m.weight.mul_(factor)
        yield module
    finally:
        with torch.no_grad():
            for m, w in zip(injections, saved):
                m.weight.copy_(w)
