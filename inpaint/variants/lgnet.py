"""LGNet's framework, registered: its settings; trainer in inpaint/frameworks/lgnet.py."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from inpaint.variants.base import Augment, Optimiser, PerceptualStyle
from inpaint.variants.registry import register_framework


class LGNetSettings(PerceptualStyle):
    """LGNet (docs/authors_code.md 2.7-2.9): coarse + refinement stages, per-image masked L1 at every stage,
    perceptual, style and TV on the refinement stages, LSGAN on the stage-1 composite; D first, then G."""

    framework: Literal["lgnet"]
    generator: str = "lgnet"  # any registered LGNet builder: lgnet, lgnet_c_l, lgnet_light, lgnet_share, ...
    discriminator: str = "sn_patchgan"
    hole_weight: Annotated[float, Field(gt=0)] = 6.0
    valid_weight: Annotated[float, Field(ge=0)] = 1.0
    tv_weight: Annotated[float, Field(ge=0)] = 0.1
    gan_loss: Literal["hinge", "lsgan", "nsgan"] = "lsgan"
    adv_weight: Annotated[float, Field(ge=0)] = 0.1
    constant_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5  # share of train.steps at constant lr (100 of 200)
    optimiser: Optimiser = Optimiser(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    augment: Augment = Augment(image_flip=0.5, mask_flip=0.5)  # pix2pix's RandomHorizontalFlip on both


# LGNet's Tables V and VI select by generator (inpaint/results/report.py); Table VII is the framework's loss weights.
register_framework(LGNetSettings, trainer="inpaint.frameworks.lgnet:LGNetFramework", label="LGNet",
                   tables={"lgnet_table7": "Ours"})
