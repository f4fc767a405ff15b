"""The pixel detector's losses (GDN Eq. 4-6) on 2-channel logits against the mask as a weak label.

With p0 = P(valid), p1 = P(hole) (softmax, clipped to [1e-8, 1 - 1e-8]), y = mask and alpha = the
per-image hole ratio:
- focal: -alpha (1-y) p1^g log p0 - (1-alpha) y p0^g log p1   (the authors' code: valid class weighted by
  the hole ratio, hole class by its complement)
- bce (balanced cross entropy): the focal loss with g = 0
- ce: -(1-y) log p0 - y log p1
each averaged over B*H*W.
"""
from __future__ import annotations

import torch

EPS = 1e-8


def detector_loss(logits: torch.Tensor, mask: torch.Tensor, kind: str = "focal", gamma: float = 2.0) -> torch.Tensor:
    if logits.shape[1] != 2 or logits.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"detector loss: logits {tuple(logits.shape)} and mask {tuple(mask.shape)} do not match "
                         "(expected B x 2 x H x W and B x 1 x H x W)")
    prob = torch.softmax(logits, dim=1).clamp(EPS, 1 - EPS)
    p0, p1 = prob[:, 0:1], prob[:, 1:2]
    y = mask
    if kind == "ce":
        return -((1 - y) * p0.log() + y * p1.log()).mean()
    if kind not in ("focal", "bce"):
        raise ValueError(f"detector loss must be 'focal', 'bce' or 'ce', got {kind!r}")
    g = gamma if kind == "focal" else 0.0
    alpha = mask.mean(dim=(1, 2, 3), keepdim=True)  # per-image hole ratio
    return -(alpha * (1 - y) * p1**g * p0.log() + (1 - alpha) * y * p0**g * p1.log()).mean()
