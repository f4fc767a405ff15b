"""A variant's networks and its framework's trainer, from the registrations (inpaint/frameworks/registry.py)."""
from __future__ import annotations

from torch import nn

# The package's trainers, which the registrations name by path: imported here so that they are part of the
# code a training stage runs as inpaint/codegraph.py reads it (imports, not paths).
from inpaint.frameworks import gconv, gdn, lgnet, pconv, pennet  # noqa: F401
from inpaint.frameworks.base import Framework
from inpaint.frameworks.registry import registration
from inpaint.models.registry import build


def build_networks(cfg, image_size: int) -> dict[str, nn.Module]:
    """The networks a variant trains: its generator and, by framework, a discriminator or a detector."""
    nets = {"generator": build(cfg.generator, image_size=image_size)}
    for role in ("discriminator", "detector"):
        if hasattr(cfg, role):
            nets[role] = build(getattr(cfg, role), image_size=image_size)
    return nets


def trainer(framework: str) -> type[Framework]:
    """The trainer class registered for `framework`."""
    cls = registration(framework).trainer_class()
    if not (isinstance(cls, type) and issubclass(cls, Framework)):
        raise TypeError(f"framework {framework!r}: its trainer {cls!r} is not a subclass of "
                        "inpaint.frameworks.base.Framework")
    return cls


def build_framework(cfg, networks: dict[str, nn.Module], *, weights_mode: str = "auto",
                    accumulate: int = 1) -> Framework:
    """`weights_mode` is params' `weights` setting (auto | required | random): what a framework that needs a
    pretrained file (LGNet's VGG-16) does when it is missing; see the framework's `notes` afterwards.
    `accumulate`: micro-batches per step (train.accumulate)."""
    return trainer(cfg.framework)(cfg, networks, weights_mode=weights_mode, accumulate=accumulate)
