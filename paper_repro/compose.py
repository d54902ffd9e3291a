"""Layer-wise composition: the one operation both papers are built on.

Defect-GAN eq. (2):  d = n ⊙ (1 − m_d) + f_d ⊙ m_d    (the map m_d is learned)
Defect-GAN eq. (4):  n̂ = d ⊙ (1 − m_n̂) + f_n̂ ⊙ m_n̂    (restoration, same form)
DADNet eq. (6):      A = I ⊙ (1 − M_g) + D ⊙ M_g       (M_g is a random mask, D comes from diffusion)

A background is kept wherever the map is 0, replaced by the foreground wherever it is 1, and
blended in between. Works on torch tensors and numpy arrays alike, with broadcasting, so a
single-channel map (N, 1, H, W) or (H, W, 1) covers every colour channel.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", torch.Tensor, np.ndarray)


def compose(background: Array, foreground: Array, mask: Array) -> Array:
    """Return ``background * (1 - mask) + foreground * mask``.

    ``mask`` must lie in [0, 1] and broadcast against both images. Where ``mask == 0`` the
    background comes back exactly (``x * 1 + 0 == x`` in IEEE arithmetic for any finite
    foreground), which is what lets Defect-GAN leave the normal surface untouched outside m_d.
    """
    return background * (1 - mask) + foreground * mask
