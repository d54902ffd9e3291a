"""DGM, the ablation's pseudo-anomalies (DADNet §3.4.3, Table 4, Fig. 7b): noise or a foreign
texture pasted into a random mask M_g with a random opacity, as DRAEM makes its anomalies.

DRAEM takes its textures from DTD, a fixed set of photographs, which cannot be downloaded here; this
module draws a fixed bank of textures from the bundled procedural generator instead
(:func:`paper_repro.data.textures.texture`), and augments the texture as DRAEM augments its DTD image:
three of DRAEM's ten image operations, chosen at random (:func:`draem_augment`).
For each sample, with probability ``1 - p_anomaly`` the image is returned unchanged with an empty
mask (DRAEM trains on half normal, half anomalous inputs); otherwise

    foreground = (1 - b) * source + b * I,   b ~ U(0, 0.8)   (DRAEM's opacity)
    A = compose(I, foreground, M_g)                           (the same eq. (6) SDGM uses)
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from kornia import enhance
from kornia.geometry.transform import rotate

from paper_repro.compose import compose
from paper_repro.dadnet.masks import random_mask
from paper_repro.data.textures import FAMILIES, texture

SOURCES = ("noise", "texture")


def noise_source(size: int, rng: np.random.Generator) -> torch.Tensor:
    """Colour noise at a random grain (1 to 16 px cells), ``(3, size, size)`` in [0, 1]."""
    cells = max(1, size // 2 ** int(rng.integers(0, 5)))
    coarse = torch.from_numpy(rng.random((1, 3, cells, cells), dtype=np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]


@lru_cache(maxsize=4)
def texture_bank(size: int, n: int = 48, seed: int = 0) -> torch.Tensor:
    """The anomaly-source textures (DRAEM's DTD stand-in): ``n`` procedural textures of every family,
    ``(n, 3, size, size)`` in [0, 1], the same for every run (drawn once per process)."""
    families = sorted(FAMILIES)
    rng = np.random.default_rng(seed)
    return torch.stack([torch.from_numpy(np.ascontiguousarray(texture(families[i % len(families)], rng, size)))
                        .permute(2, 0, 1).float() for i in range(n)])


def texture_source(size: int, rng: np.random.Generator) -> torch.Tensor:
    """A random texture of the bank, ``(3, size, size)`` in [0, 1]."""
    bank = texture_bank(size)
    return bank[int(rng.integers(len(bank)))]


# DRAEM's augmenters (Zavrtanik et al. 2021, its imgaug list), on kornia's functional ops, each drawing
# its parameters from the sample's own generator; images are (3, H, W) in [0, 1].
def _gamma_contrast(x, rng):  # GammaContrast((0.5, 2.0), per_channel=True)
    return x.clamp_min(0).pow(torch.from_numpy(rng.uniform(0.5, 2.0, (3, 1, 1)).astype(np.float32)))


def _brightness(x, rng):  # MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30))
    return x * float(rng.uniform(0.8, 1.2)) + float(rng.uniform(-30, 30)) / 255


def _sharpness(x, rng):  # pillike.EnhanceSharpness(factor=(0, 2))
    return enhance.sharpness(x[None], float(rng.uniform(0, 2)))[0]


def _hue_saturation(x, rng):  # AddToHueAndSaturation((-50, 50), per_channel=True)
    x = enhance.adjust_hue(x[None], float(rng.uniform(-50, 50)) / 255 * np.pi)
    return enhance.adjust_saturation(x, 1 + float(rng.uniform(-50, 50)) / 255)[0]  # saturation x(1 ± 50/255)


def _solarize(x, rng):  # Solarize(0.5, threshold=(32, 128))
    return enhance.solarize(x[None], float(rng.uniform(32, 128)) / 255)[0] if rng.random() < 0.5 else x


def _posterize(x, rng):  # Posterize(nb_bits=(1, 8))
    return enhance.posterize(x[None], int(rng.integers(1, 9)))[0]


def _invert(x, rng):  # Invert()
    return 1 - x


def _autocontrast(x, rng):  # pillike.Autocontrast(): stretch each channel to [0, 1]
    return enhance.normalize_min_max(x[None])[0]


def _equalize(x, rng):  # pillike.Equalize()
    return enhance.equalize(x[None])[0]


def _rotate(x, rng):  # Affine(rotate=(-45, 45)), reflecting at the border
    angle = torch.tensor([float(rng.uniform(-45, 45))])
    return rotate(x[None], angle, padding_mode="reflection")[0]


AUGMENTERS = (_gamma_contrast, _brightness, _sharpness, _hue_saturation, _solarize, _posterize, _invert,
              _autocontrast, _equalize, _rotate)


def draem_augment(source: torch.Tensor, rng: np.random.Generator, n_ops: int = 3) -> torch.Tensor:
    """DRAEM's anomaly-source augmentation: ``n_ops`` of its ten operations, in random order."""
    x = source.float().clamp(0, 1)
    for i in rng.choice(len(AUGMENTERS), size=n_ops, replace=False):
        x = AUGMENTERS[i](x, rng).clamp(0, 1)
    return x


def dgm_anomaly(image: torch.Tensor, rng: np.random.Generator, source: str = "mixed",
                p_anomaly: float = 0.5, max_opacity: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """One DGM pseudo-anomaly: ``(A, M_g)`` for a normal ``image`` ``(3, H, W)`` in [0, 1].

    ``source``: ``"noise"``, ``"texture"`` or ``"mixed"`` (each half the time).
    """
    size = image.shape[-1]
    if rng.random() >= p_anomaly:
        return image, torch.zeros(1, *image.shape[-2:])
    mask = random_mask(size, rng)
    kind = source if source != "mixed" else SOURCES[int(rng.integers(2))]
    pattern = noise_source(size, rng) if kind == "noise" else draem_augment(texture_source(size, rng), rng)
    b = float(rng.uniform(0, max_opacity))
    foreground = (1 - b) * pattern + b * image
    return compose(image, foreground, mask), mask
