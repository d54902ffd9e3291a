import numpy as np
import torch

from paper_repro import compose


def test_mask_zero_returns_background_exactly():
    background, foreground = torch.rand(2, 3, 8, 8), torch.randn(2, 3, 8, 8) * 100
    assert torch.equal(compose(background, foreground, torch.zeros(2, 1, 8, 8)), background)


def test_mask_one_returns_foreground_exactly():
    background, foreground = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    assert torch.equal(compose(background, foreground, torch.ones(1, 8, 8)), foreground)


def test_soft_mask_is_the_convex_blend_of_eq_2_and_eq_6():
    background = torch.tensor([0.2, 0.4]).view(1, 2, 1, 1)
    foreground = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    mask = torch.tensor(0.25).view(1, 1, 1, 1)
    out = compose(background, foreground, mask)
    # 0.2 * 0.75 + 1.0 * 0.25 = 0.4 ; 0.4 * 0.75 + 0 = 0.3
    assert torch.allclose(out.flatten(), torch.tensor([0.4, 0.3]))


def test_numpy_images_with_a_single_channel_mask():
    background = np.full((4, 4, 3), 0.5)
    foreground = np.zeros((4, 4, 3))
    mask = np.zeros((4, 4, 1))
    mask[1:3, 1:3] = 1
    out = compose(background, foreground, mask)
    assert out.shape == (4, 4, 3)
    assert np.all(out[1:3, 1:3] == 0) and np.all(out[0] == 0.5)


def test_gradients_reach_foreground_and_mask():
    background = torch.rand(1, 3, 4, 4)
    foreground = torch.rand(1, 3, 4, 4, requires_grad=True)
    mask = torch.full((1, 1, 4, 4), 0.5, requires_grad=True)
    compose(background, foreground, mask).sum().backward()
    assert torch.allclose(foreground.grad, torch.full_like(foreground, 0.5))
    # d/dm [b (1 - m) + f m] = f - b, summed over the three channels
    assert torch.allclose(mask.grad, (foreground - background).sum(1, keepdim=True).detach(), atol=1e-6)
