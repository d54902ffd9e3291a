"""Defect-GAN objectives (eq. 5-12): each term against a hand computation on tiny tensors."""
import math

import pytest
import torch

from paper_repro.config import get_config
from paper_repro.defect_gan import losses
from paper_repro.defect_gan.generator import GeneratorOutput


def test_critic_and_generator_adversarial_terms():
    real, fake = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.5, -0.5], [2.0, 0.0]])
    assert losses.critic_loss(real, fake).item() == pytest.approx((0.5 - 0.5 + 2.0 + 0.0) / 4 - 2.0)
    assert losses.generator_adv_loss(fake).item() == pytest.approx(-0.5)


def test_classification_loss_is_multilabel_bce_summed_over_classes():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    by_hand = (-math.log(sig(0.0)) - math.log(1 - sig(2.0)) - math.log(sig(-1.0)) - math.log(sig(1.0))) / 2
    assert losses.classification_loss(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)


def test_reconstruction_and_spatial_terms():
    x = torch.tensor([[[[0.0, 1.0], [-1.0, 0.5]]]])
    y = torch.tensor([[[[0.5, 1.0], [0.0, 0.0]]]])
    assert losses.reconstruction_loss(x, y).item() == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)  # eq. 8
    m_d = torch.tensor([[[[0.0, 0.2], [0.4, 1.0]]]])
    m_r = torch.tensor([[[[0.1, 0.2], [0.0, 0.5]]]])
    assert losses.sd_cycle_loss(m_d, m_r).item() == pytest.approx((0.1 + 0 + 0.4 + 0.5) / 4)  # eq. 9
    assert losses.sd_constraint_loss(m_d, m_r).item() == pytest.approx(1.6 / 4 + 0.8 / 4)  # eq. 10


def test_gradient_penalty_matches_autograd_on_a_toy_critic():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    critic = lambda x: (torch.tanh(x) * w).sum(dim=(1, 2, 3), keepdim=True)  # noqa: E731
    real, fake = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    alpha = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    expected = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert losses.gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(expected.item(), rel=1e-6)
    # A linear critic has gradient w everywhere: the penalty is (||w|| - 1)^2 in closed form.
    linear = lambda x: (x * w).sum(dim=(1, 2, 3))  # noqa: E731
    assert losses.gradient_penalty(linear, real, fake, alpha).item() == pytest.approx(
        (w.norm().item() - 1) ** 2, rel=1e-5)


class _FixedG(torch.nn.Module):
    """A fake generator: output = input + 0.1, map = 0.25 on the first call and 0.5 on the second."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, control):
        self.calls += 1
        m = torch.full_like(x[:, :1], 0.25 if self.calls % 2 else 0.5)
        return GeneratorOutput(x + 0.1, torch.zeros_like(x), m)


def _fixed_d(x):
    return x.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1), x.flatten(1)[:, :2]


@pytest.mark.parametrize("spatial", [True, False])
def test_generator_loss_is_eq12_over_both_cycles(spatial):
    n, d = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4) * 0.5
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cfg = get_config("defect_gan", "full", sc=spatial)
    total, logs = losses.generator_loss(_FixedG(), _fixed_d, n, d, c, c.flip(0), cfg)
    first = torch.cat([n, d]) + 0.1
    adv = -first.mean()
    cls = losses.classification_loss(first.flatten(1)[:, :2], torch.cat([c.flip(0), torch.zeros_like(c)]))
    rec = 0.2  # x -> x + 0.1 -> x + 0.2
    sd_cyc, sd_con = 0.25, 0.25 + 0.5
    expected = adv + 5 * cls + 5 * rec + (5 * sd_cyc + 1 * sd_con if spatial else 0)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["G/rec"] == pytest.approx(rec, rel=1e-5)
    assert logs["G/sd_cyc"] == pytest.approx(sd_cyc) and logs["G/sd_con"] == pytest.approx(sd_con)


def test_discriminator_loss_is_eq11_with_gradient_penalty():
    torch.manual_seed(0)
    n, d = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4) * 0.5
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    state = torch.get_rng_state()
    total, logs = losses.discriminator_loss(_FixedG(), _fixed_d, n, d, c, c.flip(0),
                                              get_config("defect_gan", "full"))
    real = torch.cat([n, d])
    adv = (real + 0.1).mean() - real.mean()
    torch.set_rng_state(state)
    gp = losses.gradient_penalty(lambda y: _fixed_d(y)[0], real, real + 0.1)
    cls = losses.classification_loss(real.flatten(1)[:, :2], torch.cat([torch.zeros_like(c), c]))
    assert logs["D/adv"] == pytest.approx(adv.item(), rel=1e-5)
    assert logs["D/gp"] == pytest.approx(gp.item(), rel=1e-5)
    assert total.item() == pytest.approx((adv + 10 * gp + 2 * cls).item(), rel=1e-5)
