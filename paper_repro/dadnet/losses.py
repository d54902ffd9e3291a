"""DADNet's two losses (§2.2).

- Reconstruction, eq. (7)-(10): ``L_rec = (1 - lambda) L_l2(I, R) + lambda (1 - SSIM(I, R))``,
  lambda = 0.85. SSIM (eq. 8) is kornia's (11x11 Gaussian window, C1 = 0.01^2, C2 = 0.03^2).
- Discrimination, eq. (11)-(12): the focal loss ``FL(p) = -beta (1 - p)^delta log p`` averaged
  over the N pixels, beta = 0.25, delta = 2, where p is the probability given to a pixel's true
  class (anomalous inside M_g, normal outside).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.metrics import ssim


def l2_loss(image: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Eq. (7): the mean over pixels (and channels, and the batch) of ``(I - R)^2``."""
    return F.mse_loss(reconstruction, image)


def ssim_loss(image: torch.Tensor, reconstruction: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Eq. (9): ``1 - SSIM(I, R)``, SSIM (eq. 8) averaged over the SSIM map; images in [0, 1]."""
    return 1 - ssim(image, reconstruction, window, max_val=1.0).mean()


def reconstruction_loss(image: torch.Tensor, reconstruction: torch.Tensor,
                        lam: float = 0.85) -> torch.Tensor:
    """Eq. (10): ``(1 - lambda) L_l2 + lambda L_SSIM``."""
    return (1 - lam) * l2_loss(image, reconstruction) + lam * ssim_loss(image, reconstruction)


def focal_loss(logits: torch.Tensor, mask: torch.Tensor, beta: float = 0.25,
               delta: float = 2.0) -> torch.Tensor:
    """Eq. (11)-(12) on two-class logits ``(B, 2, H, W)`` and a target mask ``(B, 1, H, W)`` in {0, 1}.

    ``p_i`` is the softmax probability of pixel i's true class; the loss is the mean of
    ``-beta (1 - p_i)^delta log p_i`` over all N pixels.
    """
    target = mask.squeeze(1).round().long()
    log_p = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)  # log p_i
    return (-beta * (1 - log_p.exp()) ** delta * log_p).mean()                    # eq. (11)-(12)
