"""The one set of metrics every model is scored with (protocol.md section 4).

Per-image metrics take uint8 H x W x 3 arrays (composite and ground truth, rounded to uint8):
l1 (%) = mean |a - b| / 255 x 100; PSNR with data range 255, capped at 100 dB for identical images;
SSIM from scikit-image (Gaussian 11x11, sigma 1.5 as Wang et al., or the 51-wide uniform window of the
GDN / PEN-Net code). Set metrics: FID and KID from pytorch-fid's Inception features, LPIPS from `lpips`.
Per-image means come with a bootstrap 95% confidence interval: the test sets are small enough (a few
hundred to two thousand pairs per bin) that a difference in the second decimal may be noise.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PSNR_CAP = 100.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """B x 3 x H x W in [0, 1] -> B x H x W x 3 uint8, by rounding (not truncation, unlike the authors)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def l1_percent(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255 * 100)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(a, b):
        return PSNR_CAP
    return float(min(peak_signal_noise_ratio(b, a, data_range=255), PSNR_CAP))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11) -> float:
    if window == 11:
        return float(structural_similarity(a, b, data_range=255, channel_axis=2, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False))
    if window == 51:
        return float(structural_similarity(a, b, data_range=255, channel_axis=2, win_size=51))
    raise ValueError(f"evaluate.ssim_window must be 11 or 51, got {window}")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with tr((S1 S2)^1/2) computed as the sum of the square
    roots of the eigenvalues of the symmetric PSD matrix S1^1/2 S2 S1^1/2 (same value as scipy's sqrtm,
    several times faster and never complex)."""
    w1, v1 = np.linalg.eigh(sigma1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int, seed: int,
                              max_subset: int = 1000) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 between two feature sets under the polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over `subsets` random subsets of min(n, max_subset) features of
    each set (drawn without replacement, seeded). Unbiased: near 0, possibly negative, for equal laws."""
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {n}")
    size, d = min(n, max_subset), real.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values))


def bootstrap_ci(values: np.ndarray, samples: int, seed: int | list[int], level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: `samples` resamples with replacement, seeded."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(low), float(high)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(features) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


@contextmanager
def _inception_weights(path: Path | None):
    """pytorch-fid fetches its weights by URL; point it at the local file, or (path None, tests only) at
    the freshly built network's own random weights, so that nothing is ever downloaded."""
    import pytorch_fid.inception as pfi

    built = {}
    make = pfi._inception_v3

    def capture(*args, **kwargs):
        built["model"] = make(*args, **kwargs)
        return built["model"]

    def local(*_args, **_kwargs):
        return torch.load(path, map_location="cpu", weights_only=True) if path else built["model"].state_dict()

    with mock.patch.object(pfi, "_inception_v3", capture), mock.patch.object(pfi, "load_state_dict_from_url", local):
        yield


class InceptionFeatures:
    """pytorch-fid's InceptionV3 (pt_inception-2015-12-05) up to the block of `dims` features."""

    def __init__(self, dims: int, weights_path: Path | None, device: str = "cpu"):
        from pytorch_fid.inception import InceptionV3

        with _inception_weights(weights_path):
            self.model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """B x 3 x H x W in [0, 1] -> B x dims."""
        feats = self.model(images.to(self.device))[0]
        if feats.shape[-2:] != (1, 1):  # the 64- and 192-d blocks are spatial: pooled as pytorch-fid does
            feats = torch.nn.functional.adaptive_avg_pool2d(feats, (1, 1))
        return feats.flatten(1).cpu().numpy().astype(np.float64)


class LPIPSDistance:
    """lpips v0.1 (linear layers shipped in the package); the backbone from the torch cache or random."""

    def __init__(self, net: str, pretrained_backbone: bool, device: str = "cpu"):
        import lpips

        self.model = lpips.LPIPS(net=net, pnet_rand=not pretrained_backbone, verbose=False).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        """Per-image distances of two B x 3 x H x W batches in [0, 1]."""
        d = self.model(a.to(self.device) * 2 - 1, b.to(self.device) * 2 - 1)
        return d.flatten().cpu().numpy().astype(np.float64)
