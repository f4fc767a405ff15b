"""What every training framework is: networks, optimisers and a `step` that owns the order of updates.

The training loop (inpaint/train.py) knows nothing about losses; a framework knows nothing about Ray,
DVC or MLflow. `networks` may be replaced by their DDP-wrapped versions before `make_optimisers`.
"""
from __future__ import annotations

import torch
from torch import nn


def masked_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The generator's RGB input: holes filled with 1 (white), as all three papers do."""
    return image * (1 - mask) + mask


def composite(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return output * mask + image * (1 - mask)


def unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


class Framework:
    name = "base"

    def __init__(self, cfg, networks: dict[str, nn.Module]):
        self.cfg = cfg
        self.networks = networks
        self.optimisers: dict[str, torch.optim.Optimizer] = {}

    def make_optimisers(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define its optimisers")

    def step(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch; returns the losses to log."""
        raise NotImplementedError(f"{type(self).__name__} must define its training step")

    @torch.no_grad()
    def visuals(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images for the training grid: masked input, output, composite, ground truth."""
        masked = masked_input(image, mask)
        out = self.networks["generator"](masked, mask)["output"]
        return {"masked": masked, "output": out, "composite": composite(out, image, mask), "ground truth": image}

    def train(self, mode: bool = True) -> None:
        for net in self.networks.values():
            net.train(mode)

    def state_dict(self) -> dict:
        return {"networks": {k: unwrap(v).state_dict() for k, v in self.networks.items()},
                "optimisers": {k: v.state_dict() for k, v in self.optimisers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, net in self.networks.items():
            unwrap(net).load_state_dict(state["networks"][k])
        for k, opt in self.optimisers.items():
            opt.load_state_dict(state["optimisers"][k])


def adam(module: nn.Module, lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(beta1, beta2))
