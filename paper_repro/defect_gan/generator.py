"""Defect-GAN's generator G (§3.1, Fig. 2), readable top to bottom next to the paper.

The body is StarGAN's encoder-decoder (Choi et al. 2018): a 7×7 stem, two stride-2 convs
("downsample by 4"), residual blocks, two ×2 upsamplings, and a 7×7 output conv. The paper says only
that G "follows the common image-to-image translation networks"; how it upsamples is ``upsample``
(:data:`UPSAMPLINGS`): ``"resize-conv"`` (nearest-neighbour ×2, then a 3×3 conv; this project's
choice, see ``DefectGANConfig.upsample``) or ``"transposed"`` (StarGAN's stride-2 4×4 transposed conv,
which painted a period-2 lattice into every foreground f at demo size).
Defect-GAN adds three things, each of which can be switched off for the ablation of Table 2:

- ``scc`` spatial & categorical control: the control map A ∈ R^{C×H×W} enters every decoder block
  (residual blocks and upsamplings) through SPADE instead of instance norm. Off: StarGAN's way,
  the class map concatenated to the input image.
- ``ani`` adaptive noise injection: Gaussian noise with its own learned scalar (init 0) after every
  conv block of encoder and decoder.
- ``lwc`` layer-wise composition: two heads, a foreground f (tanh) and a spatial map m (sigmoid),
  and the output is ``compose(x, f, m) = x ⊙ (1 − m) + f ⊙ m`` (eq. 1-4). Off: StarGAN's direct
  tanh image.

With all three off (and ``upsample="transposed"``) this *is* StarGAN's generator; ``scc`` alone is StarGAN + SPADE.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from paper_repro.compose import compose
from paper_repro.defect_gan.noise import NoiseInjection
from paper_repro.defect_gan.spade import SPADE


UPSAMPLINGS = ("resize-conv", "transposed")


def upsampling(in_channels: int, out_channels: int, kind: str) -> nn.Module:
    """A ×2 upsampling conv: ``"resize-conv"`` = nearest ×2 then 3×3 conv (every output pixel sees the
    same kernel, so no parity pattern; Odena et al., Distill 2016), ``"transposed"`` = StarGAN's stride-2
    4×4 transposed conv (each output parity gets its own 2×2 slice of the kernel)."""
    if kind == "resize-conv":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False))
    if kind == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
    raise ValueError(f"upsample {kind!r}: expected one of {', '.join(UPSAMPLINGS)}")


@dataclass
class GeneratorOutput:
    image: torch.Tensor  # the composed (or direct) output, in [-1, 1]
    foreground: torch.Tensor | None = None  # f (eq. 1/3), None without LWC
    mask: torch.Tensor | None = None  # m ∈ [0, 1] (eq. 1/3), None without LWC


def expand_control(control: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A label vector (N, C) repeated over space -> (N, C, H, W); a map (N, C, H, W) is returned as is.

    During training A is the target label repeated over all positions (§3.1: only image-level labels
    are available); at inference any spatial map may be given.
    """
    if control.dim() == 2:
        return control[:, :, None, None].expand(-1, -1, *size)
    if control.dim() != 4:
        raise ValueError(f"control must be (N, C) or (N, C, H, W), got shape {tuple(control.shape)}")
    return control


class Norm(nn.Module):
    """Instance norm (StarGAN) or SPADE(A) (Defect-GAN's decoder); same call either way."""

    def __init__(self, channels: int, control_channels: int | None, hidden: int):
        super().__init__()
        self.spade = SPADE(channels, control_channels, hidden) if control_channels else None
        self.norm = None if self.spade else nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x, control):
        return self.spade(x, control) if self.spade is not None else self.norm(x)


class ConvBlock(nn.Module):
    """conv -> norm -> ReLU [-> noise injection]."""

    def __init__(self, conv: nn.Module, channels: int, control_channels: int | None, hidden: int,
                 noise: bool):
        super().__init__()
        self.conv = conv
        self.norm = Norm(channels, control_channels, hidden)
        self.noise = NoiseInjection() if noise else None

    def forward(self, x, control):
        x = torch.relu(self.norm(self.conv(x), control))
        return self.noise(x) if self.noise is not None else x


class ResidualBlock(nn.Module):
    """StarGAN's residual block x + (conv-norm-ReLU-conv-norm)(x) [-> noise injection]."""

    def __init__(self, channels: int, control_channels: int | None, hidden: int, noise: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = Norm(channels, control_channels, hidden)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = Norm(channels, control_channels, hidden)
        self.noise = NoiseInjection() if noise else None

    def forward(self, x, control):
        h = torch.relu(self.norm1(self.conv1(x), control))
        x = x + self.norm2(self.conv2(h), control)
        return self.noise(x) if self.noise is not None else x


class Generator(nn.Module):
    def __init__(self, num_classes: int, conv_dim: int = 64, n_res_blocks: int = 6,
                 spade_hidden: int = 128, scc: bool = True, ani: bool = True, lwc: bool = True,
                 mask_init: float | None = None, upsample: str = "resize-conv"):
        super().__init__()
        self.num_classes, self.scc, self.ani, self.lwc = num_classes, scc, ani, lwc
        c = conv_dim
        # Encoder: plain instance norm; without SCC the class map is concatenated to the input.
        in_channels = 3 if scc else 3 + num_classes
        self.encoder = nn.ModuleList([
            ConvBlock(nn.Conv2d(in_channels, c, 7, padding=3, bias=False), c, None, 0, ani),
            ConvBlock(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), 2 * c, None, 0, ani),
            ConvBlock(nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1, bias=False), 4 * c, None, 0, ani),
        ])
        # Decoder: residual blocks and two upsamplings, each normalised by SPADE(A) under SCC.
        ctrl = num_classes if scc else None
        self.decoder = nn.ModuleList(
            [ResidualBlock(4 * c, ctrl, spade_hidden, ani) for _ in range(n_res_blocks)] + [
                ConvBlock(upsampling(4 * c, 2 * c, upsample), 2 * c, ctrl, spade_hidden, ani),
                ConvBlock(upsampling(2 * c, c, upsample), c, ctrl, spade_hidden, ani),
            ])
        # Heads: foreground f and spatial map m (LWC), or StarGAN's direct image.
        self.to_image = nn.Conv2d(c, 3, 7, padding=3, bias=False)
        self.to_mask = nn.Conv2d(c, 1, 7, padding=3, bias=mask_init is not None) if lwc else None
        if lwc and mask_init is not None:  # m starts near ``mask_init`` everywhere (see the config)
            nn.init.constant_(self.to_mask.bias, torch.logit(torch.tensor(mask_init)).item())

    def forward(self, x: torch.Tensor, control: torch.Tensor) -> GeneratorOutput:
        control = expand_control(control.to(x.dtype), x.shape[-2:])
        h = x if self.scc else torch.cat([x, control], dim=1)
        for block in self.encoder:
            h = block(h, None)
        for block in self.decoder:
            h = block(h, control)
        if not self.lwc:
            return GeneratorOutput(torch.tanh(self.to_image(h)))
        foreground = torch.tanh(self.to_image(h))  # f_d (eq. 1) or f_n̂ (eq. 3)
        mask = torch.sigmoid(self.to_mask(h))  # m_d or m_n̂, in [0, 1]
        return GeneratorOutput(compose(x, foreground, mask), foreground, mask)  # eq. 2 / 4

    def noise_scalars(self) -> dict[str, float]:
        """The learned noise strengths, by block name (empty without ANI)."""
        return {name.removesuffix(".weight"): p.item() for name, p in self.named_parameters()
                if name.endswith("noise.weight")}
