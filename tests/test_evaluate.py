"""The streaming evaluator's parts against the computations they replace: batch l1 / PSNR / SSIM against
scikit-image one image at a time, FID's running moments against numpy's covariance, KID on features read back
from a file against KID on the arrays, ground truths scored once; and where evaluation runs."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inpaint.config import EvaluateConfig, load_params
from inpaint.evaluation import metrics
from inpaint.evaluation.evaluate import PairFeatures, gpus_wanted, on_ray, resolve_device


@pytest.fixture
def batch():
    """Composites and ground truths with uint8 values, 64 px (room for the 51-wide window); the last pair is
    identical (PSNR capped, SSIM 1)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    comp = np.clip(truth.astype(int) + rng.integers(-60, 60, truth.shape), 0, 255).astype(np.uint8)
    comp[2, :20] = truth[2, :20]  # partly exact, as outside a hole
    comp[-1] = truth[-1]
    return comp, truth


def test_batch_metrics_equal_scikit_image_per_image(batch):
    comp, truth = batch
    as_tensor = [torch.from_numpy(x).permute(0, 3, 1, 2).float() for x in batch]
    for window, reference in ((11, dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)),
                              (51, dict(win_size=51))):
        got = metrics.per_image(*as_tensor, window)
        for k, (a, g) in enumerate(zip(comp, truth)):
            assert got["ssim"][k] == pytest.approx(
                structural_similarity(a, g, data_range=255, channel_axis=2, **reference), abs=1e-9)
            expected_psnr = metrics.PSNR_CAP if k == len(comp) - 1 else peak_signal_noise_ratio(g, a, data_range=255)
            assert got["psnr"][k] == pytest.approx(expected_psnr, abs=1e-9)
            assert got["l1"][k] == pytest.approx(np.abs(a.astype(float) - g.astype(float)).mean() / 255 * 100, abs=1e-12)
    assert got["ssim"][-1] == pytest.approx(1.0) and got["psnr"][-1] == metrics.PSNR_CAP
    assert metrics.ssim(comp[0], truth[0], 51) == pytest.approx(got["ssim"][0], abs=1e-12)  # the one-pair form


def test_ssim_window_larger_than_the_image_is_refused():
    small = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="window 51 exceeds the image size"):
        metrics.ssim_batch(small, small, 51)


def test_running_moments_equal_numpy_mean_and_covariance():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(101, 7))  # an offset mean: the naive sum of squares would lose digits
    total = metrics.Moments(7)
    for chunk in np.split(x, [1, 17, 50, 51]):  # a batch of one included
        total.add(chunk)
    mean, cov = total.stats()
    assert np.allclose(mean, x.mean(0), rtol=1e-12, atol=1e-12)
    assert np.allclose(cov, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.Moments(7).stats()


def test_feature_file_reads_back_what_was_written_and_gives_the_same_kid(tmp_path):
    rng = np.random.default_rng(2)
    real, fake = (rng.normal(size=(40, 6)).astype(np.float32).astype(np.float64) for _ in range(2))
    files = {name: metrics.FeatureFile(tmp_path / f"{name}.f32", 6) for name in ("real", "fake")}
    for name, x in (("real", real), ("fake", fake)):
        for chunk in np.split(x, [3, 30]):
            files[name].append(chunk)
    assert len(files["real"]) == 40 and files["real"].shape == (40, 6)
    assert np.array_equal(files["real"][np.arange(40)], real)
    view = files["fake"].rows(10, 25)
    assert len(view) == 15 and np.array_equal(view[[14, 0, 3]], fake[[24, 10, 13]])
    assert metrics.kernel_inception_distance(files["real"], files["fake"], 5, seed=3, max_subset=16) == \
        metrics.kernel_inception_distance(real, fake, 5, seed=3, max_subset=16)


class CountingFeatures:
    """A stand-in for Inception: 2 x 2 average-pooled pixels (12 features), counting the images it sees."""

    def __init__(self):
        self.images = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.images += len(images)
        return torch.nn.functional.adaptive_avg_pool2d(images, 2).flatten(1).numpy().astype(np.float64)


def _fid(real: np.ndarray, fake: np.ndarray) -> float:
    """The evaluator's FID route: from the features when a set has fewer images than features, else from
    the moments (the two agree within 1e-7, tests/test_metrics.py)."""
    if min(len(real), len(fake)) < real.shape[1]:
        return metrics.frechet_distance_of_features(real, fake)
    return metrics.frechet_distance(*metrics.feature_stats(real), *metrics.feature_stats(fake))


@pytest.mark.parametrize("n", [20, 6, 3])
def test_pair_features_give_fid_and_kid_of_the_arrays_and_score_each_ground_truth_once(tmp_path, n):
    """n = 20 images (more than the 12 features: the moments' route everywhere); n = 6: each bin's FID from its
    features (fewer images than features), the FID over all 18 pairs from the moments; n = 3: from the
    features everywhere. Moments (d x d) are held only for the sets whose FID uses them."""
    rng = np.random.default_rng(4)
    truths = torch.rand(n, 3, 16, 16)
    feats = CountingFeatures()
    store = PairFeatures(tmp_path, 12, feats, 3 * n)
    cfg = EvaluateConfig(kid_subsets=4, seed=1)
    expected, all_real, all_fake = [], [], []
    for _ in range(3):  # three bins of n pairs, each pairing every image once, in batches of 6
        store.start_bin(n)
        assert (store.bin is None) == (n < 12) and (store.all is None) == (3 * n < 12)
        order = rng.permutation(n)
        comps = (truths[order] + 0.1 * torch.rand(n, 3, 16, 16)).clamp(0, 1)
        for start in range(0, n, 6):
            ids = order[start: start + 6]
            store.add(ids, truths[ids], comps[start: start + 6])
        real, fake = feats(truths[order]), feats(comps)
        feats.images -= 2 * n  # the reference's own calls do not count
        expected.append((real, fake))
        got = store.end_bin(cfg)
        assert got["fid"] == pytest.approx(_fid(real, fake), rel=1e-9)
        assert got["kid"] == pytest.approx(metrics.kernel_inception_distance(real, fake, 4, 1), rel=1e-9)
        all_real.append(real)
        all_fake.append(fake)
    real, fake = np.concatenate(all_real), np.concatenate(all_fake)
    got = store.over_all(cfg)
    # 18 pairs of 12 features for n = 6: an ill-conditioned covariance, float rounding near 1e-9
    assert got["fid"] == pytest.approx(_fid(real, fake), rel=1e-9 if n > 12 else 1e-8)
    assert got["kid"] == pytest.approx(metrics.kernel_inception_distance(real, fake, 4, 1), rel=1e-9)
    assert feats.images == 3 * n + n  # 3n composites, n ground truths (not 3n)


def test_device_auto_is_the_cpu_here_and_cuda_without_a_gpu_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="evaluate.device is cuda but this process sees no GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError):
        EvaluateConfig(device="tpu")


def test_evaluation_goes_to_ray_when_asked_or_on_a_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    params = load_params()
    assert not on_ray(params)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert on_ray(params)
    assert not on_ray(params.model_copy(update={"evaluate": EvaluateConfig(on_ray=False)}))
    monkeypatch.delenv("RAY_ADDRESS")
    assert on_ray(params.model_copy(update={"evaluate": EvaluateConfig(on_ray=True)}))


@pytest.mark.parametrize("device, use_gpu, gpus", [("auto", False, 0), ("auto", True, 1), ("cpu", True, 0),
                                                    ("cuda", False, 1)])
def test_the_ray_task_asks_for_a_gpu_when_evaluation_or_training_uses_one(device, use_gpu, gpus):
    params = load_params()
    params = params.model_copy(update={"evaluate": EvaluateConfig(device=device),
                                       "train": params.train.model_copy(update={"use_gpu": use_gpu})})
    assert gpus_wanted(params) == gpus


def test_headline_metrics_say_why_a_metric_is_absent(tmp_path, monkeypatch):
    """metrics/<variant>.json: FID and KID (Inception) and LPIPS (AlexNet) left out for a missing weight file
    carry the evaluator's reason; computed metrics carry none."""
    import json

    from inpaint import bins
    from inpaint.evaluation import record
    from inpaint.evaluation.evaluate import SetMetrics

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty torch cache
    status = SetMetrics(EvaluateConfig(), "auto")
    per_bin = {f"{m}/{bins.key(b)}": 1.0 for m in ("psnr", "ssim", "l1") for b in range(len(bins.BINS))}
    out = json.loads(json.dumps(record.headline(per_bin, 10, status.absent)))
    inception = "no pt_inception-2015-12-05-6726825d.pth in the torch cache"
    assert out["absent"] == {"fid": inception, "kid": inception, "lpips": "no alexnet-owt-7be5be79.pth in the torch cache"}
    assert out.keys() == {"psnr", "ssim", "l1", "steps", "absent"}

    computed = {**per_bin, **{f"lpips/{bins.key(b)}": 0.1 for b in range(len(bins.BINS))}, "fid/all": 3.0,
                "kid/all": 0.01}
    assert record.headline(computed, 10, {}).keys() == {"psnr", "ssim", "l1", "lpips", "fid", "kid", "steps"}
