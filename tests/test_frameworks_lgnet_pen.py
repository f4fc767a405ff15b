"""LGNet and PEN-Net training recipes: one step trains every network, D sees what the authors' D sees, the G
loss is the authors' sum (recomputed here independently, in their [-1, 1] range), the VGG-16 weights setting
behaves as docs/protocol.md section 4 says, the lr schedules, and checkpoints carry the schedulers.

Cost: one LGNet (C+L) step and one PEN-Net step at 64x64, batch 2, shared by several tests (module fixtures).
"""
import copy
import types

import pytest
import torch
from pydantic import TypeAdapter

from inpaint import weights
from inpaint.config import ParamsError, Variant, resolve
from inpaint.frameworks import build_framework, build_networks
from inpaint.frameworks.base import masked_input
from inpaint.frameworks.lgnet import linear_decay_factor
from inpaint.frameworks.pennet import step_decay_factor
from inpaint.training.train import switched_off

TOTAL_STEPS = 10


def _variant(**cfg):
    return TypeAdapter(Variant).validate_python(cfg)


def _framework(variant, seed=0, weights_mode="random", total_steps=TOTAL_STEPS):
    torch.manual_seed(seed)
    fw = build_framework(variant, build_networks(variant, 64), weights_mode=weights_mode)
    fw.make_optimisers()
    fw.make_schedulers(total_steps)
    return fw


def _batch():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 64, 64, generator=g)
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 16:40, 20:44] = 1
    mask[1, :, 8:20, 30:60] = 1  # a different hole area per image: per-image and per-batch norms differ
    return image, mask


def _pm(x):
    return x * 2 - 1


def _one_step(variant):
    """A framework after one step, with copies of its networks from before it and D's inputs during it."""
    fw = _framework(variant)
    before = {k: copy.deepcopy(v) for k, v in fw.networks.items()}
    seen = []
    hook = fw.networks["discriminator"].register_forward_pre_hook(
        lambda module, args: seen.append((args[0].detach().clone(), args[0].requires_grad)))
    image, mask = _batch()
    losses = fw.step(image, mask)
    hook.remove()
    return types.SimpleNamespace(fw=fw, before=before, seen=seen, losses=losses, image=image, mask=mask)


@pytest.fixture(scope="module")
def lgnet_run():
    return _one_step(_variant(framework="lgnet", generator="lgnet_c_l"))


@pytest.fixture(scope="module")
def lgnet_ref(lgnet_run):
    """The generator's forward before the step (a copy: same parameters, same batch statistics), with grad."""
    r = lgnet_run
    return r.before["generator"](masked_input(r.image, r.mask), r.mask)


@pytest.fixture(scope="module")
def pen_run():
    return _one_step(_variant(framework="pen"))


def _changed(before, after):
    return any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))


@pytest.mark.parametrize("run", ["lgnet_run", "pen_run"])
def test_one_step_updates_every_network(run, request):
    r = request.getfixturevalue(run)
    assert {"loss_g", "loss_d", "loss_adv", "loss_hole", "loss_valid", "l1"} <= set(r.losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in r.losses.values()), r.losses
    for k, net in r.fw.networks.items():
        assert _changed(r.before[k], net), f"{run}: {k} did not change"


def test_lgnet_visuals_show_every_stage(lgnet_run):
    v = lgnet_run.fw.visuals(lgnet_run.image, lgnet_run.mask)
    assert list(v) == ["masked", "merged 1", "merged 2", "output", "ground truth"]


def test_lgnet_discriminator_sees_the_stage1_composite(lgnet_run, lgnet_ref):
    r, ref = lgnet_run, {k: [x.detach() for x in v] for k, v in lgnet_ref.items() if k != "output"}
    (d_step, d_step_grad), (g_step, g_step_grad) = r.seen
    torch.testing.assert_close(d_step, torch.cat([_pm(r.image), _pm(ref["merged"][0])]))
    assert not d_step_grad  # the D step's fake is merged_1.detach()
    torch.testing.assert_close(g_step, _pm(ref["merged"][0]))
    assert g_step_grad  # the G step backpropagates through D(merged_1)
    assert not torch.allclose(g_step, _pm(ref["merged"][-1]))  # not the final stage


def _l1_mask_per_image(a, b, m):  # the authors' l1_loss_mask
    return ((a * m - b * m).abs().sum((1, 2, 3)) / (m.sum((1, 2, 3)) * 3 + 1e-12)).mean()


def _gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.einsum("bcn,bdn->bcd", f, f)


def _tv(x):
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()


def _replay_d_step(disc, real, fake, cfg):
    """The D step on a copy of D: LSGAN / hinge, 0.5 (real + fake), one fresh Adam step."""
    s_real, s_fake = disc(torch.cat([real, fake])).chunk(2)
    if cfg.gan_loss == "lsgan":
        loss = 0.5 * (((s_real - 1) ** 2).mean() + (s_fake ** 2).mean())
    else:
        loss = 0.5 * (torch.relu(1 - s_real).mean() + torch.relu(1 + s_fake).mean())
    o = cfg.optimiser
    opt = torch.optim.Adam(disc.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2))
    loss.backward()
    opt.step()
    return loss


def test_lgnet_generator_loss_is_the_authors_sum(lgnet_run, lgnet_ref):
    r, res = lgnet_run, lgnet_ref
    cfg, fw = r.fw.cfg, r.fw
    gen, disc = r.before["generator"], r.before["discriminator"]
    image, mask = r.image, r.mask
    outs, merged = [_pm(x) for x in res["stages"]], [_pm(x) for x in res["merged"]]
    gt = _pm(image)
    loss_d = _replay_d_step(disc, gt, merged[0].detach(), cfg)

    want = {"valid": 0, "hole": 0, "perceptual": 0, "style": 0, "tv": 0}
    vgg = fw.perceptual.vgg  # the fixed (random-weight) instrument; the formulas below are the authors'
    phi_gt = [f.detach() for f in vgg(image)]
    for k in range(2):
        want["valid"] = want["valid"] + _l1_mask_per_image(outs[k], gt, 1 - mask)
        want["hole"] = want["hole"] + _l1_mask_per_image(outs[k], gt, mask)
        if k == 0:
            continue
        for x in (res["stages"][k], res["merged"][k]):
            for fg, fx in zip(phi_gt, vgg(x)):
                c, h, w = fx.shape[1:]
                want["perceptual"] = want["perceptual"] + (fg - fx).abs().mean()
                want["style"] = want["style"] + ((_gram(fg) - _gram(fx)).abs() / (c * h * w)).mean()
        want["tv"] = want["tv"] + _tv(merged[k] * mask)
    want["adv"] = ((disc(merged[0]) - 1) ** 2).mean()
    total = (cfg.valid_weight * want["valid"] + cfg.hole_weight * want["hole"] + cfg.perceptual_weight
             * want["perceptual"] + cfg.style_weight * want["style"] + cfg.tv_weight * want["tv"]
             + cfg.adv_weight * want["adv"])

    for k, v in want.items():
        assert r.losses[f"loss_{k}"] == pytest.approx(v.item(), rel=1e-4, abs=1e-7), k
    assert r.losses["loss_g"] == pytest.approx(total.item(), rel=1e-4)
    assert r.losses["loss_d"] == pytest.approx(loss_d.item(), rel=1e-4)
    # one backward of that sum: compare the gradients of Net_L (stage-2 terms only) and of Net_C's last layer
    # (stage-1 and stage-2 terms and the adversarial one); the rest of Net_C would cost a full backward
    def checked(g):
        return [*g.stages[0].up[0].parameters(), *g.stages[1].parameters()]
    grads = torch.autograd.grad(total, checked(gen))
    for p, g in zip(checked(fw.networks["generator"]), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-6)


def test_pen_generator_loss_is_the_authors_sum(pen_run):
    r = pen_run
    cfg = r.fw.cfg
    gen, disc = r.before["generator"], r.before["discriminator"]
    image, mask = r.image, r.mask
    with torch.no_grad():
        res = gen(masked_input(image, mask), mask)
    out, gt = _pm(res["output"]), _pm(image)
    comp = out * mask + gt * (1 - mask)
    (d_step, _), (g_step, _) = r.seen
    torch.testing.assert_close(d_step, torch.cat([gt, comp]))
    torch.testing.assert_close(g_step, comp)
    loss_d = _replay_d_step(disc, gt, comp, cfg)
    want = {  # the authors' trainer: batch-level normalisation, pyramid against gt resized bilinearly
        "hole": (out * mask - gt * mask).abs().mean() / mask.mean(),
        "valid": (out * (1 - mask) - gt * (1 - mask)).abs().mean() / (1 - mask).mean(),
        "pyramid": sum((_pm(p) - torch.nn.functional.interpolate(gt, size=p.shape[-2:], mode="bilinear",
                                                                 align_corners=True)).abs().mean()
                       for p in res["pyramid"]),
        "adv": -disc(comp).mean(),
    }
    for k, v in want.items():
        assert r.losses[f"loss_{k}"] == pytest.approx(v.item(), rel=1e-4, abs=1e-7), k
    total = sum(getattr(cfg, f"{k}_weight") * v for k, v in want.items())
    assert r.losses["loss_g"] == pytest.approx(total.item(), rel=1e-4)
    assert r.losses["loss_d"] == pytest.approx(loss_d.item(), rel=1e-4)


@pytest.fixture(scope="module")
def c_l():
    """A C+L variant and its networks, for building frameworks without stepping them."""
    variant = _variant(framework="lgnet", generator="lgnet_c_l")
    return variant, build_networks(variant, 64)


def test_auto_without_vgg16_switches_perceptual_and_style_off(c_l, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    variant, nets = c_l
    fw = build_framework(variant, nets, weights_mode="auto")
    assert fw.perceptual is None
    note = fw.notes["perceptual_style"]
    assert note.startswith("off: ") and "vgg16-397923af.pth" in note and str(tmp_path) in note
    assert switched_off("c_l", fw) == {"perceptual_style": note}  # recorded in the checkpoint's meta
    (line,) = capsys.readouterr().out.splitlines()  # and said once, naming the terms and the file
    assert line.startswith("WARNING train c_l: loss terms perceptual_style off: vgg16-397923af.pth")
    assert switched_off("c_l", fw, say=False) and not capsys.readouterr().out  # the other ranks say nothing
    image, mask = _batch()
    stages = [torch.rand_like(image), torch.rand_like(image)]
    terms = fw.generator_terms({"stages": stages, "merged": stages}, image, mask, {})
    assert set(terms) == {"valid", "hole", "tv"}


def test_required_without_vgg16_stops_naming_the_file(c_l, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(weights.MissingWeights, match="vgg16-397923af.pth"):
        build_framework(*c_l, weights_mode="required")


def test_present_vgg16_is_used_and_random_is_noted(c_l, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(0)
    fake = build_framework(*c_l, weights_mode="random")
    assert fake.notes["perceptual_style"].startswith("uncalibrated")
    (tmp_path / "checkpoints").mkdir()
    # a torchvision vgg16 state dict (features 0 .. 16) holding the random VGG's weights; the slices keep
    # torchvision's layer numbers as keys
    state = {f"features.{k}": v for block in fake.perceptual.vgg.slices for k, v in block.state_dict().items()}
    torch.save(state, tmp_path / "checkpoints" / "vgg16-397923af.pth")
    fw = build_framework(*c_l, weights_mode="auto")
    assert fw.notes["perceptual_style"] == "on: vgg16-397923af.pth"
    for a, b in zip(fw.perceptual.parameters(), fake.perceptual.parameters()):
        assert torch.equal(a, b)


def test_single_stage_lgnet_has_no_perceptual_terms():
    fw = _framework(_variant(framework="lgnet", generator="lgnet_c"), weights_mode="required")  # no VGG needed
    assert fw.perceptual is None and fw.notes["perceptual_style"].startswith("n/a")


def test_lgnet_framework_refuses_a_generator_without_stages():
    with pytest.raises(ValueError, match="not an LGNet chain"):
        _framework(_variant(framework="lgnet", generator="pennet"))


def _lrs(fw, steps):
    """lr of every optimiser at each step 0 .. steps - 1 (optimiser steps without gradients change nothing)."""
    seen = []
    for _ in range(steps):
        seen.append({k: opt.param_groups[0]["lr"] for k, opt in fw.optimisers.items()})
        for opt in fw.optimisers.values():
            opt.step()
        fw.advance_schedulers()
    return seen


def test_lgnet_lr_is_constant_then_linear_to_zero():
    fw = _framework(_variant(framework="lgnet", generator="lgnet_c"))  # constant_fraction 0.5 of 10 steps
    factors = [1, 1, 1, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0]
    for got, f in zip(_lrs(fw, 11), factors):
        assert got["generator"] == pytest.approx(2e-4 * f, abs=1e-12)
        assert got["discriminator"] == pytest.approx(2e-4 * f, abs=1e-12)
    # the paper's 100 + 100 epochs read as steps; constant_fraction 0 and 1 stay finite
    assert linear_decay_factor(99, 200, 0.5) == 1 and linear_decay_factor(100, 200, 0.5) == pytest.approx(100 / 101)
    assert linear_decay_factor(0, 4, 0.0) == pytest.approx(4 / 5) and linear_decay_factor(3, 4, 1.0) == 1


def test_pen_lr_steps_down_by_ten():
    fw = _framework(_variant(framework="pen", decay_every=3, decay_steady=7))
    factors = [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01]
    for got, f in zip(_lrs(fw, 10), factors):
        assert got["generator"] == pytest.approx(1e-4 * f) and got["discriminator"] == pytest.approx(1e-4 * f)
    assert step_decay_factor(330_000, 100_000, 10_000) == 1  # CelebA-HQ config: never decays
    assert step_decay_factor(200_000, 100_000, 310_000) == pytest.approx(0.01)  # DTD


@pytest.mark.parametrize("run", ["lgnet_run", "pen_run"])
def test_state_dict_restores_optimisers_and_schedulers(run, request):
    r = request.getfixturevalue(run)
    state = copy.deepcopy(r.fw.state_dict())
    fresh = _framework(r.fw.cfg, seed=1)
    fresh.load_state_dict(state)
    for k, opt in r.fw.optimisers.items():
        a, b = opt.state_dict(), fresh.optimisers[k].state_dict()
        assert a["param_groups"] == b["param_groups"]
        assert a["state"].keys() == b["state"].keys() and a["state"]
        for i in a["state"]:
            for name, t in a["state"][i].items():
                assert torch.equal(t, b["state"][i][name]), (k, i, name)
    for k, sch in r.fw.schedulers.items():
        assert sch.last_epoch == fresh.schedulers[k].last_epoch == 1
        assert sch.get_last_lr() == fresh.schedulers[k].get_last_lr()
    for k, net in r.fw.networks.items():
        assert not _changed(net, fresh.networks[k])
    del state["schedulers"]
    with pytest.raises(KeyError, match="lr scheduler"):
        fresh.load_state_dict(state)


def test_step_without_schedulers_is_refused():
    fw = build_framework(_variant(framework="pen"), build_networks(_variant(framework="pen"), 64))
    fw.make_optimisers()
    with pytest.raises(RuntimeError, match="make_schedulers"):
        fw.step(*_batch())


def test_config_defaults_and_bad_values_name_the_key():
    lg, pen = _variant(framework="lgnet"), _variant(framework="pen")
    assert (lg.generator, lg.gan_loss, lg.optimiser.lr_g, lg.optimiser.beta1, lg.constant_fraction) == \
        ("lgnet", "lsgan", 2e-4, 0.5, 0.5)
    assert (lg.hole_weight, lg.valid_weight, lg.perceptual_weight, lg.style_weight, lg.tv_weight, lg.adv_weight) == \
        (6, 1, 0.05, 120, 0.1, 0.1)
    assert (pen.generator, pen.gan_loss, pen.optimiser.lr_d, pen.pyramid_weight, pen.decay_every, pen.decay_steady) == \
        ("pennet", "hinge", 1e-4, 0.5, 100_000, 10_000)
    for bad, key in (({"framework": "pen", "decay_every": 0}, "variants.v.decay_every"),
                     ({"framework": "pen", "decay_steady": -1}, "variants.v.decay_steady"),
                     ({"framework": "lgnet", "constant_fraction": 1.5}, "variants.v.constant_fraction"),
                     ({"framework": "lgnet", "style_weight": -1}, "variants.v.style_weight")):
        with pytest.raises(ParamsError, match=key):
            resolve({"profile": "smoke", "variants": {"v": bad}})
