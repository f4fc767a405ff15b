"""Classical fills as rows of every quality table: OpenCV's Telea and Navier-Stokes inpainting and a
mean-colour fill. They need no training, so they anchor every table: a trained model that does not beat
them has learnt nothing.

Each is an nn.Module with the generators' interface (masked input, mask with 1 = hole) -> {"output": ...},
so the project's evaluator scores it on the same recorded test pairs as every variant.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

RADIUS = 3  # cv2.inpaint's neighbourhood radius in pixels (OpenCV's documented example value)


class OpenCVInpaint(nn.Module):
    """cv2.inpaint on each image (uint8, as OpenCV requires): Telea's fast marching or Navier-Stokes."""

    def __init__(self, method: int, radius: int = RADIUS):
        super().__init__()
        self.method, self.radius = method, radius

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        images = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        holes = (mask[:, 0] > 0.5).to(torch.uint8).mul(255).cpu().numpy()
        out = np.stack([cv2.inpaint(np.ascontiguousarray(img), hole, self.radius, self.method)
                        for img, hole in zip(images, holes)])
        return {"output": torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255).to(x.device)}


class MeanColourFill(nn.Module):
    """Each hole filled with the mean colour of the image's known pixels."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        known = 1 - mask
        mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
        return {"output": x * known + mean * mask}


# name (evals/baselines/<name>.json) -> (row label, builder)
BASELINES = {
    "telea": ("OpenCV Telea", lambda: OpenCVInpaint(cv2.INPAINT_TELEA)),
    "navier_stokes": ("OpenCV Navier-Stokes", lambda: OpenCVInpaint(cv2.INPAINT_NS)),
    "mean_colour": ("Mean colour", MeanColourFill),
}


def build(name: str) -> nn.Module:
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name][1]().eval()
