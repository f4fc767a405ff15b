"""Adversarial losses on raw discriminator scores: hinge (PEN-Net, GDN Adv), LSGAN (LGNet) and the
non-saturating GAN. The discriminator loss is 0.5 * (real + fake), as in PEN-Net and LGNet."""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("hinge", "lsgan", "nsgan")


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"adversarial loss must be one of {KINDS}, got {kind!r}")


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    _check(kind)
    if kind == "hinge":
        return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
    if kind == "lsgan":
        return 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())
    return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def generator_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    _check(kind)
    if kind == "hinge":
        return -fake.mean()
    if kind == "lsgan":
        return ((fake - 1) ** 2).mean()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
