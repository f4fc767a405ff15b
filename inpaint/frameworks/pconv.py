"""PConv's training recipe (Liu et al., ECCV 2018, Sec. 3.3-4; docs/pconv_gconv.md) over any generator.

One generator, no discriminator; one backward of
    valid_weight * L_valid + hole_weight * L_hole + perceptual_weight * L_perc
    + style_weight * (L_style_out + L_style_comp) + tv_weight * L_tv          (1, 6, 0.05, 120, 0.1)
- L_hole, L_valid: |out - gt| in the hole / outside it, summed and divided by the number of elements C*H*W
  (`weighted_l1`, a mean over the batch);
- L_perc: sum over VGG-16 pool1-3 of mean|phi(x) - phi(gt)| for x = the raw output and the composite;
- L_style: the same layers' Gram matrices (normalised by C*H*W), L1, for both;
- L_tv: |differences| of the composite between neighbours that both lie in P, the hole dilated by one pixel
  (the paper's region), divided by the number of elements of the composite.

Training schedule (the paper's Sec. 4): Adam at lr_g (2e-4) with BatchNorm on everywhere, then a fine-tuning
phase at lr_finetune (5e-5) with the encoder's BatchNorm frozen (eval mode: its running statistics stop
moving and normalise the holes with the statistics of the first phase). The paper gives the phases in days
(CelebA-HQ 3 + 1, Places2 10 + 1); `finetune_fraction` is the last share of train.steps spent fine-tuning
(default 0.25: CelebA-HQ's 1 of 4 days read as steps).

Value range: as the common implementation (naoto0804/pytorch-inpainting-with-partial-conv), every term is
computed on ImageNet-normalised images ((x - mean) / std, the network's own input space), and the VGG sees
them unchanged. Perceptual and style need VGG-16: under `weights: auto` they are switched off loudly when the
file is missing, as LGNet's (losses/perceptual.py `from_weights_setting`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaint.frameworks.base import Framework, Losses, composite, masked_input, unwrap
from inpaint.losses.perceptual import PerceptualStyleLoss, from_weights_setting
from inpaint.losses.reconstruction import weighted_l1
from inpaint.models.pconv import PConvUNet, imagenet_normalise as normalise


def dilated_hole_tv(comp: Tensor, mask: Tensor) -> Tensor:
    """The paper's L_tv: sum of |I(i, j+1) - I(i, j)| and |I(i+1, j) - I(i, j)| over neighbour pairs that both
    lie in P (the hole dilated by one pixel, 3x3), divided by the number of elements of `comp`."""
    region = F.max_pool2d(mask, 3, stride=1, padding=1)
    across = region[..., :, 1:] * region[..., :, :-1]
    down = region[..., 1:, :] * region[..., :-1, :]
    total = ((comp[..., :, 1:] - comp[..., :, :-1]).abs() * across).sum() + \
        ((comp[..., 1:, :] - comp[..., :-1, :]).abs() * down).sum()
    return total / comp.numel()


def finetune_start(total_steps: int, fraction: float) -> int:
    """The first optimisation step (0-based) of the fine-tuning phase."""
    return total_steps - round(fraction * total_steps)


class PConvFramework(Framework):
    def __init__(self, cfg, networks: dict[str, nn.Module], *, weights_mode: str = "auto", accumulate: int = 1):
        super().__init__(cfg, networks, weights_mode=weights_mode, accumulate=accumulate)
        self.perceptual: PerceptualStyleLoss | None = None
        self.finetune_from: int | None = None
        if cfg.perceptual_weight == 0 and cfg.style_weight == 0:
            self.notes["perceptual_style"] = "off: perceptual_weight and style_weight are 0"
        else:
            device = next(networks["generator"].parameters()).device
            self.perceptual, self.notes["perceptual_style"] = from_weights_setting(weights_mode, device)

    def make_schedulers(self, total_steps: int) -> None:
        """lr_g until the fine-tuning phase, lr_finetune from its first step on."""
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        start = self.finetune_from = finetune_start(total_steps, self.cfg.finetune_fraction)
        ratio = self.cfg.lr_finetune / self.cfg.optimiser.lr_g

        def factor(step: int) -> float:
            return ratio if step >= start else 1.0

        self.schedulers = {"generator": torch.optim.lr_scheduler.LambdaLR(self.optimisers["generator"], factor)}

    def finetuning(self) -> bool:
        """Whether the next step belongs to the fine-tuning phase (the scheduler counts the steps taken)."""
        if self.finetune_from is None:
            raise RuntimeError("PConvFramework: call make_schedulers(total_steps) after make_optimisers()")
        return self.schedulers["generator"].last_epoch >= self.finetune_from

    def train(self, mode: bool = True) -> None:
        """In fine-tuning, the encoder's BatchNorm layers stay in eval mode (PConv U-Nets only; another
        generator has no encoder to freeze)."""
        super().train(mode)
        gen = unwrap(self.networks["generator"])
        if mode and isinstance(gen, PConvUNet) and self.finetune_from is not None and self.finetuning():
            for module in gen.encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()

    def terms(self, out: Tensor, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """The unweighted loss terms (see the module docstring)."""
        comp = composite(out, image, mask)
        n_out, n_gt, n_comp = normalise(out), normalise(image), normalise(comp)
        terms = {"valid": weighted_l1(n_out, n_gt, 1 - mask), "hole": weighted_l1(n_out, n_gt, mask),
                 "tv": dilated_hole_tv(n_comp, mask)}
        if self.perceptual is not None:
            # PerceptualStyleLoss feeds its VGG x * 2 - 1; (n + 1) / 2 makes that the normalised image itself
            terms["perceptual"], terms["style"] = self.perceptual((n_gt + 1) / 2, [(n_out + 1) / 2, (n_comp + 1) / 2])
        return terms

    def step(self, image: Tensor, mask: Tensor) -> dict[str, float]:
        self.train(True)  # enters the fine-tuning phase's frozen encoder BatchNorm at its first step
        c = self.cfg
        weights = {"valid": c.valid_weight, "hole": c.hole_weight, "tv": c.tv_weight,
                   "perceptual": c.perceptual_weight, "style": c.style_weight}
        opt = self.optimisers["generator"]
        opt.zero_grad(set_to_none=True)
        logged = Losses(self.share)
        for image, mask in self.micro_batches(image, mask):
            out = self.networks["generator"](masked_input(image, mask), mask)["output"]
            terms = self.terms(out, image, mask)
            loss = sum(weights[k] * v for k, v in terms.items())
            (loss * self.share).backward()
            logged.add(loss_g=loss, **{f"loss_{k}": v for k, v in terms.items()}, l1=(out - image).abs().mean())
        opt.step()
        self.advance_schedulers()
        return {**logged.totals, "finetuning": float(self.finetuning())}
