"""Losses against values worked out by hand or by an independent formula, and the gradient paths that
the authors' choices create."""
import math

import pytest
import torch

from inpaint.losses import adversarial, detector, reconstruction as rec


def _logits_for(p1: torch.Tensor) -> torch.Tensor:
    """2-channel logits whose softmax channel 1 equals p1."""
    return torch.stack([torch.zeros_like(p1), torch.log(p1 / (1 - p1))], dim=1)


def test_focal_loss_on_a_2x2_map_by_hand():
    p1 = torch.tensor([[[0.9, 0.2], [0.6, 0.3]]])  # B=1, 2x2
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # one hole pixel: hole ratio 0.25
    a = 0.25
    terms = [
        -(1 - a) * (1 - 0.9) ** 2 * math.log(0.9),  # hole pixel: (1-alpha) p0^2 log p1
        -a * 0.2**2 * math.log(0.8),  # valid pixels: alpha p1^2 log p0
        -a * 0.6**2 * math.log(0.4),
        -a * 0.3**2 * math.log(0.7),
    ]
    got = detector.detector_loss(_logits_for(p1), mask, "focal", gamma=2.0)
    assert got.item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_bce_is_focal_without_focusing_and_ce_is_unweighted():
    p1 = torch.tensor([[[0.9, 0.2], [0.6, 0.3]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    bce = detector.detector_loss(_logits_for(p1), mask, "bce")
    want_bce = (-(0.75) * math.log(0.9) - 0.25 * (math.log(0.8) + math.log(0.4) + math.log(0.7))) / 4
    assert bce.item() == pytest.approx(want_bce, rel=1e-5)
    ce = detector.detector_loss(_logits_for(p1), mask, "ce")
    want_ce = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.7)) / 4
    assert ce.item() == pytest.approx(want_ce, rel=1e-5)


def test_detector_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        detector.detector_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="focal"):
        detector.detector_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), "dice")


def test_weight_mappings():
    v = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(rec.weight_mapping(v, "exp", 10.0), torch.tensor([1.0, 10**0.5, 10.0]))
    torch.testing.assert_close(rec.weight_mapping(v, "linear"), torch.tensor([1.0, 1.5, 2.0]))
    with pytest.raises(ValueError, match="exp_base > 1"):
        rec.weight_mapping(v, "exp", 1.0)


def test_hole_valid_l1_normalisations():
    a = torch.zeros(2, 3, 2, 2)
    b = torch.ones(2, 3, 2, 2)
    b[1] = 3.0  # second image differs by 3
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, :, 0, 0] = 1  # 1 hole pixel in image 0
    mask[1, :, :, :1] = 1  # 2 hole pixels in image 1
    # per image: each image's mean difference inside its hole, then the batch mean
    assert rec.masked_l1_per_image(a, b, mask).item() == pytest.approx((1 + 3) / 2)
    # per batch: all hole differences over all hole elements: (1*3 + 3*6) / 9
    assert rec.masked_l1_per_batch(a, b, mask).item() == pytest.approx((3 + 18) / 9)
    # PConv / GDN Weight: 6 in the hole, 1 outside, over every element
    w = rec.hole_valid_weight(mask, 6.0, 1.0)
    want = (6 * 3 * 1 + 1 * 3 * 3 + 6 * 3 * 3 * 2 + 1 * 3 * 3 * 2) / 24
    assert rec.weighted_l1(a, b, w).item() == pytest.approx(want)


def test_total_variation_and_pyramid():
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert rec.total_variation(img).item() == pytest.approx(0.0 + 1.0)
    target = torch.rand(1, 3, 8, 8)
    assert rec.pyramid_l1([target], target).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("kind, real, fake, d_want, g_want", [
    ("hinge", 2.0, -0.5, 0.5 * (0 + 0.5), 0.5),
    ("lsgan", 0.5, 0.5, 0.5 * (0.25 + 0.25), 0.25),
    ("nsgan", 0.0, 0.0, math.log(2), math.log(2)),
])
def test_adversarial_losses(kind, real, fake, d_want, g_want):
    r, f = torch.full((1, 1, 3, 3), real), torch.full((1, 1, 3, 3), fake)
    assert adversarial.discriminator_loss(r, f, kind).item() == pytest.approx(d_want, rel=1e-6)
    assert adversarial.generator_loss(f, kind).item() == pytest.approx(g_want, rel=1e-6)


def test_undetached_weight_lets_the_generator_loss_reach_the_detector():
    """The authors' W is not detached: the generator's loss has a gradient through the detector, which is
    what pushes the generator to make the detector say 'valid'."""
    from inpaint.models.gdn import hole_probability

    out = torch.rand(1, 3, 8, 8, requires_grad=True)
    w_conv = torch.nn.Conv2d(3, 2, 1)
    gt = torch.rand(1, 3, 8, 8)
    weight = rec.weight_mapping(hole_probability(w_conv(out)), "exp", 10.0)
    rec.weighted_l1(out, gt, weight).backward()
    assert w_conv.weight.grad.abs().sum() > 0
    g_attached = out.grad.clone()
    out.grad = None
    w_conv.zero_grad()
    weight = rec.weight_mapping(hole_probability(w_conv(out)), "exp", 10.0).detach()
    rec.weighted_l1(out, gt, weight).backward()
    assert w_conv.weight.grad is None or w_conv.weight.grad.abs().sum() == 0
    assert not torch.allclose(g_attached, out.grad)
