"""The validation split that Tune's trials are judged on, and its scores.

Held out from the TRAINING images (the test pairs stay untouched until evaluation): the last
`validation.images` prepared training images, which the trial then does not train on, each paired with a
training mask drawn with `validation.seed`. Scored as the evaluator scores the test pairs (inpaint/evaluate.py):
on the composite rounded to uint8, l1 (%), PSNR and SSIM per image, averaged.
"""
from __future__ import annotations

import numpy as np
import torch

from inpaint import metrics
from inpaint.data.pairs import ValidationPairs
from inpaint.frameworks.base import composite, masked_input


class Validation:
    def __init__(self, images: np.ndarray, masks, images_held_out: int, seed: int, every: int):
        if images_held_out >= len(images):
            raise ValueError(f"tune.validation.images={images_held_out} leaves no training image "
                             f"(the training split has {len(images)})")
        self.pairs = ValidationPairs(images[-images_held_out:], masks, seed)
        self.train_images = images[:-images_held_out]
        self.every = every

    @classmethod
    def from_config(cls, images: np.ndarray, masks, config: dict) -> "Validation":
        """`config` is the loop config's `validation` entry: {images, seed, every}."""
        return cls(images, masks, config["images"], config["seed"], config["every"])

    def due(self, step: int) -> bool:
        return step % self.every == 0

    @torch.no_grad()
    def score(self, framework, device: torch.device, batch_size: int = 16) -> dict[str, float]:
        """`val/l1`, `val/psnr`, `val/ssim` of the generator in eval mode (back in training mode after)."""
        generator = framework.networks["generator"]
        framework.train(False)
        rows = []
        for image, mask in torch.utils.data.DataLoader(self.pairs, batch_size=batch_size):
            image, mask = image.to(device), mask.to(device)
            out = generator(masked_input(image, mask), mask)["output"]
            for a, g in zip(metrics.to_uint8(composite(out, image, mask)), metrics.to_uint8(image)):
                rows.append((metrics.l1_percent(a, g), metrics.psnr(a, g), metrics.ssim(a, g)))
        framework.train(True)
        l1, psnr, ssim = np.mean(rows, axis=0)
        return {"val/l1": float(l1), "val/psnr": float(psnr), "val/ssim": float(ssim)}
