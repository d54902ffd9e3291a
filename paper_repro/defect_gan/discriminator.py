"""Defect-GAN's discriminator D: StarGAN's, unchanged (§3.1).

A stack of stride-2 4×4 convs with LeakyReLU(0.01), then two heads on the same features:
``D_src``, a PatchGAN critic (one score per patch), and ``D_cls``, multi-label logits over the
C defect classes (a conv whose kernel covers the whole remaining feature map).
"""
from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, num_classes: int, image_size: int = 128, conv_dim: int = 64, repeat: int = 6):
        super().__init__()
        if image_size % 2 ** repeat:
            raise ValueError(f"image_size {image_size} must be divisible by 2**repeat = {2 ** repeat}")
        layers, c = [nn.Conv2d(3, conv_dim, 4, stride=2, padding=1), nn.LeakyReLU(0.01)], conv_dim
        for _ in range(1, repeat):
            layers += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            c *= 2
        self.main = nn.Sequential(*layers)
        self.src = nn.Conv2d(c, 1, 3, padding=1, bias=False)  # D_src: PatchGAN scores
        self.cls = nn.Conv2d(c, num_classes, image_size // 2 ** repeat, bias=False)  # D_cls

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src(h), self.cls(h).flatten(1)
