"""One registration per training framework: the single place that declares a framework to the rest of the
package (docs/add_a_framework.md).

A `Registration` holds its settings schema (the `framework:` variants of params.yaml validate against it;
it also says which pretrained files training reads, `VariantBase.pretrained_files`), its trainer, the label
of its rows and the report tables its variants appear in. The rest is derived from the registrations: the
params `Variant` union (inpaint/config.py), the trainer of a variant (inpaint/frameworks/build.py), the
weight files a configuration needs (inpaint/weights.py) and the framework rows of the tables
(inpaint/results/report.py).

Torch-free: params validation imports it in every stage, so the package's trainers are named by their
import path ("module:Class"), imported by what builds a trainer (inpaint/frameworks/build.py). The package's own registrations are the
modules of inpaint/variants; a framework kept outside the package is a module named in INPAINT_FRAMEWORKS
(comma-separated), imported the first time the registrations are read.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import get_args

from inpaint.variants.base import VariantBase

PLUGINS_ENV = "INPAINT_FRAMEWORKS"

_REGISTERED: dict[str, Registration] = {}
_plugins_loaded = False


class RegistrationError(ValueError):
    """A framework registered wrongly (the message names it and what is expected)."""


@dataclass(frozen=True)
class Registration:
    settings: type[VariantBase]
    trainer: str | type  # "inpaint.frameworks.gdn:WeightFramework", or the class itself
    label: str  # the name our rows carry in the tables
    # report table (inpaint/results/report.py SPECS) -> the published row of that table the framework reproduces,
    # None when the paper prints no row of its own for it
    tables: dict[str, str | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return framework_name(self.settings)

    def trainer_class(self) -> type:
        """The trainer, imported on first use."""
        if not isinstance(self.trainer, str):
            return self.trainer
        module, _, attribute = self.trainer.partition(":")
        return getattr(importlib.import_module(module), attribute)


def framework_name(settings: type[VariantBase]) -> str:
    """The name in `framework: Literal["name"]` of a settings schema."""
    annotation = settings.model_fields["framework"].annotation if "framework" in settings.model_fields else None
    names = get_args(annotation)
    if len(names) != 1 or not isinstance(names[0], str):
        raise RegistrationError(f"{settings.__name__}: a framework's settings need `framework: Literal[\"<name>\"]` "
                                f"with exactly one name, got {annotation}")
    return names[0]


def register_framework(settings: type[VariantBase], *, trainer: str | type, label: str | None = None,
                       tables: dict[str, str | None] | None = None) -> Registration:
    """Declare a framework: its settings schema (a VariantBase with `framework: Literal["name"]`), its
    trainer (a subclass of inpaint.frameworks.base.Framework, or its "module:Class" path), the label of its
    rows in the tables (default: the name capitalised) and the tables it appears in."""
    if not (isinstance(settings, type) and issubclass(settings, VariantBase)):
        raise RegistrationError(f"register_framework: settings must be a VariantBase subclass, got {settings!r}")
    if isinstance(trainer, str) and trainer.count(":") != 1:
        raise RegistrationError(f"{settings.__name__}: trainer path must read 'module:Class', got {trainer!r}")
    registration = Registration(settings, trainer, label or framework_name(settings).capitalize(), dict(tables or {}))
    if registration.name in _REGISTERED:
        raise RegistrationError(f"framework {registration.name!r} is registered twice "
                                f"({_REGISTERED[registration.name].settings.__name__}, {settings.__name__})")
    _REGISTERED[registration.name] = registration
    return registration


def registrations() -> tuple[Registration, ...]:
    """Every registered framework, in registration order: the package's own (importing inpaint.variants
    registers them), then those of the modules named in INPAINT_FRAMEWORKS."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:
                raise RegistrationError(f"{PLUGINS_ENV}: cannot import framework module {module!r} ({e})") from None
    return tuple(_REGISTERED.values())


def registration(name: str) -> Registration:
    found = {r.name: r for r in registrations()}
    if name not in found:
        raise KeyError(f"unknown framework {name!r}; frameworks: {', '.join(found)}")
    return found[name]


def in_table(table: str, published_order: list[str]) -> dict[str, str]:
    """The frameworks that table `table` shows, {name: label}: ordered as the published rows they reproduce
    stand in `published_order` (those without one first), then in registration order."""
    members = [r for r in registrations() if table in r.tables]
    order = list(published_order)

    def position(r: Registration) -> int:
        row = r.tables[table]
        return -1 if row is None or row not in order else order.index(row)

    return {r.name: r.label for r in sorted(members, key=position)}
