"""Defect-GAN's training objectives (§3.1 eq. 5-12, §4.1), one small function per term.

Both cycles, defacement n → d → n̂ and restoration d → n → d̂, run every step on one batch: the
generator sees ``cat(n, d_real)`` with targets ``cat(c, 0)`` and then its own outputs with targets
``cat(0, c')``, so every term below covers both cycles at once. Label vectors are over the C
defect classes; a normal image is the all-zero vector.

Eq. (5) is replaced by WGAN-GP as in §4.1 (Arjovsky et al. 2017, Gulrajani et al. 2017).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from paper_repro.config import DefectGANConfig


# ---- single terms --------------------------------------------------------------------------
def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """-L_adv for D under WGAN: E[D_src(fake)] - E[D_src(real)] (eq. 5 as in §4.1)."""
    return fake_scores.mean() - real_scores.mean()


def generator_adv_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_adv for G under WGAN: -E[D_src(fake)]."""
    return -fake_scores.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP: E[(||∇_x̂ D_src(x̂)||_2 − 1)^2] at x̂ = α·real + (1 − α)·fake, α ~ U(0, 1) per sample.

    ``critic`` maps images to patch scores; the gradient is that of their sum, its norm taken per
    sample over all pixels and channels (as in StarGAN's solver).
    """
    real, fake = real.detach().float(), fake.detach().float()
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    with torch.autocast(real.device.type, enabled=False):  # float32 even under AMP
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        scores = critic(x_hat).float()
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log D_cls(c | x) for multi-label c (eq. 6/7): binary cross-entropy summed over the C classes,
    averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / logits.shape[0]


def reconstruction_loss(x: torch.Tensor, x_cycled: torch.Tensor) -> torch.Tensor:
    """L_rec = E ||x − x̂||_1 (eq. 8), as a mean over pixels."""
    return (x - x_cycled).abs().mean()


def sd_cycle_loss(deface_map: torch.Tensor, restore_map: torch.Tensor) -> torch.Tensor:
    """L_sd-cyc = E ||m_d − m_n̂||_1 (eq. 9): the restoration must repaint where the defacement painted."""
    return (deface_map - restore_map).abs().mean()


def sd_constraint_loss(deface_map: torch.Tensor, restore_map: torch.Tensor) -> torch.Tensor:
    """L_sd-con = E[||m_d − 0||_1 + ||m_n̂ − 0||_1] (eq. 10): keep both maps small."""
    return deface_map.abs().mean() + restore_map.abs().mean()


# ---- one step of each player ----------------------------------------------------------------
def _both_cycles_first_half(generator, normal, defect, defect_labels, target_labels):
    """n → d with target c, and d_real → n with target 0, in one generator call (eq. 1-4)."""
    x = torch.cat([normal, defect])
    targets = torch.cat([target_labels, torch.zeros_like(defect_labels)])
    return x, targets, generator(x, targets)


def discriminator_loss(generator, discriminator, normal, defect, defect_labels, target_labels,
                       cfg: DefectGANConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """L_D = -L_adv + λ_cls^r L_cls^r (eq. 11), with WGAN-GP; real images of both domains are
    classified to their own labels (normal = 0). The λs are ``cfg``'s."""
    with torch.no_grad():
        x, _, out = _both_cycles_first_half(generator, normal, defect, defect_labels, target_labels)
    fake = out.image.detach()
    real_labels = torch.cat([torch.zeros_like(defect_labels), defect_labels])
    src, cls = discriminator(torch.cat([x, fake]))
    src_real, src_fake = src.split(x.shape[0])
    adv = critic_loss(src_real, src_fake)
    gp = gradient_penalty(lambda y: discriminator(y)[0], x, fake)
    cls_real = classification_loss(cls[: x.shape[0]], real_labels)
    total = adv + cfg.lambda_gp * gp + cfg.lambda_cls_real * cls_real
    return total, {"D/adv": adv.item(), "D/gp": gp.item(), "D/cls_real": cls_real.item(),
                   "D/total": total.item()}


def generator_loss(generator, discriminator, normal, defect, defect_labels, target_labels,
                   cfg: DefectGANConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """L_G (eq. 12) over both cycles: adversarial, L_cls^f (eq. 7), L_rec (eq. 8), and with LWC+SC
    L_sd-cyc (eq. 9) and L_sd-con (eq. 10). The λs and the SC switch are ``cfg``'s."""
    x, targets, first = _both_cycles_first_half(generator, normal, defect, defect_labels, target_labels)
    # Second half: d → n̂ (target 0) and n → d̂ (target c', the real defect's own labels).
    back_targets = torch.cat([torch.zeros_like(defect_labels), defect_labels])
    second = generator(first.image, back_targets)
    src, cls = discriminator(first.image)
    adv = generator_adv_loss(src)
    cls_fake = classification_loss(cls, targets)
    rec = reconstruction_loss(x, second.image)
    total = adv + cfg.lambda_cls_fake * cls_fake + cfg.lambda_rec * rec
    logs = {"G/adv": adv.item(), "G/cls_fake": cls_fake.item(), "G/rec": rec.item()}
    if first.mask is not None:
        # first.mask = (m_d, m_n), second.mask = (m_n̂, m_d̂): defacement vs restoration maps.
        sd_cyc = sd_cycle_loss(first.mask, second.mask)
        sd_con = sd_constraint_loss(first.mask, second.mask)
        logs.update({"G/sd_cyc": sd_cyc.item(), "G/sd_con": sd_con.item(),
                     "G/mask_mean": first.mask.mean().item()})
        if cfg.sc:
            total = total + cfg.lambda_sd_cyc * sd_cyc + cfg.lambda_sd_con * sd_con
    logs["G/total"] = total.item()
    return total, logs
