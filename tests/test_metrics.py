"""Each metric against an independent computation or a known value, and the evaluator's invariance to
the batch size (every number, confidence intervals included)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from inpaint import bins
from inpaint.config import EvaluateConfig
from inpaint.evaluation import metrics
from inpaint.evaluation.evaluate import SetMetrics, evaluate


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


@pytest.mark.parametrize("n_real, n_fake", [(10, 14), (2, 5), (300, 200)])
def test_frechet_distance_of_features_equals_the_moments_route(n_real, n_fake):
    """Fewer images than dimensions (rank-deficient covariances, the smoke profile's case) and more. Within
    1e-7: with rank-deficient covariances the moments' route adds the square roots of rounding-level eigenvalues
    (about 1e-8 relative here)."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(n_real, 32)), rng.normal(size=(n_fake, 32)) * 1.3 + 0.2
    assert metrics.frechet_distance_of_features(a, b) == pytest.approx(
        metrics.frechet_distance(*metrics.feature_stats(a), *metrics.feature_stats(b)), rel=1e-7)
    assert metrics.frechet_distance_of_features(a, a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 images per set, got 1 fake"):
        metrics.frechet_distance_of_features(a, b[:1])


def test_fid_inception_loads_the_torch_cache_file_through_pytorch_fid_own_loader(tmp_path, monkeypatch):
    """With the weight file in the torch cache, pytorch-fid's own loader (torch.hub) reads it: no download
    (the socket is closed to be sure), and the network holds that file's weights; a file elsewhere is refused."""
    import socket

    from inpaint import weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(3)
    state = metrics.fid_inception_random_state()
    path = weights.FILES["fid_inception"].path
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    torch.manual_seed(4)  # a fresh network would now differ from the file
    monkeypatch.setattr(socket, "socket", lambda *a, **k: pytest.fail("tried the network"))
    first_block = metrics.InceptionFeatures(64, weights_path=path).model.blocks[0][0]  # Conv2d_1a_3x3
    assert torch.equal(first_block.conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    with pytest.raises(FileNotFoundError, match="from the torch cache only"):
        metrics.InceptionFeatures(64, weights_path=tmp_path / "elsewhere.pth")


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


def _naive_unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """KID's definition written out pair by pair (Binkowski et al. 2018, eq. 5), cubic polynomial kernel."""
    d, n = x.shape[1], len(x)

    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / (n * n)
    return xx + yy - 2 * xy


def test_kid_matches_the_pairwise_definition():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(20, 6)) + 0.5
    # one subset of all 20 features: the draw is a permutation, which the statistic does not see
    assert metrics.kernel_inception_distance(x, y, subsets=1, seed=0) == pytest.approx(_naive_unbiased_mmd2(x, y),
                                                                                       rel=1e-9)
    # subsets of 8: the mean of the naive statistic over the same seeded draws
    draws = np.random.default_rng(7)
    naive = np.mean([_naive_unbiased_mmd2(x[draws.choice(20, 8, replace=False)], y[draws.choice(20, 8, replace=False)])
                     for _ in range(5)])
    assert metrics.kernel_inception_distance(x, y, subsets=5, seed=7, max_subset=8) == pytest.approx(naive, rel=1e-9)


def test_kid_is_near_zero_for_one_law_grows_with_the_shift_and_is_seeded():
    rng = np.random.default_rng(5)
    base, same = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    kids = [metrics.kernel_inception_distance(base, same + shift, subsets=20, seed=0, max_subset=100)
            for shift in (0.0, 0.3, 1.0)]
    assert abs(kids[0]) < 0.1 * kids[1] and kids[1] < kids[2]
    assert kids[0] == metrics.kernel_inception_distance(base, same, subsets=20, seed=0, max_subset=100)
    assert kids[0] != metrics.kernel_inception_distance(base, same, subsets=20, seed=1, max_subset=100)


def test_bootstrap_interval_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(6)
    trials = 300
    covered = 0
    for t in range(trials):
        sample = rng.exponential(2.0, size=60)  # skewed, true mean 2
        low, high = metrics.bootstrap_ci(sample, samples=400, seed=t)
        assert low < sample.mean() < high
        covered += low <= 2.0 <= high
    assert 0.88 <= covered / trials <= 0.99  # the percentile bootstrap undercovers a little at n = 60


def test_bootstrap_interval_is_seeded_and_narrows_with_more_data():
    values = np.random.default_rng(8).normal(size=400)
    assert metrics.bootstrap_ci(values, 500, seed=[0, 3]) == metrics.bootstrap_ci(values, 500, seed=[0, 3])
    assert metrics.bootstrap_ci(values, 500, seed=[0, 3]) != metrics.bootstrap_ci(values, 500, seed=[0, 4])
    narrow, wide = (np.diff(metrics.bootstrap_ci(values[:n], 500, seed=0))[0] for n in (400, 25))
    assert narrow < wide / 2
    assert metrics.bootstrap_ci(np.full(10, 3.0), 100, seed=0) == (3.0, 3.0)


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


@pytest.mark.slow
def test_evaluator_gives_the_same_numbers_with_batch_1_and_16():
    from inpaint.models.registry import build

    torch.manual_seed(0)
    gen = build("gdn_generator").eval()
    images = np.random.default_rng(2).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    masks = _Masks(12, 64)
    pairs = pd.DataFrame([{"bin": b, "image": k, "mask": (b * 2 + k) % 12} for b in range(6) for k in range(6)])
    results = []
    for batch in (1, 16):
        cfg = EvaluateConfig(batch_size=batch, fid_dims=64, kid_subsets=5, bootstrap=200)
        torch.manual_seed(0)
        res, per_image = evaluate(gen, images, masks, pairs, cfg, SetMetrics(cfg, "random"))
        results.append(res)
    assert results[0].keys() == results[1].keys()
    for k in results[0]:
        assert results[0][k] == pytest.approx(results[1][k], rel=1e-5, abs=1e-6), k
    assert {"fid/bin_0p01_0p1", "kid/bin_0p01_0p1", "lpips/bin_0p5_0p6", "psnr/bin_0p1_0p2", "fid/all", "kid/all",
            "psnr_ci_low/bin_0p1_0p2", "lpips_ci_high/bin_0p5_0p6"} <= results[0].keys()
    for b in range(6):
        key = bins.key(b)
        assert results[0][f"ssim_ci_low/{key}"] <= results[0][f"ssim/{key}"] <= results[0][f"ssim_ci_high/{key}"]
        assert results[0][f"psnr/{key}"] == pytest.approx(per_image[per_image.bin == b].psnr.mean())
    assert list(per_image.columns) == ["bin", "image", "mask", "l1", "psnr", "ssim", "lpips"] and len(per_image) == 36
