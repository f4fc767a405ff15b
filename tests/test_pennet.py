"""PEN-Net generator and ATN against docs/authors_code.md 3.2-3.3."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inpaint.models.pennet import ATN, PENNet
from inpaint.models.registry import count_parameters, registered


@pytest.fixture(scope="module")
def generator() -> PENNet:
    torch.manual_seed(0)
    return registered()["pennet"].builder()


def test_parameter_count_matches_the_reference(generator: PENNet) -> None:
    info = registered()["pennet"]
    n = count_parameters(generator)
    assert n == 10_231_538  # docs/authors_code.md
    assert round(n / 1e4) == round(info.paper_params / 1e4)  # LGNet Table IV's 10.23 M
    fuse = [count_parameters(atn) for atn in generator.atn]  # at1 .. at5
    assert [round(fuse[0], -3), round(fuse[1], -3), round(fuse[2], -3), round(fuse[3], -4), fuse[4]] == [
        9_000, 37_000, 148_000, 590_000, 0]


def test_init_is_normal_0_02_with_zero_bias(generator: PENNet) -> None:
    conv = generator.up[4][0]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert conv.bias.abs().max().item() == 0


def _inputs(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    img = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4: size // 2, size // 4: 3 * size // 4] = 1
    return img * (1 - mask) + mask, mask


def test_forward_backward_64(generator: PENNet) -> None:
    masked, mask = _inputs(2, 64)
    out = generator(masked, mask)
    assert out["output"].shape == (2, 3, 64, 64)
    assert [tuple(p.shape) for p in out["pyramid"]] == [(2, 3, s, s) for s in (32, 16, 8, 4, 2)]
    for y in [out["output"], *out["pyramid"]]:
        assert y.min() >= 0 and y.max() <= 1
    generator.zero_grad()
    (out["output"].mean() + sum(p.mean() for p in out["pyramid"])).backward()
    for name, p in generator.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_forward_256_single_image(generator: PENNet) -> None:
    masked, mask = _inputs(1, 256)
    with torch.no_grad():
        out = generator(masked, mask)
    assert out["output"].shape == (1, 3, 256, 256)
    assert out["pyramid"][0].shape == (1, 3, 128, 128) and out["pyramid"][-1].shape == (1, 3, 8, 8)


@pytest.mark.parametrize("size", [32, 96])
def test_unsupported_sizes_raise(generator: PENNet, size: int) -> None:
    masked, mask = _inputs(1, size)
    with pytest.raises(ValueError, match="multiples of 64"):
        generator(masked, mask)


def test_mask_resize_switch() -> None:
    with pytest.raises(ValueError, match="mask_resize"):
        PENNet(mask_resize="bicubic")
    assert PENNet(mask_resize="nearest").atn[0].mask_resize == "nearest"


def _naive_atn(x1: torch.Tensor, x2: torch.Tensor, mask: torch.Tensor, ksize: int, mode: str) -> torch.Tensor:
    """The reference algorithm one sample, one key and one query at a time."""
    b, c1 = x1.shape[:2]
    h, w = x2.shape[-2:]
    p = ksize // 2
    m = F.interpolate(mask, size=(h, w), mode=mode, align_corners=True if mode == "bilinear" else None)
    x2p, mp, x1p = F.pad(x2, (p, p, p, p)), F.pad(m, (p, p, p, p)), F.pad(x1, (1, 1, 1, 1))
    out = torch.zeros(b, c1, 2 * h + 2, 2 * w + 2, dtype=x1.dtype)
    positions = [(i, j) for i in range(h) for j in range(w)]
    for n in range(b):
        scores = torch.zeros(len(positions), len(positions), dtype=x1.dtype)
        valid = torch.zeros(len(positions), dtype=x1.dtype)
        for k, (ki, kj) in enumerate(positions):
            key = x2p[n, :, ki:ki + ksize, kj:kj + ksize]
            key = key / max(key.pow(2).sum().sqrt().item(), 1e-4)
            valid[k] = float(mp[n, :, ki:ki + ksize, kj:kj + ksize].mean().item() == 0)
            for q, (qi, qj) in enumerate(positions):
                scores[k, q] = (key * x2p[n, :, qi:qi + ksize, qj:qj + ksize]).sum()
        weights = torch.softmax(10 * scores * valid[:, None], dim=0) * valid[:, None]
        weights = weights.clamp(min=1e-8)
        for k, (ki, kj) in enumerate(positions):
            raw = x1p[n, :, 2 * ki:2 * ki + 4, 2 * kj:2 * kj + 4]
            for q, (qi, qj) in enumerate(positions):
                out[n, :, 2 * qi:2 * qi + 4, 2 * qj:2 * qj + 4] += weights[k, q] * raw
    return out[:, :, 1:-1, 1:-1] / 4


@pytest.mark.parametrize("ksize", [1, 3])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_atn_matches_naive_reference(ksize: int, mode: str) -> None:
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    x2 = torch.randn(2, 6, 4, 4, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
    mask[0, :, 2:9, 3:12] = 1
    mask[1, :, 10:, :5] = 1
    atn = ATN(4, ksize=ksize, fuse=False, mask_resize=mode)
    torch.testing.assert_close(atn(x1, x2, mask), _naive_atn(x1, x2, mask, ksize, mode))


def test_atn_fuse_is_four_dilated_relu_branches() -> None:
    atn = ATN(8)
    assert [branch[0].dilation[0] for branch in atn.fuse] == [1, 2, 4, 8]
    x1, x2 = torch.randn(1, 8, 8, 8), torch.randn(1, 6, 4, 4)
    y = atn(x1, x2, torch.zeros(1, 1, 8, 8))
    assert y.shape == x1.shape and y.min() >= 0


def test_fully_valid_keys_sum_to_one() -> None:
    attn = ATN(4, fuse=False).attention(torch.randn(2, 6, 4, 4), torch.zeros(2, 1, 4, 4))
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 16))


def test_a_key_is_valid_only_if_its_mask_patch_is_exactly_zero() -> None:
    mask = torch.zeros(1, 1, 5, 5)
    mask[0, 0, 0, 0] = 1e-6  # a tiny bilinear residue still invalidates every key touching it
    # small features keep the scores near 0, so the invalid keys' share of the softmax is visible
    attn = ATN(4, fuse=False).attention(0.01 * torch.randn(1, 6, 5, 5), mask)
    # with 3x3 keys and zero padding, the keys centred at (0,0), (0,1), (1,0), (1,1) see the pixel
    masked_keys = [0, 1, 5, 6]
    assert (attn[0, masked_keys] == 1e-8).all()
    others = [k for k in range(25) if k not in masked_keys]
    assert (attn[0, others] > 1e-8).all()
    assert (attn[0].sum(0) < 0.9).all()  # invalid keys still take softmax mass before zeroing, as the authors'


def _unfold_bmm_atn(atn: ATN, x1: torch.Tensor, x2: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The previous formulation of the same ATN: scores as one bmm of unfolded patches, transfer as bmm + fold."""
    h, w = x2.shape[-2:]
    pad = atn.ksize // 2
    patches = F.unfold(x2, atn.ksize, padding=pad)
    keys = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)
    scores = torch.bmm(keys.transpose(1, 2), patches)
    align = True if atn.mask_resize == "bilinear" else None
    m = F.interpolate(mask, size=(h, w), mode=atn.mask_resize, align_corners=align)
    valid = (F.unfold(m, atn.ksize, padding=pad).mean(1) == 0).to(x2.dtype).unsqueeze(2)
    attn = (F.softmax(scores * valid * atn.softmax_scale, dim=1) * valid).clamp_min(1e-8)
    raw = F.unfold(x1, 4, stride=2, padding=1)
    y = F.fold(torch.bmm(raw, attn), x1.shape[-2:], 4, stride=2, padding=1) / 4
    return y if atn.fuse is None else torch.cat([branch(y) for branch in atn.fuse], dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ksize", [1, 3])
def test_conv_atn_equals_the_unfold_bmm_formulation_with_gradients(ksize: int, dtype: torch.dtype) -> None:
    """Batch of 4 with a different hole each (one without a hole, one all hole), fuse on: outputs and every
    gradient within 1e-5. In float32 the fuse weights' gradients (sums over every pixel) differ by float
    rounding (up to 4e-5 relative), so the gradients are compared in float64, where rounding is far below the
    tolerance."""
    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(4, 8, 32, 32, generator=g, dtype=dtype)
    x2 = torch.randn(4, 12, 16, 16, generator=g, dtype=dtype)
    mask = torch.zeros(4, 1, 64, 64, dtype=dtype)
    mask[0, :, 8:30, 10:40] = 1
    mask[1, :, 40:, :20] = 1  # sample 2: no hole, every key valid
    mask[3] = 1  # sample 3: all hole, no key valid
    torch.manual_seed(4)
    atn = ATN(8, ksize=ksize).to(dtype)
    results = []
    for formulation in (atn, lambda *a: _unfold_bmm_atn(atn, *a)):
        a1, a2 = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        y = formulation(a1, a2, mask)
        atn.zero_grad()
        (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).view_as(y)).sum().backward()  # non-uniform upstream
        grads = (a1.grad, a2.grad, *[p.grad.clone() for p in atn.parameters()])
        results.append((y.detach(), *grads) if dtype == torch.float64 else (y.detach(),))
    for ours, reference in zip(*results):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
