"""Training-time augmentation of image-mask pairs, as the authors' data loaders do it (docs/departures.md).

- LGNet (pix2pix's transforms): the image and the mask are each flipped horizontally with probability 0.5,
  independently of one another.
- PEN-Net: the image is flipped, then ColorJitter(0.05, 0.05, 0.05, 0.05) (the four adjustments in a random
  order, as torchvision does); the mask is flipped on its own, rotated counter-clockwise by a random integer
  angle in [0, 45] degrees on an expanded canvas, dilated by a 3x3 max filter, then resized back to the
  working size with nearest neighbours (so a rotated mask also shrinks a little, as theirs does).
- GDN: nothing.
The operations are PIL's, as in the authors' code; every draw comes from the numpy Generator the caller
passes (seeded by train.seed, epoch and index in TrainPairs), never from a global RNG.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from inpaint.variants.base import Augment


def augment_image(rgb: np.ndarray, cfg: Augment, rng: np.random.Generator) -> np.ndarray:
    """uint8 H x W x 3 -> uint8 H x W x 3: flip, then colour jitter."""
    if cfg.image_flip and rng.random() < cfg.image_flip:
        rgb = rgb[:, ::-1]
    if cfg.color_jitter:
        # here, not at the top: torchvision imports torch._dynamo (2 s), and the stages that import this
        # module only for the test pairs (baselines, report, evaluate) do not use torchvision
        import torchvision.transforms.functional as TF

        x = cfg.color_jitter
        image = Image.fromarray(np.ascontiguousarray(rgb))
        factors = {"brightness": rng.uniform(1 - x, 1 + x), "contrast": rng.uniform(1 - x, 1 + x),
                   "saturation": rng.uniform(1 - x, 1 + x), "hue": rng.uniform(-x, x)}
        for name in rng.permutation(list(factors)):
            image = getattr(TF, f"adjust_{name}")(image, factors[name])
        rgb = np.asarray(image)
    return rgb


def augment_mask(mask: np.ndarray, cfg: Augment, rng: np.random.Generator) -> np.ndarray:
    """uint8 H x W in {0, 1} (1 = hole) -> the same: flip, rotation on an expanded canvas, dilation, nearest
    resize back to H x W."""
    if cfg.mask_flip and rng.random() < cfg.mask_flip:
        mask = mask[:, ::-1]
    if not (cfg.mask_rotate or cfg.mask_dilate):
        return mask
    h, w = mask.shape
    image = Image.fromarray(np.ascontiguousarray(mask) * np.uint8(255))
    if cfg.mask_rotate:
        image = image.rotate(int(rng.integers(0, cfg.mask_rotate + 1)), expand=True)  # nearest, filled as valid
    if cfg.mask_dilate:
        image = image.filter(ImageFilter.MaxFilter(cfg.mask_dilate))
    image = image.resize((w, h), Image.Resampling.NEAREST)
    return (np.asarray(image) > 127).astype(np.uint8)
