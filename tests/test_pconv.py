"""PConv: the partial convolution against the paper's formula, the U-Net's depth and parameter count, and the
PConv framework's loss, fine-tuning phase and VGG-16 handling."""
import copy

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter

from conftest import square_hole_batch
from inpaint import weights
from inpaint.config import Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint.frameworks.pconv import dilated_hole_tv, finetune_start
from inpaint.models.pconv import PartialConv, levels_for
from inpaint.models.registry import build, count_parameters, registered


def test_parameter_count_is_the_common_implementations():
    """naoto0804's PConvUNet(layer_size=7) at 256 has 25,779,796 learnable parameters; its frozen all-ones mask
    convolutions (25.77 M more entries) are not counted, and here the mask is summed by a 1-channel window."""
    info = registered()["pconv"]
    assert count_parameters(build("pconv", image_size=256)) == info.paper_params == 25_779_796
    assert "common implementation" in info.source and "paper gives no count" in info.source
    assert count_parameters(build("pconv", image_size=512)) == 32_859_732  # the paper's 8 levels
    assert count_parameters(build("pconv", image_size=64)) == 11_619_924


@pytest.mark.parametrize("size,levels", [(64, 5), (96, 5), (256, 7), (512, 8), (1024, 8)])
def test_depth_follows_the_image_size(size, levels):
    assert levels_for(size) == levels


def test_too_small_a_size_is_refused():
    with pytest.raises(ValueError, match="divisible by 16"):
        levels_for(40)
    with pytest.raises(ValueError, match="divisible by 32"):
        build("pconv", image_size=64)(*(square_hole_batch(1, 48)))


def test_partial_conv_is_the_papers_formula():
    """x' = W^T (X * M) sum(1) / sum(M) + b where sum(M) > 0, else 0; new mask 1 where sum(M) > 0."""
    torch.manual_seed(0)
    conv = PartialConv(2, 3, 3, 1, bias=True)
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(1, 2, 6, 6)
    valid = torch.ones(1, 1, 6, 6)
    valid[..., 1:5, 1:5] = 0  # a 4x4 hole: its centre 2x2 sees no valid pixel through a 3x3 window
    out, new = conv(x * valid, valid)
    for i in range(6):
        for j in range(6):
            xs = F.pad(x * valid, (1, 1, 1, 1))[0, :, i:i + 3, j:j + 3]
            ms = F.pad(valid, (1, 1, 1, 1))[0, 0, i:i + 3, j:j + 3]
            if ms.sum() == 0:
                assert new[0, 0, i, j] == 0 and (out[0, :, i, j] == 0).all()
                continue
            want = (conv.conv.weight * xs).sum((1, 2, 3)) * 9 / ms.sum() + conv.bias
            torch.testing.assert_close(out[0, :, i, j], want)
            assert new[0, 0, i, j] == 1
    assert new[0, 0, 2:4, 2:4].sum() == 0


def test_forward_backward_64_and_holes_never_read():
    torch.manual_seed(0)
    gen = build("pconv", image_size=64)
    image, mask = square_hole_batch()
    out = gen(image * (1 - mask) + mask, mask)["output"]
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()
    torch.testing.assert_close(gen(image * (1 - mask), mask)["output"], out)  # hole values play no part
    out.mean().backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_tv_counts_only_pairs_inside_the_dilated_hole():
    comp = torch.zeros(1, 1, 5, 5)
    comp[..., 0, 0] = 1.0  # differs from its neighbours, but (0, 0) is outside the dilated hole
    comp[..., 2, 3] = 2.0  # inside: pairs with (2, 2), (2, 4), (1, 3), (3, 3), all inside
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 2, 2:4] = 1  # dilation: rows 1-3, columns 1-4
    assert dilated_hole_tv(comp, mask).item() == pytest.approx(4 * 2.0 / 25)


def _framework(weights_mode="random", **cfg):
    variant = TypeAdapter(Variant).validate_python({"framework": "pconv", **cfg})
    torch.manual_seed(0)
    fw = build_framework(variant, build_networks(variant, 64), weights_mode=weights_mode)
    fw.make_optimisers()
    return fw


def test_one_step_trains_the_generator_with_every_term():
    fw = _framework()
    fw.make_schedulers(10)
    before = copy.deepcopy(fw.networks["generator"].state_dict())
    losses = fw.step(*square_hole_batch())
    assert {"loss_valid", "loss_hole", "loss_perceptual", "loss_style", "loss_tv"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    after = fw.networks["generator"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert fw.notes["perceptual_style"].startswith("uncalibrated")


def test_auto_without_vgg_switches_perceptual_and_style_off_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fw = _framework(weights_mode="auto")
    fw.make_schedulers(10)
    assert fw.notes["perceptual_style"].startswith("off:") and "vgg16-397923af.pth" in fw.notes["perceptual_style"]
    losses = fw.step(*square_hole_batch())
    assert "loss_perceptual" not in losses and "loss_style" not in losses
    with pytest.raises(weights.MissingWeights):
        _framework(weights_mode="required")
    assert weights.needed_for_training(fw.cfg) == ["vgg16"]


def test_finetuning_phase_lowers_lr_and_freezes_the_encoders_batchnorm():
    """4 steps, finetune_fraction 0.25: steps 0-2 at 2e-4 with every BN learning its statistics, step 3 at
    5e-5 with the encoder's BN statistics fixed and the decoder's still moving."""
    fw = _framework(perceptual_weight=0, style_weight=0)
    fw.make_schedulers(4)
    assert finetune_start(4, 0.25) == 3
    gen = fw.networks["generator"]
    enc_bn, dec_bn = gen.encoder[1].bn, gen.decoder[1].bn
    lrs = []
    for step in range(4):
        lrs.append(fw.optimisers["generator"].param_groups[0]["lr"])
        enc_before, dec_before = enc_bn.running_mean.clone(), dec_bn.running_mean.clone()
        fw.step(*square_hole_batch())
        assert torch.equal(enc_bn.running_mean, enc_before) == (step == 3)
        assert not torch.equal(dec_bn.running_mean, dec_before)
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 5e-5])


def test_the_pconv_recipe_trains_another_generator():
    """Any framework takes any generator: PConv's loss and schedule on PEN-Net (no encoder BN to freeze)."""
    fw = _framework(generator="pennet", finetune_fraction=0.5)
    fw.make_schedulers(2)
    before = copy.deepcopy(fw.networks["generator"].state_dict())
    for _ in range(2):
        losses = fw.step(*square_hole_batch())
    assert losses["finetuning"] == 1.0 and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    after = fw.networks["generator"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
