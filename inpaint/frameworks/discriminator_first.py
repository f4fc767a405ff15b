"""The iteration LGNet and PEN-Net share: forward G once, a D step on real vs the detached fake, then one
G backward of the weighted terms with the adversarial one through the D just updated.

Both authors' losses and discriminators see images in [-1, 1] (`to_authors_range`), so every term keeps
their magnitude and the balance of their loss weights. In the G loss D is `frozen` (as the authors'
set_requires_grad(netD, False)): G's backward computes no gradient for D's weights. DDP: D(cat[real, fake])
is one forward through the DDP wrapper followed by its backward; the frozen forward in the G loss bypasses
the wrapper, since it has no parameter gradients for DDP to reduce.
"""
from __future__ import annotations

import torch
from torch import Tensor

from inpaint.frameworks.base import Framework, frozen, masked_input
from inpaint.losses.adversarial import discriminator_loss, generator_loss


def to_authors_range(x: Tensor) -> Tensor:
    """[0, 1] -> the authors' [-1, 1]."""
    return x * 2 - 1


class DiscriminatorFirst(Framework):
    """Subclasses say what D judges (`fake_for_discriminator`; `real_for_discriminator` when D sees more than
    the image), the unweighted G terms (`generator_terms`), their weights (`loss_weights`) and which output
    the logged l1 is about (`raw_output`)."""

    def fake_for_discriminator(self, result: dict, image: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must say what its discriminator judges")

    def generator_terms(self, result: dict, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must define its generator loss terms")

    def loss_weights(self) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must weight its loss terms")

    def real_for_discriminator(self, image: Tensor, mask: Tensor) -> Tensor:
        """What D sees as real: the ground truth in the authors' range (DeepFill adds the mask)."""
        return to_authors_range(image)

    def raw_output(self, result: dict) -> Tensor:
        return result["output"]

    def step(self, image: Tensor, mask: Tensor) -> dict[str, float]:
        if not self.schedulers:
            raise RuntimeError(f"{type(self).__name__}: call make_schedulers(total_steps) after make_optimisers()")
        gen, disc = self.networks["generator"], self.networks["discriminator"]
        opt_g, opt_d = self.optimisers["generator"], self.optimisers["discriminator"]
        result = gen(masked_input(image, mask), mask)
        fake = self.fake_for_discriminator(result, image, mask)

        real_score, fake_score = disc(torch.cat([self.real_for_discriminator(image, mask), fake.detach()])).chunk(2)
        loss_d = discriminator_loss(real_score, fake_score, self.cfg.gan_loss)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        terms = self.generator_terms(result, image, mask)
        with frozen(disc) as judge:
            terms["adv"] = generator_loss(judge(fake), self.cfg.gan_loss)
        weights = self.loss_weights()
        loss_g = sum(weights[k] * v for k, v in terms.items())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        self.advance_schedulers()
        return {"loss_g": loss_g.item(), "loss_d": loss_d.item(), **{f"loss_{k}": v.item() for k, v in terms.items()},
                "l1": (self.raw_output(result) - image).abs().mean().item()}
