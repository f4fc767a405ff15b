"""What every variant's settings share: the strict base of each params section, the optimiser and the
augmentation blocks, and `VariantBase`, the base of every framework's settings schema.

Torch-free: params validation (every stage) imports it through inpaint/config.py.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    """A params section: unknown keys are errors, a validated section does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Optimiser(Strict):
    lr_g: Annotated[float, Field(gt=0)] = 1e-4
    lr_d: Annotated[float, Field(gt=0)] = 1e-5
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.0
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.9


class Augment(Strict):
    """Training-time augmentation (inpaint/data/pairs.py), every draw seeded by (train.seed, epoch, index).
    Each framework's default is its authors' choice: GDN none, LGNet a random horizontal flip of images and
    masks, PEN-Net flip + ColorJitter 0.05 on images and flip / rotation / dilation on masks."""

    image_flip: Annotated[float, Field(ge=0, le=1)] = 0.0  # probability of a horizontal flip of the image
    color_jitter: Annotated[float, Field(ge=0, lt=0.5)] = 0.0  # ColorJitter(x, x, x, x): brightness, contrast, ...
    mask_flip: Annotated[float, Field(ge=0, le=1)] = 0.0  # the mask's own flip (independent of the image's)
    mask_rotate: Annotated[int, Field(ge=0, le=180)] = 0  # degrees: a random integer in [0, x], expanded canvas
    mask_dilate: Annotated[int, Field(ge=0)] = 0  # a max filter of this odd size over the holes (0: off)

    @field_validator("mask_dilate")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v and v % 2 == 0:
            raise ValueError(f"the dilation's max filter needs an odd size (or 0 for none), got {v}")
        return v


class VariantBase(Strict):
    """What every variant has besides its framework's settings: train settings laid over the train section
    (and over the profile's framework_train), e.g. `train: {batch_size: 4}`, and its augmentation.

    A framework's schema adds `framework: Literal["<its name>"]` (the key params.yaml selects it by) and its
    networks and loss settings: `generator`, and `discriminator` or `detector` when it trains one."""

    train: dict[str, Any] = {}
    augment: Augment = Augment()

    def pretrained_files(self) -> tuple[str, ...]:
        """Keys of inpaint.weights.FILES that training this variant reads (none unless a loss term uses a
        pretrained network)."""
        return ()


class PerceptualStyle(VariantBase):
    """Settings of a framework with VGG-16 perceptual and style terms (LGNet, PConv; weights 0.05 and 120 in
    both papers): training reads the VGG-16 file unless both weights are 0."""

    perceptual_weight: Annotated[float, Field(ge=0)] = 0.05
    style_weight: Annotated[float, Field(ge=0)] = 120.0

    def pretrained_files(self) -> tuple[str, ...]:
        return ("vgg16",) if self.perceptual_weight or self.style_weight else ()
