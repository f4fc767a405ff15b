"""Training recipes over the shared model zoo, chosen by name (`framework:` in a variant).

    registry.py          register_framework: a framework's one declaration (settings, trainer, tables)
    settings.py          what every framework's settings share (VariantBase, Optimiser, Augment)
    <name>_settings.py   each framework's settings schema and registration (torch-free)
    <name>.py            its trainer: a Framework subclass (base.py, discriminator_first.py)
    build.py             build_networks, build_framework: a variant's networks and trainer

Importing the package registers the package's own frameworks and nothing heavier: params validation
(inpaint/config.py) reads the registrations in every stage, and torch loads only with a trainer.
"""
from __future__ import annotations

import importlib

# The package's own frameworks, registered in this order (the order of FRAMEWORKS in error messages)
from inpaint.frameworks import gdn_settings, lgnet_settings, pennet_settings  # noqa: F401, I001
from inpaint.frameworks import pconv_settings, gconv_settings  # noqa: F401, I001

_EXPORTS = {
    "build_networks": "inpaint.frameworks.build",
    "build_framework": "inpaint.frameworks.build",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'inpaint.frameworks' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
