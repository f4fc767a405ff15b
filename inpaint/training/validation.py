"""The validation split that Tune's trials are judged on, and its scores.

Held out from the TRAINING images (the test pairs stay untouched until evaluation) by source photo: whole
photos, in an order drawn with `validation.seed`, until at least `validation.images` images are held out.
No validation image shares a photo with a training image (the sample dataset cuts several crops from each
photo), and the draw spreads the split over the categories of a categorised dataset (Places2) instead of
taking the last one. Each held-out image is paired with a training mask drawn with the same seed. Scored as
the evaluator scores the test pairs (inpaint/evaluation/evaluate.py): on the composite rounded to uint8, l1 (%), PSNR
and SSIM per image, averaged.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from inpaint.data.pairs import ValidationPairs
from inpaint.evaluation import metrics
from inpaint.frameworks.base import composite, masked_input


def held_out(sources: pd.Series, images: int, seed: int) -> np.ndarray:
    """Boolean mask over the training images: whole source photos, drawn in a seeded order, until at least
    `images` images are held out."""
    photos = sources.unique()
    order = np.random.default_rng(seed).permutation(len(photos))
    counts = sources.value_counts()
    taken, total = [], 0
    for i in order:
        if total >= images:
            break
        taken.append(photos[i])
        total += int(counts[photos[i]])
    chosen = sources.isin(taken).to_numpy()
    if chosen.all():
        raise ValueError(f"tune.validation.images={images} leaves no training image (the training split has "
                         f"{len(sources)} images from {len(photos)} photos)")
    return chosen


class Validation:
    def __init__(self, images: np.ndarray, sources: pd.Series, masks, images_held_out: int, seed: int, every: int):
        """`sources`: each training image's source photo (the prepared manifest's `source`, in index order)."""
        chosen = held_out(sources.reset_index(drop=True), images_held_out, seed)
        self.pairs = ValidationPairs(images[np.flatnonzero(chosen)], masks, seed)
        self.train_index = np.flatnonzero(~chosen)
        self.every = every

    @classmethod
    def from_config(cls, images: np.ndarray, manifest: pd.DataFrame, masks, config: dict) -> "Validation":
        """`config` is the loop config's `validation` entry: {images, seed, every}; `manifest` the prepared one."""
        train = manifest[manifest.split == "train"].sort_values("index")
        return cls(images, train.source, masks, config["images"], config["seed"], config["every"])

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
