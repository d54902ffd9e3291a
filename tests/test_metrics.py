"""paper_repro.metrics against scikit-learn and hand computations on random inputs."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from paper_repro.evaluation import metrics


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_image_auroc_matches_sklearn(rng):
    labels = rng.integers(0, 2, 50)
    scores = rng.random(50) + 0.3 * labels
    assert metrics.image_auroc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-6)


def test_pixel_auroc_and_ap_match_sklearn(rng):
    masks = (rng.random((4, 1, 16, 16)) > 0.8).astype(np.float32)
    maps = rng.random((4, 1, 16, 16)).astype(np.float32) + 0.5 * masks
    assert metrics.pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-6)
    assert metrics.pixel_ap(maps, masks) == pytest.approx(
        average_precision_score(masks.ravel(), maps.ravel()), abs=1e-5)


def test_pixel_f1_max_matches_sklearn_curve(rng):
    masks = (rng.random((3, 1, 8, 8)) > 0.7).astype(np.float32)
    maps = rng.random((3, 1, 8, 8)).astype(np.float32) + 0.4 * masks
    p, r, _ = precision_recall_curve(masks.ravel(), maps.ravel())
    expected = np.max(2 * p * r / np.maximum(p + r, 1e-12))
    assert metrics.pixel_f1_max(maps, masks) == pytest.approx(expected, abs=1e-5)


def test_pixel_f1_is_eq20_mean_of_per_sample_f1(rng):
    masks = (rng.random((5, 1, 12, 12)) > 0.75).astype(np.float32)
    masks[2] = 0  # a defect-free sample: eq. (20) is undefined there, so it is left out
    probs = rng.random((5, 1, 12, 12)).astype(np.float32) * 0.6 + 0.5 * masks
    expected = np.mean([f1_score(masks[k].ravel(), probs[k].ravel() >= 0.5, zero_division=0)
                        for k in range(5) if masks[k].sum() > 0])
    value = metrics.pixel_f1(torch.tensor(probs), torch.tensor(masks))
    assert value == pytest.approx(expected, abs=1e-6)
    assert 0.0 <= value <= 1.0


def test_pixel_f1_hand_computed_and_edge_cases():
    gt = torch.tensor([[1, 1, 0, 0]], dtype=torch.float32)
    pred = torch.tensor([[1, 0, 1, 0]], dtype=torch.float32)  # TP 1, FP 1, FN 1 -> P = R = 1/2
    assert metrics.pixel_f1(pred, gt) == pytest.approx(0.5)
    assert metrics.pixel_f1(torch.zeros(1, 4), gt) == 0.0  # nothing predicted on a defect: F1 = 0
    with pytest.raises(ValueError):
        metrics.pixel_f1(pred, torch.zeros(1, 4))


def test_pixel_f1_with_good_images_counts_false_detections():
    gt = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    pred = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.float32)
    assert metrics.pixel_f1(pred, gt) == pytest.approx(0.5)                     # the defective image only
    # + a clean good image (1) and a good image with one false pixel (0): (0.5 + 1 + 0) / 3
    assert metrics.pixel_f1(pred, gt, include_good=True) == pytest.approx(0.5)
    assert metrics.pixel_f1(pred[:2], gt[:2], include_good=True) == pytest.approx(0.75)


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError):
        metrics.image_auroc(torch.rand(4), torch.zeros(4))
