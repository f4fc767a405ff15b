"""Training frameworks: one step of each trains its networks, and the Det step reproduces the authors'
simultaneous update (G from the generator loss only, D from the detector loss only, same parameters)."""
import copy

import pytest
import torch
from pydantic import TypeAdapter

from inpaint.config import Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint.frameworks.base import masked_input
from inpaint.losses.detector import detector_loss
from inpaint.losses.reconstruction import weight_mapping, weighted_l1
from inpaint.models.gdn import hole_probability


def _framework(**cfg):
    variant = TypeAdapter(Variant).validate_python(cfg)
    torch.manual_seed(0)
    nets = build_networks(variant, 64)
    fw = build_framework(variant, nets)
    fw.make_optimisers()
    return fw


def _batch():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 64, 64, generator=g)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:40, 20:44] = 1
    return image, mask


@pytest.mark.parametrize("framework", ["weight", "adv", "det"])
def test_one_step_updates_every_network(framework):
    fw = _framework(framework=framework)
    before = {k: copy.deepcopy(v.state_dict()) for k, v in fw.networks.items()}
    losses = fw.step(*_batch())
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    for k, net in fw.networks.items():
        changed = any(not torch.equal(before[k][n], t) for n, t in net.state_dict().items())
        assert changed, f"{framework}: {k} did not change"
    v = fw.visuals(*_batch())
    assert {"masked", "output", "composite", "ground truth"} <= set(v)


def test_det_step_is_the_authors_simultaneous_update():
    fw = _framework(framework="det", optimiser={"lr_g": 1e-3, "lr_d": 1e-3})
    gen, det = copy.deepcopy(fw.networks["generator"]), copy.deepcopy(fw.networks["detector"])
    image, mask = _batch()
    # reference: gradients of each loss with respect to its own network only, from one forward pass
    out = gen(masked_input(image, mask), mask)["output"]
    logits = det(out)
    g_loss = weighted_l1(out, image, weight_mapping(hole_probability(logits), "exp", 10.0))
    d_loss = detector_loss(logits, mask, "focal", 2.0)
    g_grads = torch.autograd.grad(g_loss, list(gen.parameters()), retain_graph=True)
    d_grads = torch.autograd.grad(d_loss, list(det.parameters()))
    fw.step(image, mask)
    for net, grads in ((fw.networks["generator"], g_grads), (fw.networks["detector"], d_grads)):
        for p, g in zip(net.parameters(), grads):
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-7)


def test_det_with_detached_weight_gives_the_generator_no_detector_path():
    fw = _framework(framework="det", detach_weight=True)
    losses = fw.step(*_batch())
    assert losses["weight_mean"] >= 1.0
    assert "detector heat map" in fw.visuals(*_batch())
