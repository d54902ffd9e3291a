"""Evaluation metrics shared by the book (torchmetrics underneath; sklearn in the tests).

Anomaly detection (DADNet §3.3):

- :func:`image_auroc` - AUROC of per-image anomaly scores against image labels (0 good, 1 defective).
- :func:`pixel_auroc` - AUROC over every pixel of every test image (anomaly maps vs. ground-truth masks).
- :func:`pixel_f1` - DADNet eq. (20): the F1 score of each sample's binarised predicted mask,
  averaged over samples. Eq. (20) is undefined for a sample with no defect pixel (its recall has
  no denominator), so only samples whose ground truth has at least one defect pixel are averaged;
  a defective sample with no predicted pixel counts F1 = 0. Predictions are binarised at
  ``threshold`` (0.5 on DADNet's mask probability M_p).
- :func:`pixel_ap` and :func:`pixel_f1_max` - pixel average precision and the best pixel F1 over all
  thresholds, which the anomaly-detection literature (and anomalib) also reports.

All return Python floats in [0, 1].

Image synthesis (Defect-GAN §4.1): the FID and its named feature extractors live in
:mod:`paper_repro.evaluation.fid`.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_auroc, binary_average_precision, binary_precision_recall_curve,
)



def _flat(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu().reshape(-1)


def _check_both_classes(target: torch.Tensor, what: str) -> None:
    if target.numel() == 0 or target.min() == target.max():
        raise ValueError(f"{what} needs both classes (normal and anomalous) in the ground truth")


# ------------------------------------------------------------------------------------------
# Anomaly detection
# ------------------------------------------------------------------------------------------

def _scores_and_target(scores, truth, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened float scores and 0/1 targets, both classes present (else a ValueError naming ``what``)."""
    target = _flat(truth).round().long()
    _check_both_classes(target, what)
    return _flat(scores).float(), target


def image_auroc(scores, labels) -> float:
    """Image-level AUROC: ``scores`` (N,) higher = more anomalous, ``labels`` (N,) in {0, 1}."""
    return float(binary_auroc(*_scores_and_target(scores, labels, "image AUROC")))


def pixel_auroc(maps, masks) -> float:
    """Pixel-level AUROC over all pixels: ``maps`` and ``masks`` of the same shape (e.g. N x 1 x H x W)."""
    return float(binary_auroc(*_scores_and_target(maps, masks, "pixel AUROC")))


def pixel_ap(maps, masks) -> float:
    """Pixel-level average precision (area under the precision-recall curve)."""
    return float(binary_average_precision(*_scores_and_target(maps, masks, "pixel AP")))


def pixel_f1_max(maps, masks) -> float:
    """The largest pixel-level F1 over all thresholds of ``maps`` (all pixels pooled)."""
    precision, recall, _ = binary_precision_recall_curve(*_scores_and_target(maps, masks, "pixel F1-max"))
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return float(f1.max())


def pixel_f1(pred_masks, masks, threshold: float = 0.5, include_good: bool = False) -> float:
    """DADNet eq. (20)-(22): mean over defective samples of ``2 P_k R_k / (P_k + R_k)``.

    ``pred_masks`` (N, ...) are probabilities or binary masks, binarised at ``threshold``; ``masks``
    (N, ...) are the ground truths. Samples without any defect pixel are left out (eq. 20 is
    undefined there) unless ``include_good``: then a good sample scores 1 when nothing is predicted on
    it and 0 for any false detection, so false alarms on good images count, as the paper says F1
    should reflect them (§3.3). If no sample has a defect pixel, a ``ValueError`` is raised.
    """
    pred = torch.as_tensor(np.asarray(pred_masks) if not isinstance(pred_masks, torch.Tensor) else pred_masks)
    true = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    pred = (pred.detach().cpu().reshape(len(pred), -1).float() >= threshold).float()
    true = (true.detach().cpu().reshape(len(true), -1).float() >= 0.5).float()
    defective = true.sum(1) > 0
    if not bool(defective.any()):
        raise ValueError("pixel F1 (eq. 20) needs at least one sample with defect pixels")
    tp = (pred * true).sum(1)
    fp = (pred * (1 - true)).sum(1)
    fn = ((1 - pred) * true).sum(1)
    # 2PR/(P+R) = 2TP/(2TP+FP+FN); it is 0 when TP = 0 (also when nothing is predicted on a defect)
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1e-12)
    if include_good:
        f1 = torch.where(defective, f1, (fp == 0).float())
        return float(f1.mean())
    return float(f1[defective].mean())


__all__ = ["image_auroc", "pixel_auroc", "pixel_ap", "pixel_f1_max", "pixel_f1"]
