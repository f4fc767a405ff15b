"""`inpaint models summary`: parameters, FLOPs and output shapes of every registered model.

Two counts, on one forward pass of one image:
- `gflops`: torch.utils.flop_counter (PyTorch's own counter), every convolution, transposed convolution and
  matrix product, functional ones included (attention); a multiply-add counts as 2 FLOPs; element-wise
  operations (norms, activations, softmax) are not counted.
- `gmacs_table_iv`: the convention of LGNet's Table IV, which reproduces its LGNet (69.62 G), LGNet_light
  (53.73 G) and LGNet_share (69.62 G) exactly at 256 x 256: the layer-hook count of the `thop` profiler of
  the time. Only nn.Conv2d / nn.ConvTranspose2d / nn.BatchNorm2d modules count: a convolution counts
  output elements x (in_channels / groups x kernel area + 1 if biased), which for a stride-2 transposed
  convolution is 4 times its real multiply-adds; a BatchNorm counts 2 per element; activations count 0;
  functional calls (F.conv2d inside an attention module, matrix products, interpolation) are invisible.
  PEN-Net in this convention is 4.81 G (its attention is functional), not Table IV's 48.07 G, which no
  reading we tried reproduces (docs/departures.md, "Complexity").
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from inpaint.models.registry import count_parameters, registered


def _shapes(out) -> list:
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, dict):
        return {k: _shapes(v) for k, v in out.items()}
    return [_shapes(v) for v in out]


def table_iv_macs(model: nn.Module, inputs: tuple) -> int:
    """Multiply-adds as LGNet's Table IV counts them (see the module docstring); runs `model(*inputs)`."""
    total = 0

    def hook(module: nn.Module, args, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            kernel = module.weight.shape[2] * module.weight.shape[3]
            total += out.numel() * (module.in_channels // module.groups * kernel + (module.bias is not None))
        elif isinstance(module, nn.BatchNorm2d):
            total += 2 * args[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d))]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


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
        macs = table_iv_macs(model, inputs)
    return {"params": count_parameters(model), "gflops": counter.get_total_flops() / 1e9,
            "gmacs_table_iv": macs / 1e9, "output_shapes": _shapes(out)}


def summarise(size: int = 256, only: list[str] | None = None) -> list[dict]:
    rows = []
    models = registered()
    for name in only or sorted(models):
        measured = measure(name, size)  # raises for an unknown name
        info = models[name]
        rows.append({"name": name, **measured, "role": info.role, "paper_params": info.paper_params,
                     "source": info.source, "paper_gflops": info.paper_gflops, "size": size})
    return rows
