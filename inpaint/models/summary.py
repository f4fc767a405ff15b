"""`inpaint models summary`: parameters, FLOPs and output shapes of every registered model.

FLOPs are counted by torch.utils.flop_counter (PyTorch's own counter) on one forward pass of one image:
a multiply-add counts as 2 FLOPs; convolutions, transposed convolutions and matrix products are counted,
element-wise operations (norms, activations, softmax) are not. Papers often quote multiply-adds (MACs) as
"FLOPs": divide ours by 2 to compare with such a figure (LGNet's Table IV does not say which it uses).
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from inpaint.models.registry import count_parameters, registered


def _shapes(out) -> list:
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, dict):
        return {k: _shapes(v) for k, v in out.items()}
    return [_shapes(v) for v in out]


@torch.no_grad()
def measure(name: str, size: int = 256) -> dict:
    """Parameters, GFLOPs and output shapes of registered model `name` built for `size` x `size`. Built and
    run on PyTorch's meta device: shapes only, no memory and no arithmetic, so even LGNet takes well under a
    second (the numbers do not depend on the weights)."""
    models = registered()
    if name not in models:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(models))}")
    info = models[name]
    with torch.device("meta"):
        model = info.builder(image_size=size).eval()
        image = torch.rand(1, 3, size, size)
        if info.role == "generator":
            inputs = (image, torch.zeros(1, 1, size, size))
        else:  # a discriminator may also take the mask as a channel (DeepFill's `in_channels` 4)
            inputs = (torch.rand(1, getattr(model, "in_channels", 3), size, size),)
        with FlopCounterMode(display=False) as counter:
            out = model(*inputs)
    return {"params": count_parameters(model), "gflops": counter.get_total_flops() / 1e9, "output_shapes": _shapes(out)}


def summarise(size: int = 256, only: list[str] | None = None) -> list[dict]:
    rows = []
    models = registered()
    for name in only or sorted(models):
        measured = measure(name, size)  # raises for an unknown name
        info = models[name]
        rows.append({"name": name, **measured, "role": info.role, "paper_params": info.paper_params,
                     "source": info.source, "paper_gflops": info.paper_gflops, "size": size})
    return rows
