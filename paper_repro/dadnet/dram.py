"""DRAM, the dual-track reconstruction aggregation module (DADNet §2.3, eq. 13-19).

It sits between the reconstructive network's encoder and decoder and re-weights the bottleneck
features ``F`` (``B x C x H x W``) twice: per channel by the global attention ``H_G`` (``1x1xC``)
and per position by the local attention ``H_L`` (``HxWx1``). The "fully connected" layers act on
the channel axis at every position, i.e. 1x1 convolutions.
"""
from __future__ import annotations

import torch
from torch import nn


class DRAM(nn.Module):
    def __init__(self, channels: int, gamma: float = 0.25):
        super().__init__()
        reduced = max(1, int(round(gamma * channels)))  # gamma C, gamma = 0.25 (§2.3)
        # global track, eq. (13)-(16): GAP -> FC -> GELU -> FC -> sigmoid
        self.gap = nn.AdaptiveAvgPool2d(1)                      # eq. (13)-(14)
        self.global_fc1 = nn.Conv2d(channels, reduced, 1)       # eq. (15)
        self.global_fc2 = nn.Conv2d(reduced, channels, 1)       # eq. (16)
        # local track, eq. (17)-(18): FC -> GELU, concat with broadcast Z_g, FC -> sigmoid
        self.local_fc1 = nn.Conv2d(channels, reduced, 1)
        self.local_fc2 = nn.Conv2d(2 * reduced, 1, 1)
        self.act = nn.GELU()

    def attention(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(H_G, H_L)`` of shapes ``(B, C, 1, 1)`` and ``(B, 1, H, W)``, both in (0, 1)."""
        x_g = self.gap(features)                                  # eq. (13): X_g, 1x1xC
        z_g = self.act(self.global_fc1(x_g))                      # eq. (15): Z_g, 1x1x(gamma C)
        h_g = torch.sigmoid(self.global_fc2(z_g))                 # eq. (16): H_G, 1x1xC
        x_l = self.act(self.local_fc1(features))                  # X_l, HxWx(gamma C)
        z_l = torch.cat([x_l, z_g.expand(-1, -1, *x_l.shape[-2:])], dim=1)  # eq. (17)
        h_l = torch.sigmoid(self.local_fc2(z_l))                  # eq. (18): H_L, HxWx1
        return h_g, h_l

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h_g, h_l = self.attention(features)
        return features * h_g * h_l                               # eq. (19): Z^ = F x H_G x H_L
