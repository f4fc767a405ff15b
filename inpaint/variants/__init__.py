"""What a variant of each training framework sets, and the frameworks' registrations (torch-free).

    base.py       what every framework's settings share: VariantBase, Optimiser, Augment, Strict
    registry.py   register_framework: a framework's one declaration (settings, trainer, tables)
    <name>.py     a framework's settings schema and its registration; its trainer is inpaint/frameworks/<name>.py

Importing the package imports every module in it, so a module added here registers its framework with no
other change (inpaint/provenance/codegraph.py reads the discovery as importing the whole folder). Params validation
(inpaint/config.py) reads the registrations in every stage, hence no torch here.
"""
from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
