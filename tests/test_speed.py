"""The GPU speed switches (inpaint/speed.py), exercised on CPU: a framework trains through them, sees float32
outputs, and saves checkpoints with the same keys as without them."""
import pytest
import torch
from pydantic import TypeAdapter

from inpaint import speed
from inpaint.config import TrainConfig, Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint.frameworks.base import unwrap

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
