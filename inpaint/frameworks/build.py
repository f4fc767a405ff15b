"""A variant's networks and its framework's trainer, from the registrations (inpaint/variants/registry.py)."""
from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from inpaint import frameworks
from inpaint.frameworks.base import Framework
from inpaint.models.registry import build
from inpaint.variants.registry import registration

# Every module of the package: the trainers the registrations name by path. A training process runs the
# whole folder (and inpaint/provenance/codegraph.py reads this discovery as an import of each module).
for _module in pkgutil.iter_modules(frameworks.__path__):
    importlib.import_module(f"{frameworks.__name__}.{_module.name}")


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
