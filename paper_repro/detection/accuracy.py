"""Accuracy on CODEBRIM as Defect-GAN's Table 3 reports it.

CODEBRIM is multi-label (a crop may show several defects), and its authors (Mundt et al., CVPR 2019)
count a sample as correct only when the *whole* predicted label vector equals the ground truth:
the exact-match ratio, also called multi-target or subset accuracy. Each output is thresholded at
``threshold`` (0.5 on probabilities, i.e. 0 on logits).
"""
from __future__ import annotations

import torch


def predict_labels(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Multi-hot predictions: sigmoid(logits) >= threshold."""
    return (torch.sigmoid(logits.float()) >= threshold).float()


def exact_match_accuracy(logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of samples whose thresholded prediction equals the label vector in every class."""
    if logits.shape != labels.shape or logits.dim() != 2:
        raise ValueError(f"expected logits and labels of the same (N, C) shape, got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    correct = (predict_labels(logits, threshold) == labels.round()).all(dim=1)
    return correct.float().mean().item()


__all__ = ["predict_labels", "exact_match_accuracy"]
