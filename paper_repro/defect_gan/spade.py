"""SPADE: spatially-adaptive normalisation (Park et al. 2019), Defect-GAN's way of feeding the
attribute control map A ∈ R^{H×W×C} into every decoder block (§3.1, "Spatial & categorical control").

    SPADE(x, A) = norm(x) ⊙ (1 + γ(A)) + β(A)

``norm`` is parameter-free instance normalisation; γ and β come from A resized to the feature size,
a shared 3×3 conv with ``hidden`` channels (128 in SPADE and at ``full`` scale) and ReLU, then one
3×3 conv each. Because γ and β are local functions of A, changing A at a place changes the output
only around that place (two 3×3 convs: at most 2 feature pixels away).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SPADE(nn.Module):
    def __init__(self, channels: int, control_channels: int, hidden: int = 128):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)  # param-free
        self.shared = nn.Sequential(nn.Conv2d(control_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
        control = F.interpolate(control, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(control)
        return self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)
