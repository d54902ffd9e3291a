"""DGM, the ablation's pseudo-anomalies (DADNet §3.4.3, Table 4, Fig. 7b): noise or a foreign
texture pasted into a random mask M_g with a random opacity, as DRAEM makes its anomalies.

DRAEM takes its textures from DTD, a fixed set of photographs, which cannot be downloaded here; this
module draws a fixed bank of textures from the bundled procedural generator instead
(:func:`paper_repro.data.textures.texture`) and augments a random one per sample.
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

from paper_repro.compose import compose
from paper_repro.dadnet.masks import random_mask

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
    from paper_repro.data.textures import FAMILIES, texture

    families = sorted(FAMILIES)
    rng = np.random.default_rng(seed)
    return torch.stack([torch.from_numpy(np.ascontiguousarray(texture(families[i % len(families)], rng, size)))
                        .permute(2, 0, 1).float() for i in range(n)])


def texture_source(size: int, rng: np.random.Generator) -> torch.Tensor:
    """A texture of the bank, randomly rotated, recoloured and inverted, ``(3, size, size)``."""
    bank = texture_bank(size)
    tex = bank[int(rng.integers(len(bank)))]
    tex = torch.rot90(tex, int(rng.integers(4)), dims=(1, 2))
    tex = tex[torch.from_numpy(rng.permutation(3))]          # swap colour channels
    if rng.random() < 0.3:
        tex = 1 - tex                                        # invert
    gain = torch.from_numpy(rng.uniform(0.5, 1.5, (3, 1, 1)).astype(np.float32))
    return (tex * gain).clamp(0, 1)


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
    pattern = noise_source(size, rng) if kind == "noise" else texture_source(size, rng)
    b = float(rng.uniform(0, max_opacity))
    foreground = (1 - b) * pattern + b * image
    return compose(image, foreground, mask), mask
