"""DADNet's two U-Nets (§2.2, Fig. 2-3), laid out as DRAEM's reconstructive and discriminative
sub-networks (Zavrtanik et al. 2021), which the paper's baseline is.

- :class:`ReconstructiveNetwork`: encoder -> DRAM (§2.3) -> decoder, no skip connections, so the
  anomaly cannot be copied through; A -> R.
- :class:`DiscriminativeNetwork`: a U-Net *with* skip connections on ``concat(A, R)``; it outputs
  two-class logits whose softmax foreground channel is the predicted mask ``M_p``.
"""
from __future__ import annotations

import torch
from torch import nn

from paper_repro.dadnet.dram import DRAM


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv -> BatchNorm -> ReLU layers (DRAEM's block)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def up_block(cin: int, cout: int) -> nn.Sequential:
    """x2 bilinear upsampling followed by a 3x3 conv -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ReconstructiveNetwork(nn.Module):
    """A -> R. Four poolings: a 256 px input has a 16x16 bottleneck of ``8 * width`` channels."""

    def __init__(self, width: int = 128, in_channels: int = 3, out_channels: int = 3,
                 dram: bool = True, gamma: float = 0.25):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            conv_block(in_channels, w), nn.MaxPool2d(2),
            conv_block(w, 2 * w), nn.MaxPool2d(2),
            conv_block(2 * w, 4 * w), nn.MaxPool2d(2),
            conv_block(4 * w, 8 * w), nn.MaxPool2d(2),
            conv_block(8 * w, 8 * w),
        )
        # §2.3: DRAM between encoder and decoder; ``--no-dram`` (the ablation's baseline) skips it.
        self.dram = DRAM(8 * w, gamma) if dram else nn.Identity()
        self.decoder = nn.Sequential(
            up_block(8 * w, 8 * w), conv_block(8 * w, 4 * w),
            up_block(4 * w, 4 * w), conv_block(4 * w, 2 * w),
            up_block(2 * w, 2 * w), conv_block(2 * w, w),
            up_block(w, w), conv_block(w, w),
            nn.Conv2d(w, out_channels, 3, padding=1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.dram(self.encoder(image)))


class DiscriminativeNetwork(nn.Module):
    """concat(A, R) -> two-class logits; five poolings, skip connections at every scale (Fig. 3)."""

    def __init__(self, width: int = 64, in_channels: int = 6, out_channels: int = 2):
        super().__init__()
        w = width
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]
        self.encoders = nn.ModuleList(
            conv_block(cin, cout) for cin, cout in zip([in_channels] + widths[:-1], widths))
        self.pool = nn.MaxPool2d(2)
        # decoder level i upsamples from widths[i+1] to widths[i], concatenates the skip, fuses
        self.ups = nn.ModuleList(up_block(widths[i + 1], widths[i]) for i in range(5))
        self.fuses = nn.ModuleList(conv_block(2 * widths[i], widths[i]) for i in range(5))
        self.out = nn.Conv2d(w, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(self.pool(x) if i else x)
            skips.append(x)
        for i in reversed(range(5)):
            x = self.fuses[i](torch.cat([self.ups[i](x), skips[i]], dim=1))
        return self.out(x)


class DADNet(nn.Module):
    """Both stages: ``forward(A) -> (R, logits)``; :func:`predicted_mask` gives ``M_p``."""

    def __init__(self, recon_width: int = 128, disc_width: int = 64, dram: bool = True,
                 gamma: float = 0.25):
        super().__init__()
        self.reconstructive = ReconstructiveNetwork(recon_width, dram=dram, gamma=gamma)
        self.discriminative = DiscriminativeNetwork(disc_width)

    def forward(self, anomalous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reconstruction = self.reconstructive(anomalous)
        # §3.2: the two networks train together but their gradients are independent, so the
        # discriminative loss does not flow back into the reconstructive network.
        logits = self.discriminative(torch.cat([anomalous, reconstruction.detach()], dim=1))
        return reconstruction, logits


def bottleneck_share(recon_width: int, image_size: int, in_channels: int = 3) -> float:
    """How many numbers the reconstructive network's bottleneck holds per number of its input: ``8 w``
    channels at ``S / 16`` (four poolings) over ``3 S^2``. Above 1 the bottleneck could in principle carry
    every pixel (the paper's 1,024 x 16 x 16 for 3 x 256 x 256: 1.33); far below 1 only a coarse summary of
    the image passes, and a fine stochastic texture comes out as its local mean."""
    side = image_size // 16
    return 8 * recon_width * side * side / (in_channels * image_size * image_size)


def predicted_mask(logits: torch.Tensor) -> torch.Tensor:
    """``M_p``: the anomalous-class softmax probability, ``(B, 1, H, W)`` in [0, 1]."""
    return torch.softmax(logits, dim=1)[:, 1:2]
