"""Each metric against an independent computation or a known value, and the evaluator's invariance to
the batch size."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from inpaint import metrics
from inpaint.config import EvaluateConfig
from inpaint.evaluate import SetMetrics, evaluate


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)


def test_identical_images(image):
    assert metrics.l1_percent(image, image) == 0
    assert metrics.psnr(image, image) == metrics.PSNR_CAP
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(image, image, window=51 if image.shape[0] >= 51 else 11) == pytest.approx(1.0)


def test_known_shift_gives_known_psnr_and_l1(image):
    base = np.clip(image, 10, 245)
    shifted = base + 10  # every value off by exactly 10
    assert metrics.l1_percent(shifted, base) == pytest.approx(10 / 255 * 100)
    assert metrics.psnr(shifted, base) == pytest.approx(10 * math.log10(255**2 / 100))
    assert metrics.ssim(shifted, base) < 1


def test_ssim_window_is_checked(image):
    with pytest.raises(ValueError, match="11 or 51"):
        metrics.ssim(image, image, window=7)


def test_to_uint8_rounds():
    x = torch.tensor([0.6 / 255, 1.5 / 255, 254.4 / 255, 1.2]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert metrics.to_uint8(x)[0, ..., 0].ravel().tolist() == [1, 2, 254, 255]  # truncation would give 0, 1


def test_frechet_distance_matches_pytorch_fid():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 32)), rng.normal(size=(300, 32)) * 1.3 + 0.2
    mu1, s1 = metrics.feature_stats(a)
    mu2, s2 = metrics.feature_stats(b)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2),
                                                                       rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise():
    torch.manual_seed(0)
    feats = metrics.InceptionFeatures(64, weights_path=None)  # random weights: tests only
    images = torch.rand(24, 3, 64, 64)
    base = metrics.feature_stats(feats(images))
    assert metrics.frechet_distance(*base, *base) == pytest.approx(0, abs=1e-6)
    fids = []
    for sigma in (0.05, 0.3):
        noisy = (images + sigma * torch.randn_like(images)).clamp(0, 1)
        fids.append(metrics.frechet_distance(*base, *metrics.feature_stats(feats(noisy))))
    assert 0 < fids[0] < fids[1]


def test_lpips_is_zero_for_identical_images():
    d = metrics.LPIPSDistance("alex", pretrained_backbone=False)
    x = torch.rand(2, 3, 64, 64)
    assert np.allclose(d(x, x), 0, atol=1e-6)
    assert (d(x, torch.rand(2, 3, 64, 64)) > 0).all()


class _Masks:
    def __init__(self, n, size):
        rng = np.random.default_rng(3)
        self.data = (rng.random((n, size, size)) < 0.3).astype(np.uint8)

    def __getitem__(self, i):
        return self.data[i]


def test_evaluator_gives_the_same_numbers_with_batch_1_and_16():
    from inpaint.models.registry import build

    torch.manual_seed(0)
    gen = build("gdn_generator").eval()
    images = np.random.default_rng(2).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    masks = _Masks(12, 64)
    pairs = pd.DataFrame([{"bin": b, "image": k, "mask": (b * 2 + k) % 12} for b in range(6) for k in range(6)])
    results = []
    for batch in (1, 16):
        cfg = EvaluateConfig(batch_size=batch, fid_dims=64)
        torch.manual_seed(0)
        res, per_image = evaluate(gen, images, masks, pairs, cfg, SetMetrics(cfg, "random"))
        results.append(res)
    assert results[0].keys() == results[1].keys()
    for k in results[0]:
        assert results[0][k] == pytest.approx(results[1][k], rel=1e-5, abs=1e-6), k
    assert {"fid/bin_0p01_0p1", "lpips/bin_0p5_0p6", "psnr/bin_0p1_0p2"} <= results[0].keys()
