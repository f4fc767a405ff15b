"""PEN-Net's training recipe (Zeng et al., CVPR 2019; docs/authors_code.md 3.4-3.6, the PyTorch trainer).

One iteration, in the authors' order:
1. forward G once: the output and the pyramid; comp = out * m + gt * (1 - m);
2. D step: D(cat[gt, comp.detach()]) in one call; hinge (or nsgan), loss_D = 0.5 (real + fake);
3. G step, with the D just updated, one backward of
       adv_weight * adv(D(comp)) + hole_weight * L1_hole + valid_weight * L1_valid + pyramid_weight * L1_pyramid
   where the hole and valid L1 are batch-normalised (mean(|out - gt| m) / mean(m)) on the raw output and the
   pyramid L1 compares every pyramid image with gt bilinearly resized to its size, over the whole image.
   mean(m) is over the global batch: with several workers or micro-batches each divides its own numerator
   by the whole batch's hole area, so their sum is the one-process loss.

Decisions:
- Value range: the authors' losses and D see [-1, 1] images, the zoo's are [0, 1]; every pixel loss and D's
  input are computed on x * 2 - 1, so each term has the authors' magnitude (the L1 terms double) and the
  balance of the 0.1 adversarial weight against the L1 terms is theirs.
- LR step decay, both optimisers (the authors' adjust_learning_rate): at step s (0-based)
  lr = lr0 * 0.1^(min(s, decay_steady) // decay_every); the CelebA-HQ config (1e5 / 1e4) never decays.
- The authors' D has a sigmoid unless the loss is hinge; the zoo's D gives raw scores and nsgan is BCE with
  logits, the same thing.

DDP: G's forward feeds every G term, summed into one loss and one backward (the D-step input is detached);
D's DDP forward is followed by its own backward; inside the G loss D is frozen and outside DDP (no gradient
for D's weights is computed there).
"""
from __future__ import annotations

import torch
from torch import Tensor

from inpaint.frameworks.base import composite
from inpaint.frameworks.discriminator_first import DiscriminatorFirst, to_authors_range
from inpaint.frameworks.global_batch import mean_over_workers
from inpaint.losses.reconstruction import masked_l1_per_batch, pyramid_l1


def step_decay_factor(step: int, decay_every: int, decay_steady: int) -> float:
    """PEN-Net's lr factor at step `step`: 0.1^(min(step, decay_steady) // decay_every)."""
    return 0.1 ** (min(step, decay_steady) // decay_every)


class PENFramework(DiscriminatorFirst):
    def make_schedulers(self, total_steps: int) -> None:
        """The step decay does not depend on the run length; `total_steps` is taken for the common interface."""
        every, steady = self.cfg.decay_every, self.cfg.decay_steady

        def factor(step: int) -> float:
            return step_decay_factor(step, every, steady)

        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, factor) for k, opt in self.optimisers.items()}

    def generator_terms(self, result: dict, image: Tensor, mask: Tensor, stats: dict) -> dict[str, Tensor]:
        """The unweighted hole, valid and pyramid terms."""
        out, gt = to_authors_range(result["output"]), to_authors_range(image)
        hole_area = stats["hole_area"]
        terms = {"hole": masked_l1_per_batch(out, gt, mask, hole_area),
                 "valid": masked_l1_per_batch(out, gt, 1 - mask, 1 - hole_area)}
        if self.cfg.pyramid_weight > 0:
            if "pyramid" not in result:
                raise ValueError(f"framework pen: generator {self.cfg.generator!r} returns no pyramid; "
                                 "set pyramid_weight: 0 to train it without the pyramid loss")
            terms["pyramid"] = pyramid_l1([to_authors_range(p) for p in result["pyramid"]], gt)
        return terms

    def global_statistics(self, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """The hole's share of the global batch's pixels: the hole and valid L1 divide by it (and by 1 - it)
        whatever share of the batch this worker or micro-batch holds."""
        return {"hole_area": mean_over_workers(mask)}

    def fake_for_discriminator(self, result, image, mask):
        return to_authors_range(composite(result["output"], image, mask))

    def loss_weights(self):
        c = self.cfg
        return {"hole": c.hole_weight, "valid": c.valid_weight, "pyramid": c.pyramid_weight, "adv": c.adv_weight}
