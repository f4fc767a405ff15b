"""The iteration LGNet and PEN-Net share: forward G once, a D step on real vs the detached fake, then one
G backward of the weighted terms with the adversarial one through the D just updated.

Both authors' losses and discriminators see images in [-1, 1] (`to_authors_range`), so every term keeps
their magnitude and the balance of their loss weights. In the G loss D is `frozen` (as the authors'
set_requires_grad(netD, False)): G's backward computes no gradient for D's weights. DDP: D(cat[real, fake])
is one forward through the DDP wrapper followed by its backward; the frozen forward in the G loss bypasses
the wrapper, since it has no parameter gradients for DDP to reduce.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from inpaint.frameworks.base import Framework, Losses, frozen, masked_input
from inpaint.losses.adversarial import discriminator_loss, generator_loss


def to_authors_range(x: Tensor) -> Tensor:
    """[0, 1] -> the authors' [-1, 1]."""
    return x * 2 - 1


class DiscriminatorFirst(Framework):
    """Subclasses say what D judges (`fake_for_discriminator`; `real_for_discriminator` when D sees more than
    the image), the unweighted G terms (`generator_terms`, with `global_statistics` when one is normalised by
    the batch), their weights (`loss_weights`) and which output the logged l1 is about (`raw_output`)."""

    def fake_for_discriminator(self, result: dict, image: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must say what its discriminator judges")

    def generator_terms(self, result: dict, image: Tensor, mask: Tensor, stats: dict[str, Tensor]) -> dict[str, Tensor]:
        """The unweighted G terms on a micro-batch; `stats` are the `global_statistics` of the step."""
        raise NotImplementedError(f"{type(self).__name__} must define its generator loss terms")

    def loss_weights(self) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must weight its loss terms")

    def real_for_discriminator(self, image: Tensor, mask: Tensor) -> Tensor:
        """What D sees as real: the ground truth in the authors' range (DeepFill adds the mask)."""
        return to_authors_range(image)

    def raw_output(self, result: dict) -> Tensor:
        return result["output"]

    def global_statistics(self, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Batch-wide normalisers of the G terms, from this worker's whole share (every micro-batch) and the
        other workers': none unless a term is normalised by the batch (PEN-Net's mask area)."""
        return {}

    def step(self, image: Tensor, mask: Tensor) -> dict[str, float]:
        if not self.schedulers:
            raise RuntimeError(f"{type(self).__name__}: call make_schedulers(total_steps) after make_optimisers()")
        gen, disc = self.networks["generator"], self.networks["discriminator"]
        opt_g, opt_d = self.optimisers["generator"], self.optimisers["discriminator"]
        stats = self.global_statistics(image, mask)
        logged = Losses(self.share)
        # One micro-batch: its G forward feeds the D step and, after it, the G step. Several: the D pass runs
        # G without a graph and leaves G's buffers (BatchNorm's running statistics) as they were, and the G
        # pass runs G again on each micro-batch; the same parameters and inputs give the same outputs.
        kept = self.accumulate == 1
        results = []
        opt_d.zero_grad(set_to_none=True)
        for image_k, mask_k in self.micro_batches(image, mask, judges=(disc,)):
            with torch.set_grad_enabled(kept), contextlib.nullcontext() if kept else buffers_kept(gen):
                result = gen(masked_input(image_k, mask_k), mask_k)
            fake = self.fake_for_discriminator(result, image_k, mask_k)
            real = self.real_for_discriminator(image_k, mask_k)
            real_score, fake_score = disc(torch.cat([real, fake.detach()])).chunk(2)
            loss_d = discriminator_loss(real_score, fake_score, self.cfg.gan_loss)
            (loss_d * self.share).backward()
            logged.add(loss_d=loss_d)
            results.append(result if kept else None)
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        weights = self.loss_weights()
        for (image_k, mask_k), result in zip(self.micro_batches(image, mask, judges=(disc,)), results):
            if result is None:
                result = gen(masked_input(image_k, mask_k), mask_k)
            terms = self.generator_terms(result, image_k, mask_k, stats)
            with frozen(disc) as judge:
                terms["adv"] = generator_loss(judge(self.fake_for_discriminator(result, image_k, mask_k)),
                                              self.cfg.gan_loss)
            loss_g = sum(weights[k] * v for k, v in terms.items())
            (loss_g * self.share).backward()
            logged.add(loss_g=loss_g, **{f"loss_{k}": v for k, v in terms.items()},
                       l1=(self.raw_output(result) - image_k).abs().mean())
        opt_g.step()
        self.advance_schedulers()
        return logged.totals


@contextlib.contextmanager
def buffers_kept(network: torch.nn.Module) -> Iterator[None]:
    """Forwards inside the block leave `network`'s buffers (running statistics) as they found them."""
    saved = [b.clone() for b in network.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in zip(network.buffers(), saved):
                b.copy_(value)
