"""One training step of a project variant with everything a step's arithmetic depends on exposed: the
gradient each optimiser steps on and the BatchNorm running statistics after it. Shared by the tests that
compare a step across ways of running it (workers, micro-batches, float formats)."""
from __future__ import annotations

import torch
from torch.nn.parallel import DistributedDataParallel

from inpaint.config import TrainConfig, load_params
from inpaint.frameworks import build_framework, build_networks, global_batch
from inpaint.frameworks.base import unwrap
from inpaint.training import speed

RUNNING = ("running_mean", "running_var")
# one variant per model family, and those among them with BatchNorm
FAMILIES = ("gdn_weight", "gdn_adv", "gdn_det", "lgnet_c", "lgnet_c_l_g_att", "pennet", "pconv", "gconv")
BATCHNORM = ("lgnet_c", "lgnet_c_l_g_att", "pconv")


def image_size(name: str) -> int:
    """The smallest image a step of `name` takes: 64 px for SN-PatchGAN (and PConv, whose deepest BatchNorm
    needs more than one value per channel from one image), 32 for GDN's Weight and Det (a quarter of the time)."""
    return 32 if name in ("gdn_weight", "gdn_det") else 64


def batch(size: int, n: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random images and masks; the images' hole areas differ (PEN-Net's batch-normalised L1 sees a split)."""
    g = torch.Generator().manual_seed(1)
    image = torch.rand(n, 3, size, size, generator=g).to(dtype)
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.6).to(dtype)
    mask[0, :, : size // 2] = 1
    return image, mask


def one_step(name: str, image: torch.Tensor, mask: torch.Tensor, *, accumulate: int = 1, ddp: bool = False,
             sync_batchnorm: bool = False, switches: TrainConfig | None = None) -> dict:
    """One step of variant `name` (the project's params.yaml) in `image`'s float format: {"grads": {role:
    {parameter: gradient as the optimiser steps}}, "stats": {role: {buffer: BatchNorm running statistic}}}.
    `switches`: the speed switches (bf16, channels_last) applied as the training loop applies them."""
    variant = load_params().variants[name]
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    networks = build_networks(variant, image.shape[-1])
    if sync_batchnorm:
        networks = {k: global_batch.synchronise(v) for k, v in networks.items()}
    networks = {k: v.to(image.dtype) for k, v in networks.items()}
    if switches is not None:
        networks = {k: speed.apply(v, switches, cpu) for k, v in networks.items()}
        image, mask = speed.batch_to(image, switches, cpu), speed.batch_to(mask, switches, cpu)
    if ddp:
        networks = {k: DistributedDataParallel(v) for k, v in networks.items()}
    fw = build_framework(variant, networks, weights_mode="random", accumulate=accumulate)
    if getattr(fw, "perceptual", None) is not None:
        fw.perceptual.to(image.dtype)
    fw.make_optimisers()
    fw.make_schedulers(10)
    grads = {}
    for role, opt in fw.optimisers.items():
        def record(optimiser, args, kwargs, net=unwrap(networks[role]), role=role):
            grads[role] = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

        opt.register_step_pre_hook(record)
    fw.step(image, mask)
    stats = {role: {n: b.clone() for n, b in unwrap(net).named_buffers() if n.endswith(RUNNING)}
             for role, net in networks.items()}
    return {"grads": grads, "stats": stats}
