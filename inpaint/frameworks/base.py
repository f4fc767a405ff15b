"""What every training framework is: networks, optimisers, learning-rate schedulers and a `step` that owns
the order of updates.

The training loop (inpaint/training/train.py) knows nothing about losses; a framework knows nothing about Ray,
DVC or MLflow. `networks` may be replaced by their DDP-wrapped versions before `make_optimisers`.

Life cycle, as the training loop drives it:
    fw = build_framework(cfg, networks, weights_mode=params.weights,
                         accumulate=train.accumulate)  # networks already DDP-wrapped
    fw.make_optimisers()
    fw.make_schedulers(train.steps)   # a no-op for frameworks without an lr schedule (GDN's)
    fw.load_state_dict(...)           # when resuming: networks, optimisers and schedulers
    fw.step(image, mask) ...          # each step also advances the schedulers
`fw.notes` ({name: text}) says what the run did differently from its config (e.g. LGNet's perceptual and
style terms switched off because the VGG-16 file is missing); the driver records them as run tags.

Global batch. `step` gets this worker's share of the global batch and runs it as `accumulate` micro-batches,
stepping each optimiser once on the gradient summed over them. Every loss term is a mean over the images of
a micro-batch and is scaled by its share 1 / accumulate before its backward; DDP then averages the workers'
gradients, so each network's gradient is that of the mean over the global batch, as one process computes it
on the whole batch. A term normalised by a batch-wide sum takes that sum over the global batch (PEN-Net's
mask area, `global_batch.mean_over_workers`). BatchNorm is the exception: a micro-batch is normalised with
the statistics of the micro-batches the workers run at once (docs/departures.md).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def masked_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The generator's RGB input: holes filled with 1 (white), as all three papers do."""
    return image * (1 - mask) + mask


def composite(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return output * mask + image * (1 - mask)


def unwrap(module: nn.Module) -> nn.Module:
    """The network itself under its training wrappers (DDP, torch.compile, the bf16 autocast wrapper)."""
    while True:
        inner = getattr(module, "_orig_mod", None)  # torch.compile
        if inner is None:
            inner = getattr(module, "module", None)  # DDP, inpaint.training.speed.Autocast
        if not isinstance(inner, nn.Module):
            return module
        module = inner


@contextlib.contextmanager
def frozen(network: nn.Module) -> Iterator[nn.Module]:
    """`network` as a fixed judge for another network's loss (D or the detector inside G's loss): a forward
    inside the block records no path to its parameters, so G's backward goes through it without computing
    its weight gradients (SN-PatchGAN forward + backward: 0.64x the time) and leaves its .grad untouched.

    Yields the network without its DDP wrapper: DDP expects a gradient for every parameter after each
    forward through it, which this forward by design does not give. Both ranks hold the same parameters
    (DDP synchronised them at its last step), so the judgement is the same everywhere; other wrappers
    (autocast, torch.compile) stay."""
    flags = [p.requires_grad for p in network.parameters()]
    for p in network.parameters():
        p.requires_grad_(False)
    try:
        yield network.module if isinstance(network, DistributedDataParallel) else network
    finally:
        for p, flag in zip(network.parameters(), flags):
            p.requires_grad_(flag)


class Framework:
    def __init__(self, cfg, networks: dict[str, nn.Module], *, weights_mode: str = "auto", accumulate: int = 1):
        self.cfg = cfg
        self.networks = networks
        self.weights_mode = weights_mode  # the `weights` setting: auto | required | random (docs/protocol.md section 4)
        self.accumulate = accumulate  # micro-batches per step (train.accumulate)
        self.optimisers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.notes: dict[str, str] = {}

    def make_optimisers(self) -> None:
        """One Adam per network with the variant's settings: lr_g for the generator, lr_d for the other
        (discriminator or detector). The authors' per-stage optimisers (LGNet's G1, G2, G3) are the same
        thing, since Adam's state is per parameter."""
        o = self.cfg.optimiser
        self.optimisers = {name: adam(net, o.lr_g if name == "generator" else o.lr_d, o.beta1, o.beta2)
                           for name, net in self.networks.items()}

    def make_schedulers(self, total_steps: int) -> None:
        """Learning-rate schedules over a run of `total_steps` optimisation steps (train.steps); call after
        `make_optimisers`. Default: constant learning rates, no schedulers."""
        self.schedulers = {}

    def advance_schedulers(self) -> None:
        """End of a step: every scheduler moves on by one optimisation step."""
        for scheduler in self.schedulers.values():
            scheduler.step()

    def step(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """One optimisation step on this worker's share of the global batch; returns the losses to log (this
        worker's means over its share)."""
        raise NotImplementedError(f"{type(self).__name__} must define its training step")

    @property
    def share(self) -> float:
        """A micro-batch's share of this worker's part of the step: the factor of its losses."""
        return 1.0 / self.accumulate

    def micro_batches(self, image: torch.Tensor, mask: torch.Tensor, judges: tuple[nn.Module, ...] = ()
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This worker's share split into `accumulate` micro-batches. The loop body over them runs inside
        DDP's `no_sync` for every micro-batch but the last: the gradients add up locally and the last backward
        all-reduces their sum (a backward per network per micro-batch, as DDP requires).

        `judges` (a discriminator, a detector) start every micro-batch from the buffers they had at the first:
        spectral norm's power iteration, one per forward in training mode, then advances as often per step as
        on the whole batch, and every micro-batch is judged with the same normalised weights. (The zoo's judges
        hold no other buffers; a BatchNorm judge would keep the last micro-batch's statistics.)"""
        if image.shape[0] % self.accumulate:
            raise ValueError(f"{type(self).__name__}: a share of {image.shape[0]} images does not split into "
                             f"train.accumulate={self.accumulate} micro-batches")
        size = image.shape[0] // self.accumulate
        start = [[b.clone() for b in net.buffers()] for net in judges] if self.accumulate > 1 else []
        for k, (im, m) in enumerate(zip(image.split(size), mask.split(size))):
            if k > 0:
                with torch.no_grad():
                    for net, saved in zip(judges, start):
                        for b, value in zip(net.buffers(), saved):
                            b.copy_(value)
            with contextlib.ExitStack() as unsynced:
                if k < self.accumulate - 1:
                    for net in self.networks.values():
                        if isinstance(net, DistributedDataParallel):
                            unsynced.enter_context(net.no_sync())
                yield im, m

    @torch.no_grad()
    def visuals(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images for the training grid: masked input, output, composite, ground truth. Rank 0 alone draws
        them, so through the bare networks: a DDP forward is a collective (it broadcasts BatchNorm buffers)
        that the other workers would never join."""
        masked = masked_input(image, mask)
        out = unwrap(self.networks["generator"])(masked, mask)["output"]
        return {"masked": masked, "output": out, "composite": composite(out, image, mask), "ground truth": image}

    def train(self, mode: bool = True) -> None:
        for net in self.networks.values():
            net.train(mode)

    def state_dict(self) -> dict:
        return {"networks": {k: unwrap(v).state_dict() for k, v in self.networks.items()},
                "optimisers": {k: v.state_dict() for k, v in self.optimisers.items()},
                "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, net in self.networks.items():
            unwrap(net).load_state_dict(state["networks"][k])
        for k, opt in self.optimisers.items():
            opt.load_state_dict(state["optimisers"][k])
        saved = state.get("schedulers", {})  # checkpoints of frameworks without schedulers have none
        for k, scheduler in self.schedulers.items():
            if k not in saved:
                raise KeyError(f"checkpoint has no state for the {k!r} lr scheduler (saved: {sorted(saved)})")
            scheduler.load_state_dict(saved[k])


class Losses:
    """The losses a step logs: each micro-batch's value weighted by its share, summed over the step."""

    def __init__(self, share: float):
        self.share, self.totals = share, {}

    def add(self, **values: torch.Tensor) -> None:
        for k, v in values.items():
            self.totals[k] = self.totals.get(k, 0.0) + v.item() * self.share


FUSED_ADAM_DEVICES = ("cpu", "cuda")  # where torch (>= 2.4) has the fused Adam kernel


def adam(module: nn.Module, lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    """Adam with the fused kernel when every parameter allows it: one pass over all tensors instead of the
    CPU default's loop of small ops per tensor (3x faster for LGNet). Same algorithm, equal to float
    rounding (tests/test_frameworks.py)."""
    params = list(module.parameters())
    fused = all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), fused=fused)
