"""The GPU speed switches (inpaint/training/speed.py), exercised on CPU: a framework trains through them, sees float32
outputs, saves checkpoints with the same keys as without them, and every family's gradient stays within a
stated distance of float32's."""
import pytest
import torch
from pydantic import TypeAdapter

from inpaint.config import TrainConfig, Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint.frameworks.base import unwrap
from inpaint.training import speed
from steps import FAMILIES, batch, image_size, one_step

SIZE = 32  # bfloat16 convolutions are slow on a CPU without bf16 units: 64 px costs 6x the time


def _framework(switches: dict):
    cfg = TypeAdapter(Variant).validate_python({"framework": "det"})
    tcfg = TrainConfig(**switches)
    torch.manual_seed(0)
    nets = {k: speed.apply(v, tcfg, torch.device("cpu")) for k, v in build_networks(cfg, SIZE).items()}
    fw = build_framework(cfg, nets)
    fw.make_optimisers()
    fw.make_schedulers(10)
    return fw, tcfg


@pytest.mark.parametrize("switches", [{"bf16": True}, {"channels_last": True}, {"bf16": True, "channels_last": True}])
def test_a_det_step_runs_under_the_switches_with_float32_losses(switches):
    fw, tcfg = _framework(switches)
    torch.manual_seed(1)
    image = speed.batch_to(torch.rand(2, 3, SIZE, SIZE), tcfg, torch.device("cpu"))
    mask = speed.batch_to((torch.rand(2, 1, SIZE, SIZE) > 0.7).float(), tcfg, torch.device("cpu"))
    if tcfg.channels_last:
        assert image.is_contiguous(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in unwrap(fw.networks["generator"]).state_dict().items()}
    losses = fw.step(image, mask)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    out = fw.networks["generator"](image, mask)["output"]
    assert out.dtype == torch.float32
    after = unwrap(fw.networks["generator"]).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the step changed nothing"
    assert all(v.dtype == before[k].dtype for k, v in after.items()), "parameters must stay float32"


def test_checkpoint_keys_do_not_depend_on_the_switches():
    plain, _ = _framework({})
    switched, _ = _framework({"bf16": True, "channels_last": True})
    a, b = plain.state_dict()["networks"], switched.state_dict()["networks"]
    assert {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}
    switched.load_state_dict(plain.state_dict())  # a checkpoint of one loads into the other


def test_bf16_changes_the_arithmetic_but_not_the_result_much():
    fw32, _ = _framework({})
    fw16, _ = _framework({"bf16": True})
    x, m = torch.rand(1, 3, SIZE, SIZE), torch.zeros(1, 1, SIZE, SIZE)
    with torch.no_grad():
        a, b = fw32.networks["generator"](x, m)["output"], fw16.networks["generator"](x, m)["output"]
    assert not torch.equal(a, b)  # autocast did run in bfloat16
    assert (a - b).abs().max() < 0.1


def _relative_error(got: dict, want: dict) -> dict[str, float]:
    """Per network: |g - g_float32| / |g_float32| over all its parameters' gradients (Euclidean norms)."""
    errors = {}
    for role, grads in want.items():
        ref = torch.cat([g.flatten() for g in grads.values()])
        diff = torch.cat([(got[role][n].float() - g).flatten() for n, g in grads.items()])
        errors[role] = (diff.norm() / ref.norm()).item()
    return errors


@pytest.mark.parametrize("name", FAMILIES)
def test_the_gpu_switches_keep_each_familys_gradient(name):
    """One step of each family on CPU, float32 against channels_last alone and against bf16 autocast with
    channels_last (the GPU configuration), compared on the gradient each optimiser steps on: relative
    Euclidean distance per network. channels_last changes only the order of the convolutions' sums: measured
    5e-7 to 5e-6 for most networks, 5e-4 for GDN's generator at 64 px (Adv) and 1e-3 for LGNet's C+L+G_att
    generator, whose gradients at initialisation are sums of large terms that nearly cancel; bound 1e-2. bf16
    rounds every convolution's inputs to 8 bits of mantissa (0.4 %), forward and back: measured 0.007 (GConv's
    generator) to 0.28 (GDN's generator at 32 px, for the same reason); bound 0.4, below the 0.5 of a
    gradient off by a factor of 2 (a loss or a cast in the wrong place)."""
    image, mask = batch(image_size(name), 2, torch.float32)
    want = one_step(name, image, mask)["grads"]
    layout = _relative_error(one_step(name, image, mask, switches=TrainConfig(channels_last=True))["grads"], want)
    bf16 = _relative_error(one_step(name, image, mask, switches=TrainConfig(bf16=True, channels_last=True))["grads"],
                           want)
    print(f"{name}: relative gradient error, channels_last {layout}, bf16 + channels_last {bf16}")
    assert all(e <= 1e-2 for e in layout.values()), layout
    assert all(e <= 0.4 for e in bf16.values()), bf16
    assert all(e > 0 for e in bf16.values()), "bf16 changed nothing: autocast did not run"
