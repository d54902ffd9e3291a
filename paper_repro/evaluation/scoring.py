"""One scoring path for every column of DADNet's Tables 1-4: DADNet and the four baselines alike.

Every method hands over the same predictions (keys of :func:`paper_repro.dadnet.evaluate.predict`):
``score`` (N,) image scores, ``pred`` (N, 1, H, W) anomaly maps, ``label`` (N,), ``mask`` (N, 1, H, W).
:func:`score_predictions` turns them into the paper's three numbers (§3.3) with the functions of
:mod:`paper_repro.evaluation.metrics` - image AUROC, pixel AUROC, pixel F1 (eq. 20) - plus pixel AP and
F1-max, in percent.

Pixel F1 (eq. 20) needs binary masks, hence a threshold, which the paper does not state. Tables 3 and
4 cut every method's map by **one rule**, :data:`ONE_RULE`: the *F1-adaptive* threshold, the map value
that maximises the pixel F1 over the test set (anomalib's post-processor, the rule behind the
baselines' published numbers). Beside it, ``pixel_f1_own_rule`` keeps each method's own rule
(DADNet's probability M_p cut at 0.5, :func:`threshold_for`), and ``pixel_f1_with_good`` counts the
good test images too (a false detection on one scores 0), so false alarms weigh in. Pixel AP and
F1-max are threshold-free.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.classification import binary_precision_recall_curve

from paper_repro.evaluation import metrics

METRICS = ("image_auroc", "pixel_auroc", "pixel_f1")          # Tables 1, 2, 3
EXTRA_METRICS = ("pixel_ap", "pixel_f1_max", "pixel_f1_own_rule", "pixel_f1_with_good")   # not in the paper
ONE_RULE = "f1_adaptive"   # every method's map is binarised by this rule for the tables' pixel F1


def f1_adaptive_threshold(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """The map value that maximises the pixel F1 over all pixels (anomalib's F1AdaptiveThreshold rule)."""
    target = masks.reshape(-1).round().long()
    precision, recall, thresholds = binary_precision_recall_curve(maps.reshape(-1).float(), target)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    best = int(f1[:-1].argmax()) if len(thresholds) else 0  # the last PR point has no threshold
    return float(thresholds[best]) if len(thresholds) else 0.5


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation into [0, 1] (anomalib's post-processing of raw scores); monotone, so
    AUROC, AP and F1-max are unchanged by it."""
    x = x.double()
    lo, hi = x.min(), x.max()
    return ((x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)).float()


def binarisation(pred: dict[str, torch.Tensor], threshold: float | str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(maps, image scores, cut)`` for ``threshold``: a number (the maps must then be probabilities in
    [0, 1]), or ``"f1_adaptive"`` for any maps. For the adaptive rule maps and image scores are first
    min-max normalised over the test set: besides being anomalib's convention, this matters because
    torchmetrics reads values outside [0, 1] as logits and squashes them with a sigmoid, which in
    float32 ties every score above ~17 at 1.0 and would corrupt the AUROCs."""
    maps, masks, scores = pred["pred"].float(), pred["mask"].float(), pred["score"].float()
    if threshold == "f1_adaptive":
        maps, scores = unit_range(maps), unit_range(scores)
        return maps, scores, f1_adaptive_threshold(maps, masks)
    if maps.min() < 0 or maps.max() > 1:
        raise ValueError("maps outside [0, 1] are not probabilities: use threshold='f1_adaptive'")
    return maps, scores, float(threshold)


def score_predictions(pred: dict[str, torch.Tensor], threshold: float | str = 0.5,
                      own_threshold: float | str | None = None) -> dict[str, float]:
    """The paper's metrics (percent) of one method on one category, the maps cut by ``threshold``
    (:func:`binarisation`) for eq. (20), and with ``own_threshold`` also ``pixel_f1_own_rule``."""
    maps, scores, cut = binarisation(pred, threshold)
    masks = pred["mask"].float()
    values = {
        "image_auroc": metrics.image_auroc(scores, pred["label"]),
        "pixel_auroc": metrics.pixel_auroc(maps, masks),
        "pixel_f1": metrics.pixel_f1(maps, masks, threshold=cut),
        "pixel_ap": metrics.pixel_ap(maps, masks),
        "pixel_f1_max": metrics.pixel_f1_max(maps, masks),
        "pixel_f1_with_good": metrics.pixel_f1(maps, masks, threshold=cut, include_good=True),
    }
    if own_threshold is not None:
        own_maps, _, own_cut = binarisation(pred, own_threshold)
        values["pixel_f1_own_rule"] = metrics.pixel_f1(own_maps, masks, threshold=own_cut)
    return {k: 100 * v for k, v in values.items()}


# How each method's map is binarised for eq. (20).
THRESHOLDS = {"DADNet": 0.5, "FastFlow": "f1_adaptive", "PaDiM": "f1_adaptive", "RD": "f1_adaptive",
              "STFPM": "f1_adaptive"}


def threshold_for(method: str) -> float | str:
    """Each method's own rule: DADNet variants (any name not a baseline) 0.5 on M_p; the baselines the
    F1-adaptive cut. The tables' ``pixel_f1`` uses :data:`ONE_RULE` for all; this rule is shown beside it."""
    return THRESHOLDS.get(method, 0.5)
