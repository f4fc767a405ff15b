"""The GDN paper's three frameworks (Sec. 4.3), all on one generator, with simultaneous G and D updates
from one forward pass and Adam (G 1e-4, D 1e-5, betas (0, 0.9)) as the authors' code.

- Weight: L1 weighted 6 in the hole and 1 outside, normalised by the image size (as PConv).
- Adv: Weight's L1 + an SN-PatchGAN on the composite (hinge, weight 0.1 by default).
- Det: mean(W * |out - gt|) with W = mapping(V), V the detector's hole probability on the raw output;
  the detector learns the mask from the output alone (focal loss by default).

"Simultaneous" means both updates use the gradients at the same parameters: the generator's loss is
backpropagated first, the discriminator's/detector's gradients are then computed from its own loss
alone (TF's optimiser for D lists D's variables only), and only then do both optimisers step. Inside the
generator's loss D / the detector is `frozen`: the backward goes through it to G without computing the
weight gradients D's optimiser would ignore. With train.accumulate, both backwards run per micro-batch and
both optimisers step once after the last.
"""
from __future__ import annotations

import torch

from inpaint.frameworks.base import Framework, Losses, composite, frozen, masked_input, unwrap
from inpaint.losses.adversarial import discriminator_loss, generator_loss
from inpaint.losses.detector import detector_loss
from inpaint.losses.reconstruction import hole_valid_weight, weight_mapping, weighted_l1
from inpaint.models.gdn import hole_probability


class WeightFramework(Framework):
    def _reconstruction(self, out, image, mask):
        return weighted_l1(out, image, hole_valid_weight(mask, self.cfg.hole_weight, self.cfg.valid_weight))

    def step(self, image, mask):
        opt = self.optimisers["generator"]
        opt.zero_grad(set_to_none=True)
        logged = Losses(self.share)
        for image, mask in self.micro_batches(image, mask):
            out = self.networks["generator"](masked_input(image, mask), mask)["output"]
            loss = self._reconstruction(out, image, mask)
            (loss * self.share).backward()
            logged.add(loss_g=loss, l1=(out - image).abs().mean())
        opt.step()
        return logged.totals


class AdvFramework(WeightFramework):
    def step(self, image, mask):
        gen, disc = self.networks["generator"], self.networks["discriminator"]
        opt_g, opt_d = self.optimisers["generator"], self.optimisers["discriminator"]
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        logged = Losses(self.share)
        for image, mask in self.micro_batches(image, mask, judges=(disc,)):
            out = gen(masked_input(image, mask), mask)["output"]
            comp = composite(out, image, mask)
            rec = self._reconstruction(out, image, mask)
            with frozen(disc) as judge:
                adv = generator_loss(judge(comp), self.cfg.gan_loss)
            loss_g = rec + self.cfg.adv_weight * adv
            (loss_g * self.share).backward()  # D is frozen: G's loss gives D no gradient
            real, fake = disc(torch.cat([image, comp.detach()])).chunk(2)
            loss_d = discriminator_loss(real, fake, self.cfg.gan_loss)
            (loss_d * self.share).backward()
            logged.add(loss_g=loss_g, loss_rec=rec, loss_adv=adv, loss_d=loss_d, l1=(out - image).abs().mean())
        opt_g.step()
        opt_d.step()
        return logged.totals


class DetFramework(Framework):
    def _weight(self, logits):
        return weight_mapping(hole_probability(logits), self.cfg.weight_mapping, self.cfg.exp_base)

    def step(self, image, mask):
        gen, det = self.networks["generator"], self.networks["detector"]
        opt_g, opt_d = self.optimisers["generator"], self.optimisers["detector"]
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        logged = Losses(self.share)
        for image, mask in self.micro_batches(image, mask, judges=(det,)):
            out = gen(masked_input(image, mask), mask)["output"]
            if self.cfg.detach_weight:
                logits = det(out.detach())
                weight = self._weight(logits).detach()
                loss_g = weighted_l1(out, image, weight)
                loss_d = detector_loss(logits, mask, self.cfg.detector_loss, self.cfg.gamma)
                ((loss_g + loss_d) * self.share).backward()  # disjoint parameters: G gets loss_g, D gets loss_d
            else:
                with frozen(det) as judge:
                    weight = self._weight(judge(out))
                loss_g = weighted_l1(out, image, weight)
                (loss_g * self.share).backward()  # the detector is frozen: its optimiser sees only its own loss
                logits = det(out.detach())
                loss_d = detector_loss(logits, mask, self.cfg.detector_loss, self.cfg.gamma)
                (loss_d * self.share).backward()
            logged.add(loss_g=loss_g, loss_d=loss_d, weight_mean=weight.mean(), l1=(out - image).abs().mean())
        opt_g.step()
        opt_d.step()
        return logged.totals

    @torch.no_grad()
    def visuals(self, image, mask):
        v = super().visuals(image, mask)
        heat = hole_probability(unwrap(self.networks["detector"])(v["output"]))  # rank 0 alone (base.py)
        v["detector heat map"] = heat.expand(-1, 3, -1, -1)
        return v
