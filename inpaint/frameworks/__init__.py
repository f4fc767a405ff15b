"""Training recipes over the shared model zoo, chosen by name (`framework:` in a variant)."""
from __future__ import annotations

from torch import nn

from inpaint.frameworks.base import Framework
from inpaint.frameworks.gconv import GConvFramework
from inpaint.frameworks.gdn import AdvFramework, DetFramework, WeightFramework
from inpaint.frameworks.lgnet import LGNetFramework
from inpaint.frameworks.pconv import PConvFramework
from inpaint.frameworks.pennet import PENFramework
from inpaint.models.registry import build

FRAMEWORKS: dict[str, type[Framework]] = {
    f.name: f for f in (WeightFramework, AdvFramework, DetFramework, LGNetFramework, PENFramework, PConvFramework,
                        GConvFramework)}


def build_networks(cfg, image_size: int) -> dict[str, nn.Module]:
    """The networks a variant trains: its generator and, by framework, a discriminator or a detector."""
    nets = {"generator": build(cfg.generator, image_size=image_size)}
    for role in ("discriminator", "detector"):
        if hasattr(cfg, role):
            nets[role] = build(getattr(cfg, role), image_size=image_size)
    return nets


def build_framework(cfg, networks: dict[str, nn.Module], *, weights_mode: str = "auto",
                    accumulate: int = 1) -> Framework:
    """`weights_mode` is params' `weights` setting (auto | required | random): what a framework that needs a
    pretrained file (LGNet's VGG-16) does when it is missing; see the framework's `notes` afterwards.
    `accumulate`: micro-batches per step (train.accumulate)."""
    return FRAMEWORKS[cfg.framework](cfg, networks, weights_mode=weights_mode, accumulate=accumulate)
