"""Statistics over the global batch when DDP workers each hold a share of it: BatchNorm that normalises with
the statistics of every worker's micro-batch (`SyncBatchNorm`, `synchronise`) and means that every worker
computes alike (`mean_over_workers`), such as PEN-Net's batch-wide mask area.

torch's own nn.SyncBatchNorm runs on GPUs only; this one runs wherever torch.distributed does (gloo on CPU,
NCCL on GPUs), so the CPU tests check the arithmetic that the cluster runs. Without a process group of more
than one worker, everything here is plain BatchNorm and plain means.
"""
from __future__ import annotations

import itertools

import torch
import torch.distributed as dist
from torch import Tensor, nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _SumOverWorkers(torch.autograd.Function):
    """All-reduce (sum) whose backward is the same all-reduce: the gradient of every worker's loss with
    respect to a statistic reaches every worker's inputs, as nn.SyncBatchNorm's backward does."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_over_workers(x: Tensor) -> Tensor:
    """The sum of `x` over the workers, differentiable."""
    return _SumOverWorkers.apply(x) if world_size() > 1 else x


@torch.no_grad()
def mean_over_workers(x: Tensor) -> Tensor:
    """The mean of `x`'s elements over every worker's `x` (each worker holds as many elements)."""
    total = x.sum()
    if world_size() > 1:
        dist.all_reduce(total)
    return total / (x.numel() * world_size())


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the concatenation of every worker's batch.

    Batch mean and (biased) variance are all-reduced sums, two passes so that float32 does not lose the
    variance to cancellation; the running variance takes the unbiased variance of the n images x pixels of
    all workers, as BatchNorm2d does on one batch of those n. In eval mode, or with one worker, it is
    BatchNorm2d. Statistics are kept in float32 at least (bf16 autocast hands it bfloat16 activations)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        dims = (0, 2, 3)
        shape = (1, -1, 1, 1)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        local = torch.cat([xf.sum(dims), xf.new_full((1,), x.numel() // x.shape[1])])
        sums = sum_over_workers(local)
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centred = xf - mean.view(shape)
        var = sum_over_workers((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                unbiased = var * count / (count - 1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return out.to(x.dtype)


def synchronise(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm2d replaced by a SyncBatchNorm holding the same parameters and buffers.
    A layer that appears twice in the tree (LGNet_share's stages share theirs) stays one layer."""
    if type(module) is nn.BatchNorm2d:
        return _converted(module)
    converted: dict[int, SyncBatchNorm] = {}
    for name, layer in list(module.named_modules(remove_duplicate=False)):
        if type(layer) is nn.BatchNorm2d:
            parent, _, attribute = name.rpartition(".")
            if id(layer) not in converted:
                converted[id(layer)] = _converted(layer)
            setattr(module.get_submodule(parent), attribute, converted[id(layer)])
    return module


def _converted(layer: nn.BatchNorm2d) -> SyncBatchNorm:
    like = next(itertools.chain(layer.parameters(), layer.buffers()))  # a float tensor comes first
    sync = SyncBatchNorm(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats,
                         device=like.device, dtype=like.dtype)
    sync.load_state_dict(layer.state_dict())
    return sync.train(layer.training)
