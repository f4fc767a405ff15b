"""Pixel reconstruction losses. Tensors are B x C x H x W in [0, 1]; masks B x 1 x H x W, 1 = hole.

Three normalisations exist in the papers' code and all three are kept, named after where they come from:
- `weighted_l1`: mean over all B*C*H*W elements of W * |out - gt| (GDN; also PConv's hole/valid terms,
  which divide by the whole image size, with W = 6 in the hole and 1 outside).
- `masked_l1_per_image`: per image sum(|a - b| * m) / (3 * sum(m)), averaged over the batch (LGNet).
- `masked_l1_per_batch`: mean(|a - b| * m) / mean(m) over the whole batch (PEN-Net); a part of the batch
  (a worker's or a micro-batch's) divides by the whole batch's mean(m).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_l1(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (weight * (output - target).abs()).mean()


def hole_valid_weight(mask: torch.Tensor, hole_weight: float, valid_weight: float) -> torch.Tensor:
    return hole_weight * mask + valid_weight * (1 - mask)


def weight_mapping(v: torch.Tensor, kind: str, exp_base: float = 10.0) -> torch.Tensor:
    """GDN's mapping from the detector's hole probability V to a per-pixel weight: x^V or 1 + V."""
    if kind == "exp":
        if not exp_base > 1:
            raise ValueError(f"exponential weight mapping needs exp_base > 1, got {exp_base}")
        return exp_base ** v
    if kind == "linear":
        return 1 + v
    raise ValueError(f"weight mapping must be 'exp' or 'linear', got {kind!r}")


def masked_l1_per_image(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    diff = ((a - b).abs() * mask).flatten(1).sum(1)
    area = mask.flatten(1).sum(1) * a.shape[1]
    return (diff / (area + 1e-12)).mean()


def masked_l1_per_batch(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor,
                        area: torch.Tensor | float | None = None) -> torch.Tensor:
    """`area`: the mean of the mask over the whole batch when `mask` is a part of it (default: `mask`'s)."""
    area = mask.mean() if area is None else torch.as_tensor(area, dtype=mask.dtype, device=mask.device)
    return ((a - b).abs() * mask).mean() / area.clamp_min(1e-12)


def pyramid_l1(pyramid: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """PEN-Net: L1 of each pyramid output against the target bilinearly resized to its size (no mask)."""
    total = target.new_zeros(())
    for out in pyramid:
        small = F.interpolate(target, size=out.shape[-2:], mode="bilinear", align_corners=True)
        total = total + (out - small).abs().mean()
    return total


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """mean|d/dy| + mean|d/dx| (LGNet applies it to merged * mask)."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., 1:] - image[..., :-1]).abs().mean()
