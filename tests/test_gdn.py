"""GDN generator, pixel detector and SN-PatchGAN: parameter parity with the authors' code and shapes."""
import pytest
import torch
import torch.nn.functional as F

from inpaint.models.registry import build, count_parameters, registered


def test_parameter_counts_match_the_authors():
    assert count_parameters(build("gdn_generator")) == 10_779_328
    assert count_parameters(build("gdn_detector")) == 2_267_490  # the paper: about 2.27 M
    assert count_parameters(build("sn_patchgan")) == 4_318_401  # 4.32 M


def test_generator_is_the_authors_graph():
    """instance_norm(center=True, scale=True): a learned scale and shift per normalised channel (4,736 each);
    no convolution bias anywhere, the last 7x7 included (use_bias=False)."""
    gen = build("gdn_generator")
    named = dict(gen.named_parameters())
    assert sum(p.numel() for n, p in named.items() if n.endswith(".scale")) == 4_736
    assert sum(p.numel() for n, p in named.items() if n.endswith(".shift")) == 4_736
    convs = [m for m in gen.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert all(m.bias is None for m in convs)
    assert sum(m.weight.numel() for m in convs) == 10_769_856


def test_registry_metadata_agrees_with_built_models():
    models = registered()
    for name in ("gdn_generator", "gdn_detector", "sn_patchgan"):
        info = models[name]
        assert round(count_parameters(info.builder()) / 1e6, 2) == round(info.paper_params / 1e6, 2)


def test_patchgan_output_is_27x27_at_256():
    assert build("sn_patchgan")(torch.rand(1, 3, 256, 256)).shape == (1, 1, 27, 27)


def test_detector_reproduces_tf_same_padding():
    """A 4x4 stride-1 'SAME' conv in TF pads 1 before and 2 after: check the first layer against that."""
    det = build("gdn_detector")
    x = torch.rand(1, 3, 16, 16)
    conv = det.net[1]
    want = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias)
    got = det.net[:2](x)
    torch.testing.assert_close(got, want)
    assert det(torch.rand(2, 3, 64, 64)).shape == (2, 2, 64, 64)


def test_generator_forward_backward_and_range():
    gen = build("gdn_generator")
    masked, mask = torch.rand(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    out = gen(masked, mask)["output"]
    assert out.shape == (2, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    out.mean().backward()
    assert all(p.grad is not None for p in gen.parameters())


def test_generator_rejects_sizes_it_cannot_upsample_back():
    with pytest.raises(ValueError, match="multiples of 4"):
        build("gdn_generator")(torch.rand(1, 3, 66, 66), torch.zeros(1, 1, 66, 66))
