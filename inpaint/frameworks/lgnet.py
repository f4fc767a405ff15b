"""LGNet's training recipe (Quan et al., TIP 2022; docs/authors_code.md 2.7-2.9) over any LGNet chain of the zoo.

One iteration, in the authors' order:
1. forward: the generator once, giving every stage's raw output out_k and composite merged_k;
2. D step first, on merged_1.detach() (the stage-1 composite: Net_C's; the authors' D never sees a later
   stage) against the ground truth, both in one D call; LSGAN, loss_D = 0.5 (real + fake);
3. G step, with the D just updated, one backward of
       sum_k  [valid_weight * L1_valid(out_k) + hole_weight * L1_hole(out_k)]     (per-image normalised L1)
     + sum_k>=2 [perceptual_weight * (P(out_k) + P(merged_k)) + style_weight * (S(out_k) + S(merged_k))
                 + tv_weight * TV(merged_k * m)]
     + adv_weight * LSGAN_G(D(merged_1)).
   A chain with one stage (C only) has the stage-1 term and the adversarial term only.

Decisions, each against the authors' code:
- Optimisers: the authors keep four Adams (G1, G2, G3, D) with the same settings and step the three G ones
  after one backward. Adam is per-parameter, so one Adam over the whole generator makes the same update:
  here one optimiser for G and one for D (also right for LGNet_share, whose stages share parameters).
- D is frozen for the G step, as the authors' set_requires_grad(netD, False): the G backward computes no
  gradient for D's weights (`frozen` bypasses DDP for that forward, see inpaint/frameworks/base.py).
- Value range: the authors' losses and D see [-1, 1] images, the zoo's are [0, 1]. Every pixel loss and D's
  input are computed on x * 2 - 1 (`to_authors_range`), so each term has the authors' magnitude and the weights 6 / 1 /
  0.1 / 0.1 keep their balance (the L1 terms double; TV of merged * m is not a plain multiple, since the
  authors' merged * m is (2x - 1) inside the hole and 0 outside). The VGG maps [0, 1] to [-1, 1] itself.
- LR policy 'linear', stepped per optimisation step instead of per epoch: with T = train.steps and
  C = round(constant_fraction * T), lr = lr0 * (1 - max(0, s + 1 - C) / (T - C + 1)) at step s (0-based):
  constant for the first C steps, then linear, reaching 0 at step T. This is the authors' lambda rule
  (epoch_count 1, n_epochs 100, n_epochs_decay 100) with epochs read as steps. Both G and D follow it.
- Perceptual and style terms need VGG-16 (vgg16-397923af.pth). The `weights` setting decides
  (docs/protocol.md section 4): `required` raises MissingWeights when the file is missing; `auto` switches both
  terms off for the run and says so in `notes["perceptual_style"]`; `random` uses a randomly initialised VGG
  and notes the run as uncalibrated.

DDP: each network's forward is followed by its own backward before it runs again (G: forward, ..., G
backward; D: forward on [real, fake], backward, step; the frozen D on merged_1 is outside DDP).
The one generator forward feeds every G loss term, summed into one loss and one backward; the D-step input
is detached from it, so that forward has exactly one backward.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from inpaint.frameworks.base import masked_input, unwrap
from inpaint.frameworks.discriminator_first import DiscriminatorFirst, to_authors_range
from inpaint.losses.reconstruction import masked_l1_per_image, total_variation
from inpaint.models.lgnet import LGNet

if TYPE_CHECKING:
    from inpaint.losses.perceptual import PerceptualStyleLoss


def linear_decay_factor(step: int, total_steps: int, constant_fraction: float) -> float:
    """LGNet's 'linear' lr policy per step: 1 for the first round(constant_fraction * T) steps, then linear to
    0 at step T (see the module docstring)."""
    constant = round(constant_fraction * total_steps)
    return 1.0 - max(0, step + 1 - constant) / (total_steps - constant + 1)


class LGNetFramework(DiscriminatorFirst):
    def __init__(self, cfg, networks, *, weights_mode: str = "auto", accumulate: int = 1):
        super().__init__(cfg, networks, weights_mode=weights_mode, accumulate=accumulate)
        gen = unwrap(networks["generator"])
        if not isinstance(gen, LGNet):
            raise ValueError(f"framework lgnet: generator {cfg.generator!r} is a {type(gen).__name__}, not an LGNet "
                             "chain (use an LGNet builder: lgnet, lgnet_c_l, lgnet_light, lgnet_share, ...)")
        self.num_stages = len(gen.stages)
        self.perceptual: PerceptualStyleLoss | None = None
        if self.num_stages < 2:
            self.notes["perceptual_style"] = f"n/a: {cfg.generator} has no refinement stage"
        elif cfg.perceptual_weight == 0 and cfg.style_weight == 0:
            self.notes["perceptual_style"] = "off: perceptual_weight and style_weight are 0"
        else:
            # lazy for start-up time: torchvision pulls in torch._dynamo (about 2 s of CPU in every Ray Train
            # worker that imports the frameworks; docs/performance.md)
            from inpaint.losses.perceptual import from_weights_setting

            self.perceptual, self.notes["perceptual_style"] = from_weights_setting(
                weights_mode, next(gen.parameters()).device)

    def make_schedulers(self, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        frac = self.cfg.constant_fraction

        def factor(step: int) -> float:
            return linear_decay_factor(step, total_steps, frac)

        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, factor) for k, opt in self.optimisers.items()}

    def generator_terms(self, result: dict, image: Tensor, mask: Tensor, stats: dict) -> dict[str, Tensor]:
        """The unweighted reconstruction, perceptual, style and TV terms, each summed over the stages."""
        gt = to_authors_range(image)
        valid = hole = tv = gt.new_zeros(())
        for k, out in enumerate(result["stages"]):
            valid = valid + masked_l1_per_image(to_authors_range(out), gt, 1 - mask)
            hole = hole + masked_l1_per_image(to_authors_range(out), gt, mask)
            if k > 0:
                tv = tv + total_variation(to_authors_range(result["merged"][k]) * mask)
        terms = {"valid": valid, "hole": hole}
        if self.num_stages > 1:
            terms["tv"] = tv
        if self.perceptual is not None:
            # one VGG pass: gt's features once, then out_k and merged_k of every refinement stage
            refined = [x for k in range(1, self.num_stages) for x in (result["stages"][k], result["merged"][k])]
            terms["perceptual"], terms["style"] = self.perceptual(image, refined)
        return terms

    def fake_for_discriminator(self, result, image, mask):
        """The authors' D judges merged1, the Net_C composite, not the final output (docs/authors_code.md 2.7)."""
        return to_authors_range(result["merged"][0])

    def loss_weights(self):
        c = self.cfg
        return {"valid": c.valid_weight, "hole": c.hole_weight, "tv": c.tv_weight, "perceptual": c.perceptual_weight,
                "style": c.style_weight, "adv": c.adv_weight}

    def raw_output(self, result):
        return result["stages"][-1]

    @torch.no_grad()
    def visuals(self, image, mask):
        """Masked input, each stage's composite (one column per stage), the last stage's raw output, gt."""
        masked = masked_input(image, mask)
        result = unwrap(self.networks["generator"])(masked, mask)  # rank 0 alone: no DDP collective (base.py)
        v = {"masked": masked}
        v.update({f"merged {k}": m for k, m in enumerate(result["merged"], 1)})
        return {**v, "output": result["stages"][-1], "ground truth": image}
