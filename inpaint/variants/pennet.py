"""PEN-Net's framework, registered: its settings; trainer in inpaint/frameworks/pennet.py."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from inpaint.variants.registry import register_framework
from inpaint.variants.base import Augment, Optimiser, VariantBase


class PENSettings(VariantBase):
    """PEN-Net (docs/authors_code.md 3.4-3.6): batch-normalised masked L1 + pyramid L1 + SN-PatchGAN (hinge) on the
    composite; D first, then G; lr = lr0 * 0.1^(min(step, decay_steady) // decay_every)."""

    framework: Literal["pen"]
    generator: str = "pennet"
    discriminator: str = "sn_patchgan"
    gan_loss: Literal["hinge", "lsgan", "nsgan"] = "hinge"  # the authors' configs: hinge, or nsgan (DTD, Facade)
    adv_weight: Annotated[float, Field(ge=0)] = 0.1
    hole_weight: Annotated[float, Field(gt=0)] = 6.0
    valid_weight: Annotated[float, Field(ge=0)] = 1.0
    pyramid_weight: Annotated[float, Field(ge=0)] = 0.5
    decay_every: Annotated[int, Field(gt=0)] = 100_000  # the authors' niter
    decay_steady: Annotated[int, Field(gt=0)] = 10_000  # niter_steady; below decay_every: never decays (CelebA-HQ)
    optimiser: Optimiser = Optimiser(lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.999)
    augment: Augment = Augment(image_flip=0.5, color_jitter=0.05, mask_flip=0.5, mask_rotate=45, mask_dilate=3)


register_framework(PENSettings, trainer="inpaint.frameworks.pennet:PENFramework", label="PEN-Net",
                   tables={"gdn_table1": "PEN"})
