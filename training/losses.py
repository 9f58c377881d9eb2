"""GAN losses and regularisers shared by the GAN trainers.

Adversarial losses take lists of logit tensors (one per discriminator output) and average over them:
- ``vanilla``: non-saturating binary cross-entropy (Goodfellow et al.);
- ``ragan``: relativistic average (Jolicoeur-Martineau 2018, as ESRGAN uses it);
- ``hinge``: hinge loss (as SAGAN / spectral-norm GANs use it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_LOSSES = ("vanilla", "ragan", "hinge")


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def d_loss(kind: str, real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Discriminator loss; ``fake`` must come from detached generator outputs."""
    total = 0.0
    for r, f in zip(real, fake):
        if kind == "vanilla":
            total = total + _bce(r, True) + _bce(f, False)
        elif kind == "ragan":
            total = total + 0.5 * (_bce(r - f.mean(0, keepdim=True), True) + _bce(f - r.mean(0, keepdim=True), False))
        elif kind == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            raise ValueError(f"unknown GAN loss '{kind}'")
    return total / len(real)


def g_loss(kind: str, real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Generator's adversarial loss; ``real`` logits are only used by the relativistic loss (detach them)."""
    total = 0.0
    for r, f in zip(real, fake):
        if kind == "vanilla":
            total = total + _bce(f, True)
        elif kind == "ragan":
            total = total + 0.5 * (_bce(r - f.mean(0, keepdim=True), False) + _bce(f - r.mean(0, keepdim=True), True))
        elif kind == "hinge":
            total = total - f.mean()
        else:
            raise ValueError(f"unknown GAN loss '{kind}'")
    return total / len(fake)


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator features of real and generated images (real ones detached)."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real, fake)) / len(fake)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def cutmix_mask(n: int, h: int, w: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """A [n,1,h,w] mask, 1 inside one random box per image (its area uniform in [0,1]), else 0."""
    mask = torch.zeros(n, 1, h, w, device=device)
    lam = torch.rand(n, generator=gen)
    for i in range(n):
        bh, bw = int(h * lam[i].sqrt()), int(w * lam[i].sqrt())
        y = int(torch.randint(h - bh + 1, (1,), generator=gen))
        x = int(torch.randint(w - bw + 1, (1,), generator=gen))
        mask[i, :, y : y + bh, x : x + bw] = 1.0
    return mask


def cutmix_losses(disc, real: torch.Tensor, fake: torch.Tensor, real_pixel: torch.Tensor, fake_pixel: torch.Tensor,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """U-Net GAN CutMix regularisation: the per-pixel head must label a real/fake collage by its mask
    (real where the mask is 1), and its output on the collage must equal the collage of its outputs
    (consistency). Returns (per-pixel loss, consistency loss)."""
    mask = cutmix_mask(real.shape[0], real.shape[2], real.shape[3], gen, real.device)
    mixed = mask * real + (1 - mask) * fake
    (_, mixed_pixel), _ = disc(mixed)
    pixel = F.binary_cross_entropy_with_logits(mixed_pixel, mask)
    target = mask * real_pixel + (1 - mask) * fake_pixel
    consistency = F.mse_loss(mixed_pixel, target.detach())
    return pixel, consistency
