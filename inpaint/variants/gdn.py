"""The GDN paper's three frameworks (Sec. 4.3), registered: settings of Weight, Adv and Det; trainers in
inpaint/frameworks/gdn.py."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from inpaint.variants.registry import register_framework
from inpaint.variants.base import Optimiser, VariantBase


class WeightSettings(VariantBase):
    """GDN Sec. 4.3 'Weight': the generator alone, L1 weighted 6 in the hole and 1 outside (as PConv)."""

    framework: Literal["weight"]
    generator: str = "gdn_generator"
    hole_weight: Annotated[float, Field(gt=0)] = 6.0
    valid_weight: Annotated[float, Field(ge=0)] = 1.0
    optimiser: Optimiser = Optimiser()


class AdvSettings(WeightSettings):
    """GDN Sec. 4.3 'Adv': Weight's L1 plus an SN-PatchGAN on the composite (hinge, weight 0.1)."""

    framework: Literal["adv"]
    discriminator: str = "sn_patchgan"
    gan_loss: Literal["hinge", "lsgan", "nsgan"] = "hinge"
    adv_weight: Annotated[float, Field(ge=0)] = 0.1


class DetSettings(VariantBase):
    """GDN 'Det': generator + 7-layer pixel detector; loss mean(W * |out - gt|), W = mapping(V)."""

    framework: Literal["det"]
    generator: str = "gdn_generator"
    detector: str = "gdn_detector"
    detector_loss: Literal["focal", "bce", "ce"] = "focal"
    gamma: Annotated[float, Field(ge=0)] = 2.0
    weight_mapping: Literal["exp", "linear"] = "exp"
    exp_base: float = 10.0
    detach_weight: bool = False  # the authors' code does not detach W
    optimiser: Optimiser = Optimiser()

    @field_validator("exp_base")
    @classmethod
    def _base_above_one(cls, v: float) -> float:
        if not v > 1:
            raise ValueError(f"the exponential weight mapping W = base^V needs base > 1, got {v}")
        return v


# The Sec. 4.3 comparison (weight_adv_det) shows all three; GDN Table 1's "Ours" is Det.
register_framework(WeightSettings, trainer="inpaint.frameworks.gdn:WeightFramework", tables={"weight_adv_det": None})
register_framework(AdvSettings, trainer="inpaint.frameworks.gdn:AdvFramework", tables={"weight_adv_det": None})
register_framework(DetSettings, trainer="inpaint.frameworks.gdn:DetFramework",
                   tables={"gdn_table1": "Ours", "weight_adv_det": "Ours"})
