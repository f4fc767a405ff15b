"""GConv's framework (DeepFill v2), registered: its settings; trainer in inpaint/frameworks/gconv.py."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from inpaint.variants.registry import register_framework
from inpaint.variants.base import Optimiser, VariantBase


class GConvSettings(VariantBase):
    """GConv, DeepFill v2 (Yu et al. 2019; frameworks/gconv.py): L1 on both stages + SN-PatchGAN hinge loss
    on the composite with the mask channel, weights 1 and 1; D first, then G; Adam 1e-4, betas (0.5, 0.999)."""

    framework: Literal["gconv"]
    generator: str = "gconv"
    discriminator: str = "deepfill_sn_patchgan"
    gan_loss: Literal["hinge", "lsgan", "nsgan"] = "hinge"
    l1_weight: Annotated[float, Field(ge=0)] = 1.0
    adv_weight: Annotated[float, Field(ge=0)] = 1.0
    optimiser: Optimiser = Optimiser(lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.999)


register_framework(GConvSettings, trainer="inpaint.frameworks.gconv:GConvFramework", label="GConv",
                   tables={"gdn_table1": "GConv"})
