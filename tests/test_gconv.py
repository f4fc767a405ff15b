"""GConv (DeepFill v2): the published parameter count, the TF details the network reproduces (SAME padding,
align-corners nearest resize, gated convolution, contextual attention against a loop transcription), the
GConv framework's step, Det on GConv, and GDN Table 1's rows."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter

from conftest import square_hole_batch
from inpaint import bins
from inpaint.config import Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint.models.gconv import ContextualAttention, GatedConv, resize_nearest, same_pad
from inpaint.models.registry import build, count_parameters, registered
from inpaint.results import report


def test_parameter_count_is_lgnet_table_iv():
    n = count_parameters(build("gconv"))
    assert n == 4_052_478
    assert round(n / 1e6, 2) == 4.05 == registered()["gconv"].paper_params / 1e6


def test_tf_same_padding_puts_the_extra_pixel_after():
    x = torch.rand(1, 2, 8, 8)
    assert same_pad(x, 3, 2).shape[-2:] == (9, 9)
    torch.testing.assert_close(same_pad(x, 3, 2), F.pad(x, (0, 1, 0, 1)))
    torch.testing.assert_close(same_pad(x, 5, 2), F.pad(x, (1, 2, 1, 2)))
    torch.testing.assert_close(same_pad(x, 3, 1, dilation=4), F.pad(x, (4, 4, 4, 4)))


def test_nearest_resize_is_tf_align_corners():
    row = torch.arange(16.0).view(1, 1, 1, 16)
    assert resize_nearest(row, (1, 8)).flatten().tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert resize_nearest(torch.arange(4.0).view(1, 1, 1, 4), (1, 8)).flatten().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_gated_conv_returns_half_its_maps():
    torch.manual_seed(0)
    layer = GatedConv(4, 96, 3, 1)
    x = torch.rand(2, 4, 8, 8)
    raw = layer.conv(F.pad(x, (1, 1, 1, 1)))
    torch.testing.assert_close(layer(x), F.elu(raw[:, :48]) * torch.sigmoid(raw[:, 48:]))
    assert layer.out_channels == 48 and GatedConv(12, 3, gated=False).out_channels == 3


def _loop_contextual_attention(x, mask, scale=10.0):
    """The TF algorithm one query / key / shift at a time, for one sample."""
    c, big_h, big_w = x.shape[1:]
    h, w = big_h // 2, big_w // 2
    n = h * w
    small = F.pad(resize_nearest(x, (h, w)), (1, 1, 1, 1))[0]
    m = F.pad(resize_nearest(resize_nearest(mask, (big_h, big_w)), (h, w)), (1, 1, 1, 1))[0, 0]
    scores = torch.zeros(n, n)
    for q in range(n):
        qi, qj = divmod(q, w)
        for k in range(n):
            ki, kj = divmod(k, w)
            key = small[:, ki:ki + 3, kj:kj + 3]
            scores[q, k] = (small[:, qi:qi + 3, qj:qj + 3] * key).sum() / max(key.norm(), 1e-4)
    valid = torch.tensor([float(m[k // w:k // w + 3, k % w:k % w + 3].sum() == 0) for k in range(n)])

    def fuse(s):
        out = torch.zeros_like(s)
        for q in range(n):
            for k in range(n):
                out[q, k] = sum(s[q + d, k + d] for d in (-1, 0, 1) if 0 <= q + d < n and 0 <= k + d < n)
        return out

    scores = fuse(scores)
    perm = [(t % h) * w + t // h for t in range(n)]  # column-major position t -> row-major index
    column = fuse(scores[perm][:, perm])
    scores = torch.zeros_like(scores)
    scores[np.ix_(perm, perm)] = column
    attn = F.softmax(scores * valid * scale, dim=1) * valid
    padded = F.pad(x[0], (1, 1, 1, 1))
    out = torch.zeros(c, big_h + 2, big_w + 2)
    for q in range(n):
        qi, qj = divmod(q, w)
        for k in range(n):
            ki, kj = divmod(k, w)
            out[:, 2 * qi:2 * qi + 4, 2 * qj:2 * qj + 4] += attn[q, k] * padded[:, 2 * ki:2 * ki + 4, 2 * kj:2 * kj + 4]
    return out[:, 1:-1, 1:-1] / 4


def test_contextual_attention_equals_the_loop_transcription():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 12)
    mask = torch.zeros(2, 1, 32, 48)
    mask[0, :, 8:20, 12:30] = 1
    mask[1, :, 0:10, 30:48] = 1
    got = ContextualAttention()(x, mask)
    for i in range(2):
        torch.testing.assert_close(got[i], _loop_contextual_attention(x[i:i + 1], mask[i:i + 1]), rtol=1e-4, atol=1e-5)


def test_forward_backward_64_in_range_and_holes_ignored():
    torch.manual_seed(0)
    gen = build("gconv")
    image, mask = square_hole_batch()
    result = gen(image * (1 - mask) + mask, mask)
    assert result["output"].shape == (2, 3, 64, 64) and len(result["stages"]) == 2
    assert all(s.min() >= 0 and s.max() <= 1 for s in result["stages"])
    torch.testing.assert_close(gen(image * (1 - mask), mask)["output"], result["output"])
    (result["output"].mean() + result["stages"][0].mean()).backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_discriminator_sees_the_mask_channel():
    d = build("deepfill_sn_patchgan")
    assert d(torch.rand(2, 4, 64, 64)).shape == (2, 256)
    assert d(torch.rand(1, 4, 256, 256)).shape == (1, 256 * 4 * 4)
    with pytest.raises(ValueError, match="4 channels"):
        d(torch.rand(1, 3, 64, 64))


def _framework(**cfg):
    variant = TypeAdapter(Variant).validate_python(cfg)
    torch.manual_seed(0)
    fw = build_framework(variant, build_networks(variant, 64), weights_mode="random")
    fw.make_optimisers()
    fw.make_schedulers(10)
    return fw


@pytest.mark.parametrize("cfg", [{"framework": "gconv"}, {"framework": "det", "generator": "gconv"}],
                         ids=["gconv", "det_on_gconv"])
def test_one_step_updates_every_network(cfg):
    fw = _framework(**cfg)
    before = {k: copy.deepcopy(v.state_dict()) for k, v in fw.networks.items()}
    losses = fw.step(*square_hole_batch())
    assert all(np.isfinite(v) for v in losses.values())
    for k, net in fw.networks.items():
        assert any(not torch.equal(before[k][n], t) for n, t in net.state_dict().items()), f"{k} did not change"


def test_gconv_step_is_the_authors_losses():
    """G loss = mean|x1 - gt| + mean|x2 - gt| (in [-1, 1]) - D(composite, mask), after the D step."""
    fw = _framework(framework="gconv")
    image, mask = square_hole_batch()
    gen = copy.deepcopy(fw.networks["generator"])
    with torch.no_grad():
        stages = gen(image * (1 - mask) + mask, mask)["stages"]
    losses = fw.step(image, mask)
    want = sum(((s - image) * 2).abs().mean() for s in stages).item()
    assert losses["loss_l1"] == pytest.approx(want, rel=1e-5)
    assert losses["loss_g"] == pytest.approx(losses["loss_l1"] + losses["loss_adv"], rel=1e-5)


def test_gconv_framework_refuses_an_rgb_discriminator():
    with pytest.raises(ValueError, match="image and the mask"):
        _framework(framework="gconv", discriminator="sn_patchgan")


def test_gdn_table1_has_our_four_methods_in_the_papers_order():
    rows = []
    for k, (variant, framework) in enumerate([("gdn_det", "det"), ("gconv", "gconv"), ("pennet", "pen"),
                                              ("pconv", "pconv")]):
        row = {"variant": variant, "framework": framework}
        row |= {f"{m}/{bins.key(b)}": float(k) for b in range(len(bins.BINS)) for m in ("l1", "psnr", "ssim", "fid")}
        rows.append(row)
    frame, _ = report.gdn_table1(pd.DataFrame(rows), "celeba_hq", None)
    assert list(dict.fromkeys(frame.method)) == [
        "PConv (pconv, ours)", "PEN-Net (pennet, ours)", "GConv (gconv, ours)", "Det (gdn_det, ours)",
        "PConv (published)", "PEN (published)", "GConv (published)", "GDN (Det) (published)"]
    cell = frame[(frame.method == "GConv (gconv, ours)") & (frame.metric == "psnr") & (frame.bin == "1-10%")]
    assert cell.value.tolist() == [1.0]