"""LGNet: parameter parity with the papers, stage chaining, weight sharing, and the attention module."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inpaint.models import lgnet as lg
from inpaint.models.attention import SelfAttention
from inpaint.models.registry import build, count_parameters, registered

# Exact counts at 256x256. The published figures (paper_params) are rounded to 0.01 M, and not always directly:
# Net_C's 54.42 M is the authors' "%.3f" print 54.415 rounded again, and LGNet_share's 60.58 M is 115.00 - 54.42.
# So the registry figure is checked to within the 0.01 M shown, and the exact count is pinned separately.
EXACT = {
    "net_c": 54_414_979,
    "net_l": 5_483_203,
    "net_g": 55_104_003,
    "lgnet": 115_002_185,
    "lgnet_share": 60_587_206,
    "lgnet_light": 67_095_337,
    "lgnet_c": 54_414_979,
    "lgnet_c_l_g_att": 115_002_185,
}
SHOWN_M = {"net_c": 54.42, "net_l": 5.48, "net_g": 55.10, "lgnet": 115.00, "lgnet_share": 60.58, "lgnet_light": 67.10}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_parameter_count_at_256(name: str) -> None:
    info = registered()[name]
    with torch.device("meta"):  # counting needs shapes only
        n = count_parameters(info.builder(image_size=256))
    assert n == EXACT[name]
    assert abs(n - info.paper_params) <= 10_000, f"{name}: {n / 1e6:.3f} M vs {info.paper_params / 1e6:.2f} M"
    if name in SHOWN_M:
        assert info.paper_params == round(SHOWN_M[name] * 1e6)


def test_light_reading() -> None:
    """67.10 M needs Net_L at ngf 64: the U-Nets at 48 are 30.61 M each (docs/authors_code.md 2.10), plus scaled
    attention."""
    with torch.device("meta"):
        assert count_parameters(lg.lgnet(variant="C", light=True)) == 30_612_195
        light_l48 = count_parameters(lg.lgnet(variant="C", light=True)) * 2 + count_parameters(
            lg.ResnetGenerator(ngf=48)) + sum(count_parameters(SelfAttention(c)) for c in (384, 192, 96))
    assert round(light_l48 / 1e6, 2) == 64.70  # the other reading misses the paper's 67.10 M


def test_table_vi_names_registered() -> None:
    models = registered()
    for variant in lg.TABLE_VI:
        info = models["lgnet_" + variant.lower().replace("+", "_")]
        assert info.role == "generator"


def _batch(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, size, size, generator=g)
    mask = torch.zeros(2, 1, size, size)
    mask[0, :, size // 4: size // 2, size // 4: 3 * size // 4] = 1
    mask[1, :, size // 2:, : size // 3] = 1
    return image * (1 - mask) + mask, mask


CASES = [(v, False, False) for v in lg.TABLE_VI] + [
    ("C+L+G_att", True, False), ("C+L+G_att", False, True), ("L", False, False)]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize(("variant", "light", "share"), CASES)
def test_forward_backward(variant: str, light: bool, share: bool, size: int) -> None:
    torch.manual_seed(0)
    model = lg.lgnet(variant=variant, light=light, share=share, image_size=size)
    masked, mask = _batch(size)
    result = model(masked, mask)
    n_stages = len(variant.split("+"))
    assert len(result["stages"]) == len(result["merged"]) == n_stages
    assert result["output"] is result["merged"][-1]
    for out, merged in zip(result["stages"], result["merged"]):
        assert out.shape == masked.shape
        assert 0 <= out.min() and out.max() <= 1
        assert torch.equal(merged[mask.expand_as(merged) == 0], masked[mask.expand_as(masked) == 0])
    sum(out.mean() for out in result["stages"]).backward()
    assert all(p.grad is not None for p in model.parameters())  # every weight, attention included, is trained


def test_each_stage_sees_the_previous_merged_image() -> None:
    model = lg.lgnet(variant="C+L+G_att", image_size=32)
    seen: list[torch.Tensor] = []
    for stage in model.stages:
        stage.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    masked, mask = _batch(32)
    with torch.no_grad():
        result = model(masked, mask)
    inputs = [masked] + result["merged"][:-1]
    for x, expected in zip(seen, inputs):
        torch.testing.assert_close(x, torch.cat([expected * 2 - 1, mask], dim=1), rtol=0, atol=0)


def test_share_reuses_net_c_parameters() -> None:
    model = lg.lgnet(variant="C+L+G_att", share=True, image_size=32)
    net_c, net_g = model.stages[0], model.stages[2]
    assert net_g.down is net_c.down and net_g.up is net_c.up
    assert len(net_c.attention) == 0 and len(net_g.attention) == 3
    own = {id(p) for p in net_g.parameters()} - {id(p) for p in net_c.parameters()}
    assert own == {id(p) for p in net_g.attention.parameters()}
    # the G stage alone, on a fixed input, must send gradient into Net_C's weights
    net_g(torch.randn(2, 4, 32, 32)).mean().backward()
    assert net_c.down[0][0].weight.grad is not None and net_c.up[0][1].weight.grad.abs().sum() > 0


def test_light_attention_channels_follow_ngf() -> None:
    g = lg.lgnet(variant="G_att", light=True, image_size=64).stages[0]
    assert {k: a.fuse.out_channels for k, a in g.attention.items()} == {"16": 384, "8": 192, "4": 96}


def test_coarse_from_registry() -> None:
    """The papers' "X + LG": here Net_L stands in for any registered first-stage generator."""
    model = lg.lgnet(variant="C+L", coarse="net_l", image_size=32)
    assert isinstance(model.stages[0], lg.LGNet) and model.zoo_coarse
    masked, mask = _batch(32)
    result = model(masked, mask)
    torch.testing.assert_close(result["stages"][0], model.stages[0](masked, mask)["output"])
    with pytest.raises(ValueError):
        lg.lgnet(coarse="net_l", share=True, image_size=32)


@pytest.mark.parametrize("kwargs", [
    {"variant": "C+X"}, {"variant": "L+C"}, {"image_size": 48}, {"variant": "G_att", "image_size": 16},
    {"norm": "group"}])
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        lg.lgnet(**{"image_size": 32, **kwargs})


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_other_norms(norm: str) -> None:
    model = build("net_g", norm=norm, image_size=32)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    masked, mask = _batch(32)
    assert model(masked, mask)["output"].shape == masked.shape


def test_init() -> None:
    torch.manual_seed(0)
    model = lg.lgnet(variant="C+L", image_size=32)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.02) < 1e-3 and abs(weights.mean().item()) < 1e-3
    assert abs(torch.cat([m.weight for m in norms]).mean().item() - 1) < 5e-3
    assert all(m.bias is None or not m.bias.any() for m in convs + norms)


def _naive_attention(module: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """docs/authors_code.md 2.6 as the authors compute it: per sample, keys as 1x1 conv filters, transposed conv
    back."""
    out = []
    for feat in x.split(1):
        c = feat.shape[1]
        kernels = feat[0].permute(1, 2, 0).reshape(-1, c, 1, 1) + 1e-7  # one 1x1 filter per position
        kernels = kernels / kernels.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        scores = F.conv2d(feat, kernels)  # 1 x N_keys x H x W
        scores = F.conv2d(F.pad(scores, (1, 1, 1, 1)), torch.ones(scores.shape[1], 1, 3, 3, dtype=x.dtype),
                          groups=scores.shape[1])
        out.append(F.conv_transpose2d(F.softmax(scores, dim=1), kernels))
    return module.fuse(torch.cat([torch.cat(out), x], dim=1))


def test_attention_matches_naive_loop() -> None:
    torch.manual_seed(0)
    module = SelfAttention(6).double()
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64) * 3  # non-square, to catch a transposed H/W
    torch.testing.assert_close(module(x), _naive_attention(module, x))
