"""PConv's framework, registered: its settings; trainer in inpaint/frameworks/pconv.py."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from inpaint.variants.registry import register_framework
from inpaint.variants.base import Optimiser, PerceptualStyle


class PConvSettings(PerceptualStyle):
    """PConv (Liu et al. 2018; frameworks/pconv.py): valid + 6 hole L1, perceptual 0.05, style 120 and TV 0.1
    on the 1-pixel-dilated hole; Adam 2e-4, then fine-tuning at 5e-5 with the encoder's BatchNorm frozen."""

    framework: Literal["pconv"]
    generator: str = "pconv"
    valid_weight: Annotated[float, Field(ge=0)] = 1.0
    hole_weight: Annotated[float, Field(gt=0)] = 6.0
    tv_weight: Annotated[float, Field(ge=0)] = 0.1
    finetune_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.25  # CelebA-HQ: 1 fine-tuning day of 3 + 1
    lr_finetune: Annotated[float, Field(gt=0)] = 5e-5
    optimiser: Optimiser = Optimiser(lr_g=2e-4, beta1=0.9, beta2=0.999)  # torch's Adam defaults; no D


register_framework(PConvSettings, trainer="inpaint.frameworks.pconv:PConvFramework", label="PConv",
                   tables={"gdn_table1": "PConv"})
