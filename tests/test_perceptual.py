"""VGG-16 perceptual and style losses against docs/authors_code.md 2.8."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from inpaint.losses.perceptual import PerceptualStyleLoss, VGG16Features, VGGWeightsError, gram


@pytest.fixture(scope="module")
def loss() -> PerceptualStyleLoss:
    torch.manual_seed(0)
    return PerceptualStyleLoss(None)


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_vgg_is_frozen_and_stays_in_eval(loss: PerceptualStyleLoss) -> None:
    loss.train()
    assert not loss.vgg.training and not any(m.training for m in loss.vgg.modules())
    assert not any(p.requires_grad for p in loss.parameters())


def test_features_are_pool1_pool2_pool3(loss: PerceptualStyleLoss) -> None:
    shapes = [tuple(f.shape) for f in loss.vgg(_images(1, 0))]
    assert shapes == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]


def test_identical_images_give_zero(loss: PerceptualStyleLoss) -> None:
    gt = _images(2, 1)
    perceptual, style = loss(gt, [gt.clone(), gt.clone()])
    assert perceptual.item() == pytest.approx(0, abs=1e-6) and style.item() == pytest.approx(0, abs=1e-6)


def test_different_images_give_positive_losses_with_gradients(loss: PerceptualStyleLoss) -> None:
    gt = _images(2, 1)
    x = _images(2, 2).requires_grad_()
    perceptual, style = loss(gt, [x])
    assert perceptual > 0 and style > 0
    (perceptual + style).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gram_matches_einsum() -> None:
    f = torch.randn(2, 5, 3, 4)
    torch.testing.assert_close(gram(f), torch.einsum("bchw,bdhw->bcd", f, f))


def test_losses_match_the_formulas_summed_over_images(loss: PerceptualStyleLoss) -> None:
    gt, a, b = _images(2, 1), _images(2, 2), _images(2, 3)
    perceptual, style = loss(gt, [a, b])
    want_p, want_s = 0.0, 0.0
    for x in (a, b):
        for fg, fx in zip(loss.vgg(gt), loss.vgg(x)):
            c, h, w = fg.shape[1:]
            want_p += (fg - fx).abs().mean().item()
            gg, gx = torch.einsum("bchw,bdhw->bcd", fg, fg), torch.einsum("bchw,bdhw->bcd", fx, fx)
            want_s += ((gg - gx).abs() / (c * h * w)).mean().item()
    assert perceptual.item() == pytest.approx(want_p, rel=1e-4)
    assert style.item() == pytest.approx(want_s, rel=1e-4)


def test_loads_a_torchvision_state_dict_and_maps_input_to_minus_one_one(tmp_path: Path) -> None:
    torch.manual_seed(3)
    vgg = torchvision.models.vgg16(weights=None).eval()
    # The real file also holds the classifier; its keys must be ignored (one small one stands for them).
    state = {k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}
    state["classifier.6.bias"] = vgg.state_dict()["classifier.6.bias"]
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)

    x = _images(1, 4)
    with torch.no_grad():
        got = VGG16Features(path)(x)
        y, want = x * 2 - 1, []
        for i, layer in enumerate(vgg.features[:17]):
            y = layer(y)
            if i in (4, 9, 16):
                want.append(y)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsError, match="garbage.pth"):
        VGG16Features(bad)
    with pytest.raises(VGGWeightsError, match="absent.pth"):
        VGG16Features(tmp_path / "absent.pth")


def test_wrong_keys_or_shapes_name_the_path(tmp_path: Path) -> None:
    wrong_keys = tmp_path / "resnet_like.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong_keys)
    with pytest.raises(VGGWeightsError, match="resnet_like.pth.*missing features.0.bias, features.0.weight"):
        VGG16Features(wrong_keys)

    # slices keep torchvision's layer names: slices.i.j.* -> features.j.*
    state = {f"features.{k.split('.', 2)[2]}": v for k, v in VGG16Features(None).state_dict().items()}
    state["features.0.weight"] = torch.zeros(64, 4, 3, 3)
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save(state, wrong_shape)
    with pytest.raises(VGGWeightsError, match="wrong_shape.pth"):
        VGG16Features(wrong_shape)
