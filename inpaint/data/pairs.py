"""Image-mask pairs for training and testing.

Training: image i is paired with a mask drawn from (seed, epoch, i) alone, and augmented (the variant's
`augment`, inpaint/data/augment.py) with draws from the same generator, so the same params give the same
pairs on any number of workers. Testing: the recorded test pairs (inpaint/data/test_pairs.py), never augmented.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from inpaint.data.augment import augment_image, augment_mask
from inpaint.variants.base import Augment


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 -> float 3 x H x W in [0, 1]."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255)  # copy: the source is a read-only memmap


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """uint8 H x W in {0, 1} -> float 1 x H x W, 1 = hole."""
    return torch.from_numpy(np.array(mask)).unsqueeze(0).float()


class TrainPairs(Dataset):
    def __init__(self, images: np.ndarray, masks, seed: int, augment: Augment = Augment()):
        if images.shape[1:3] != masks[0].shape:
            raise ValueError(f"training images are {images.shape[1:3]} but masks are {masks[0].shape}: "
                             "re-run the prepare and masks stages with the same data.image_size")
        self.images, self.masks, self.seed, self.epoch, self.augment = images, masks, seed, 0, augment

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        j = int(rng.integers(len(self.masks)))
        image, mask = self.images[i], self.masks[j]
        return to_tensor(augment_image(image, self.augment, rng)), mask_tensor(augment_mask(mask, self.augment, rng))


class TestPairs(Dataset):
    """The recorded test pairs of one bin: rows of (image index, mask index)."""

    def __init__(self, images: np.ndarray, masks, pairs: np.ndarray):
        self.images, self.masks, self.pairs = images, masks, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, j = self.pairs[k]
        return to_tensor(self.images[int(i)]), mask_tensor(self.masks[int(j)])


class ValidationPairs(Dataset):
    """Held-out training images, each with one training mask fixed by `seed` (not by the epoch), so every
    evaluation of every trial scores the same pairs."""

    def __init__(self, images: np.ndarray, masks, seed: int):
        self.images, self.masks = images, masks
        self.mask_ids = np.random.default_rng(seed).integers(len(masks), size=len(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_tensor(self.images[k]), mask_tensor(self.masks[int(self.mask_ids[k])])
