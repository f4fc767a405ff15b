"""GConv's training recipe: DeepFill v2 (Yu et al., ICCV 2019) as the authors' TF code trains it
(generative_inpainting v2.0.0 inpaint_model.py, train.py, inpaint.yml; docs/pconv_gconv.md).

One iteration, in the authors' order (neuralgym runs the discriminator's trainer as a callback before each
generator step, pstep 1):
1. forward G once: every stage's output (coarse x1 and refined x2 for DeepFill);
2. D step on [gt, composite] with the mask as a fourth channel (gan_with_mask: True), SN-PatchGAN hinge loss,
   loss_D = 0.5 relu(1 - D(real)) + 0.5 relu(1 + D(fake));
3. G step with the D just updated, one backward of
       l1_weight * sum over stages of mean|out_k - gt|  (the whole image, no mask)  +  adv_weight * -D(fake)
   with l1_loss_alpha = gan_loss_alpha = 1.

Decisions:
- Value range: the authors' images, losses and D are in [-1, 1]; every term is computed on x * 2 - 1 (the
  L1 terms double), so the 1 : 1 balance of L1 and hinge is theirs.
- Adam(1e-4, beta1 0.5, beta2 0.999) for both networks, constant learning rate (their train.py). The constant
  schedule is kept as a LambdaLR of factor 1 so that checkpoints look like every framework's.
- One forward feeds both updates (DiscriminatorFirst); the authors' D and G steps each draw their own batch
  and mask, since neuralgym's two trainers read the input queue separately.
- Any generator: a generator without "stages" is trained on its "output" alone.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from inpaint.frameworks.base import composite, unwrap
from inpaint.frameworks.discriminator_first import DiscriminatorFirst, to_authors_range


class GConvFramework(DiscriminatorFirst):
    def __init__(self, cfg, networks: dict[str, nn.Module], *, weights_mode: str = "auto", accumulate: int = 1):
        super().__init__(cfg, networks, weights_mode=weights_mode, accumulate=accumulate)
        first = next(m for m in unwrap(networks["discriminator"]).modules() if isinstance(m, nn.Conv2d))
        if first.in_channels != 4:
            raise ValueError(f"framework gconv: discriminator {cfg.discriminator!r} takes {first.in_channels} "
                             "channels; DeepFill's D sees the image and the mask (4), e.g. deepfill_sn_patchgan")

    def make_schedulers(self, total_steps: int) -> None:
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
                           for k, opt in self.optimisers.items()}

    def real_for_discriminator(self, image: Tensor, mask: Tensor) -> Tensor:
        return torch.cat([to_authors_range(image), mask], dim=1)

    def fake_for_discriminator(self, result: dict, image: Tensor, mask: Tensor) -> Tensor:
        return torch.cat([to_authors_range(composite(result["output"], image, mask)), mask], dim=1)

    def generator_terms(self, result: dict, image: Tensor, mask: Tensor, stats: dict) -> dict[str, Tensor]:
        gt = to_authors_range(image)
        stages = result.get("stages", [result["output"]])
        return {"l1": sum((to_authors_range(out) - gt).abs().mean() for out in stages)}

    def loss_weights(self) -> dict[str, float]:
        return {"l1": self.cfg.l1_weight, "adv": self.cfg.adv_weight}

