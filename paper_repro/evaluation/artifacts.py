"""Checkerboard artifacts of a generator, measured: the share of spectral power at period 2.

A stride-2 transposed convolution paints each output pixel from a different subset of its kernel
depending on the pixel's parity, so a generator built from them easily paints a lattice that repeats
every 2 pixels (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016).
Such a lattice puts its power at the *Nyquist* frequencies of the 2-D Fourier transform: the row
``k_y = H/2`` and the column ``k_x = W/2`` (a pattern alternating along y, along x, or both). Photographs
and the bundled surfaces have almost none there: their spectra fall with frequency.

:func:`nyquist_share` is that share for each image: the power of the mean-free luminance
(ITU-R BT.601 weights) at the Nyquist row and column, divided by the power at all frequencies but DC
(the mean is subtracted first, so DC is 0). No window is applied: a lattice is periodic, so it does
not leak, and the discontinuity at the image border puts its power on the axes ``k_x = 0`` and
``k_y = 0``, of which only the two points ``(0, W/2)`` and ``(H/2, 0)`` are counted.

Measured on the bundled CODEBRIM-layout test set at 64 px: real defect crops 0.0006, real
backgrounds 0.0005; a Defect-GAN with StarGAN's transposed convolutions painted 0.014-0.047
(docs/measurements.md, "Defect-GAN's checkerboard"). :func:`artifact_verdict` compares a set of
samples with real images of the same kind: artifact-free when the samples' share is within
``factor`` (3) times the real images'.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
DEFAULT_FACTOR = 3.0  # samples within 3x the real images' share count as free of the period-2 lattice


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) or (N, 1, H, W) or (N, H, W) -> (N, H, W) luminance (any value range)."""
    images = torch.as_tensor(images).float()
    if images.dim() == 3:
        return images
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 3, H, W), (N, 1, H, W) or (N, H, W), got {tuple(images.shape)}")
    if images.shape[1] == 1:
        return images[:, 0]
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device)
    return (images * weights[None, :, None, None]).sum(1)


def nyquist_shares(images: torch.Tensor) -> torch.Tensor:
    """Per image, the share of the 2-D FFT power of the mean-free luminance at the Nyquist row
    (``k_y = H/2``) and column (``k_x = W/2``), out of all the power but DC: a value in [0, 1].

    Needs even ``H`` and ``W`` (odd sides have no Nyquist frequency). A flat image has no power at
    all and gets 0. The share does not depend on the value range ([0, 1] or [-1, 1]).
    """
    y = luminance(images)
    h, w = y.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"images must have even sides for a Nyquist frequency, got {h}x{w}")
    y = y - y.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(y).abs() ** 2
    lattice = power[:, h // 2, :].sum(-1) + power[:, :, w // 2].sum(-1) - power[:, h // 2, w // 2]
    total = power.sum(dim=(-2, -1))
    return torch.where(total > 0, lattice / total.clamp_min(1e-30), torch.zeros_like(total))


def nyquist_share(images: torch.Tensor) -> float:
    """The mean of :func:`nyquist_shares` over the images (see the module's docstring)."""
    return float(nyquist_shares(images).mean())


@dataclass(frozen=True)
class ArtifactVerdict:
    """A set of samples' Nyquist share against real images': their ratio and whether it is within ``factor``."""

    name: str
    share: float
    reference: float
    factor: float = DEFAULT_FACTOR

    @property
    def ratio(self) -> float:
        return self.share / self.reference if self.reference > 0 else float("inf")

    @property
    def artifact_free(self) -> bool:
        return self.ratio <= self.factor

    def __str__(self) -> str:
        verdict = "artifact-free" if self.artifact_free else "period-2 lattice"
        return (f"{self.name}: Nyquist share {self.share:.5f} vs real {self.reference:.5f} "
                f"({self.ratio:.1f}x; {verdict} by the {self.factor:g}x bar)")


def artifact_verdict(samples: torch.Tensor, real: torch.Tensor, name: str = "samples",
                     factor: float = DEFAULT_FACTOR) -> ArtifactVerdict:
    """:class:`ArtifactVerdict` of ``samples`` against ``real`` images (both (N, 3, H, W), any one range)."""
    return ArtifactVerdict(name, nyquist_share(samples), nyquist_share(real), factor)


__all__ = ["LUMA", "DEFAULT_FACTOR", "luminance", "nyquist_shares", "nyquist_share", "ArtifactVerdict",
           "artifact_verdict"]
