"""The model zoo's registry: every architecture is a builder function chosen by name from params.

A builder only picks parameters (torchvision style); the published parameter count is metadata that
`inpaint models summary` prints and the tests check against the built module.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    role: str  # "generator", "detector" or "discriminator"
    paper_params: int | None  # parameter count of the authors' model at 256x256, None if unpublished
    source: str  # where the count comes from (docs/authors_code.md section or paper table)
    paper_gflops: float | None = None  # FLOPs at 256x256 as the paper's Table IV gives them


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, *, role: str, paper_params: int | None = None, source: str = "",
             paper_gflops: float | None = None):
    """Decorator: `@register("gdn_generator", role="generator", paper_params=10_779_328)`."""
    if role not in ("generator", "detector", "discriminator"):
        raise ValueError(f"model {name!r}: role must be generator, detector or discriminator, got {role!r}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, builder, role, paper_params, source, paper_gflops)
        return builder

    return wrap


def registered() -> dict[str, ModelInfo]:
    """All registered models, importing the zoo's modules first so that every builder is present."""
    import inpaint.models  # noqa: F401  (the package imports every architecture module)

    return dict(_REGISTRY)


def build(name: str, **kwargs) -> nn.Module:
    models = registered()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(models))}")
    return models[name].builder(**kwargs)


def build_loaded(name: str, state: dict[str, torch.Tensor], **kwargs) -> nn.Module:
    """`build(name, **kwargs)` holding the tensors of `state` (a state dict it loads strictly). Built on the
    meta device, so no random initialisation is drawn only to be overwritten (most of the time a report
    spends loading fourteen models); built as usual when a tensor outside the state dict (a non-persistent
    buffer) would be left without a value."""
    with torch.device("meta"):
        module = build(name, **kwargs)
    module.load_state_dict(state, assign=True)
    if any(t.is_meta for t in itertools.chain(module.parameters(), module.buffers())):
        module = build(name, **kwargs)
        module.load_state_dict(state)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
