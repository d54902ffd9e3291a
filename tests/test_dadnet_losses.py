"""Eq. (7)-(12) against hand computations."""
import math

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from paper_repro.dadnet.losses import focal_loss, l2_loss, reconstruction_loss, ssim_loss


def test_l2_plus_ssim_on_constant_images_by_hand():
    """For constant images I = a, R = b: sigma terms vanish and SSIM = (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b = 0.6, 0.4
    image = torch.full((1, 3, 16, 16), a, dtype=torch.float64)  # float64: no cancellation in sigma^2
    recon = torch.full((1, 3, 16, 16), b, dtype=torch.float64)
    c1 = 0.01 ** 2
    ssim = (2 * a * b + c1) / (a * a + b * b + c1)
    l2 = (a - b) ** 2
    assert float(l2_loss(image, recon)) == pytest.approx(l2)
    assert float(ssim_loss(image, recon)) == pytest.approx(1 - ssim, abs=1e-6)
    assert float(reconstruction_loss(image, recon, 0.85)) == pytest.approx(0.15 * l2 + 0.85 * (1 - ssim), abs=1e-6)


def test_ssim_agrees_with_torchmetrics():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    ours = 1 - float(ssim_loss(x, y))
    # torchmetrics crops the border instead of padding; compare on the interior via a loose tolerance
    assert ours == pytest.approx(float(tm_ssim(y, x, data_range=1.0)), abs=0.03)


def test_focal_loss_by_hand():
    # one pixel of each class: logits (normal, anomalous)
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # shape (1, 2, 1, 2)
    mask = torch.tensor([[[[0.0, 1.0]]]])
    p0 = math.exp(2) / (math.exp(2) + 1)   # pixel 0 is normal: p = softmax(2, 0)[0]
    p1 = math.exp(1) / (math.exp(1) + 1)   # pixel 1 is anomalous: p = softmax(0, 1)[1]
    fl = lambda p: -0.25 * (1 - p) ** 2 * math.log(p)  # noqa: E731 eq. (11)
    expected = (fl(p0) + fl(p1)) / 2        # eq. (12)
    assert float(focal_loss(logits, mask, beta=0.25, delta=2.0)) == pytest.approx(expected, rel=1e-5)
