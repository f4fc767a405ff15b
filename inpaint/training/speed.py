"""Speed switches for GPU clusters (params `train.bf16`, `channels_last`, `compile`): applied to each network
before DDP wraps it, so a framework never sees the difference. All are off by default and on CPU.

bf16 runs the forward passes under autocast and hands float32 outputs back, so losses, backward (autograd
follows the dtypes autocast chose) and optimiser steps stay in float32, as PyTorch's AMP recipe advises.
"""
from __future__ import annotations

import torch
from torch import nn

from inpaint.config import TrainConfig


class Autocast(nn.Module):
    """Runs `module` under bfloat16 autocast on `device_type`; floating outputs come back as float32."""

    def __init__(self, module: nn.Module, device_type: str):
        super().__init__()
        self.module = module
        self.device_type = device_type

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.module(*args, **kwargs)
        return _to_float32(out)


def _to_float32(out):
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(v) for v in out)
    return out


def apply(network: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """`network` with the switches of `cfg` (memory layout, autocast, compilation), in that order."""
    if cfg.channels_last:
        network = network.to(memory_format=torch.channels_last)
    if cfg.bf16:
        network = Autocast(network, device.type)
    if cfg.compile:
        network = torch.compile(network)
    return network


def batch_to(x: torch.Tensor, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """A batch on `device`, in the memory layout the networks expect."""
    fmt = torch.channels_last if cfg.channels_last else torch.preserve_format
    return x.to(device, non_blocking=cfg.pin_memory, memory_format=fmt)
