"""Training recipes over the shared model zoo: a framework's trainer, chosen by the `framework:` of a variant
through its registration (inpaint/variants).

    base.py                   Framework: networks, optimisers, schedulers and the `step` a trainer defines
    discriminator_first.py    the D-then-G iteration LGNet, PEN-Net and GConv share
    <name>.py                 a framework's trainer (its settings and registration: inpaint/variants/<name>.py)
    build.py                  build_networks, build_framework: a variant's networks and trainer
    global_batch.py           BatchNorm statistics and means over the global batch of DDP workers

Attributes are imported lazily: what only needs `masked_input` or `composite` (evaluation, `fill`) does not
import the trainers.
"""
from __future__ import annotations

import importlib

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
