"""From the predicted mask M_p to an image's anomaly score.

DADNet does not state its reduction; this follows DRAEM: the maximum of M_p after a ``k x k``
mean filter (k = 21 at 256 px, scaled with the image size), so one isolated confident pixel does
not make an image anomalous but a small confident region does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def score_kernel(image_size: int) -> int:
    """DRAEM's 21 px window at 256 px, scaled to ``image_size`` and kept odd."""
    k = max(1, round(21 * image_size / 256))
    return k if k % 2 else k + 1


def image_scores(pred_masks: torch.Tensor, kernel: int | None = None) -> torch.Tensor:
    """``(B, 1, H, W)`` M_p -> ``(B,)`` scores: max of the mean-filtered map."""
    kernel = kernel or score_kernel(pred_masks.shape[-1])
    smoothed = F.avg_pool2d(pred_masks, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return smoothed.flatten(1).amax(1)
