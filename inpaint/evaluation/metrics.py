"""The one set of metrics every model is scored with (docs/protocol.md section 4).

Per-image metrics score a batch of composites against their ground truths, both with uint8 values (rounded
as saved): l1 (%) = mean |a - b| / 255 x 100; PSNR with data range 255, capped at 100 dB for identical images;
SSIM as scikit-image computes it (Gaussian 11x11, sigma 1.5, population covariance as Wang et al., or the
51-wide uniform window with sample covariance of the GDN / PEN-Net code), as separable filters over the
batch in float64 (equal to scikit-image within 1e-9, tests/test_metrics.py). Set metrics: FID and KID from
pytorch-fid's Inception features, LPIPS from `lpips`. Per-image means come with a bootstrap 95% confidence
interval: the test sets are small enough (a few hundred to two thousand pairs per bin) that a difference in
the second decimal may be noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inpaint import weights

PSNR_CAP = 100.0
SSIM_K1, SSIM_K2 = 0.01, 0.03


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """B x 3 x H x W in [0, 1] -> B x H x W x 3 uint8, by rounding (not truncation, unlike the authors)."""
    return quantise(x).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def quantise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> the uint8 values 0..255 (rounded), kept as floats on x's device."""
    return (x.clamp(0, 1) * 255).round()


def _batch(a) -> torch.Tensor:
    """uint8 values as float64 B x 3 x H x W: from a B x 3 x H x W tensor, or a (B x) H x W x 3 array."""
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a if a.ndim == 4 else a[None]).permute(0, 3, 1, 2)
    return a.double()


def l1_percent_batch(a, b) -> torch.Tensor:
    return (_batch(a) - _batch(b)).abs().mean(dim=(1, 2, 3)) / 255 * 100


def psnr_batch(a, b) -> torch.Tensor:
    mse = (_batch(a) - _batch(b)).square().mean(dim=(1, 2, 3))
    return (10 * torch.log10(255.0**2 / mse)).clamp(max=PSNR_CAP)  # mse 0: inf, capped


def _ssim_window(window: int) -> tuple[torch.Tensor, bool]:
    """The 1-D weights of scikit-image's filter and whether it uses the sample covariance."""
    if window == 11:  # gaussian_filter(sigma=1.5, truncate=3.5): radius int(3.5 * 1.5 + 0.5) = 5
        x = torch.arange(-5, 6, dtype=torch.float64)
        w = torch.exp(-0.5 * (x / 1.5) ** 2)
        return w / w.sum(), False
    if window == 51:
        return torch.full((51,), 1 / 51, dtype=torch.float64), True
    raise ValueError(f"evaluate.ssim_window must be 11 or 51, got {window}")


def _valid_filter(w: torch.Tensor, size: int) -> torch.Tensor:
    """The (size - k + 1) x size matrix of the valid 1-D correlation with weights w: filtering both axes is two
    matrix products, which BLAS runs in float64 many times faster than a float64 convolution."""
    k = len(w)
    rows = torch.arange(size - k + 1, device=w.device)[:, None]
    return torch.zeros(size - k + 1, size, dtype=w.dtype, device=w.device).scatter_(
        1, rows + torch.arange(k, device=w.device), w.expand(size - k + 1, k).contiguous())


def ssim_batch(a, b, window: int = 11) -> torch.Tensor:
    """Mean SSIM per image over channels and the positions where the window fits inside the image: scikit-
    image filters the whole image and then crops (window - 1) / 2 pixels per side, which is the valid
    correlation, so no border mode matters."""
    w, sample = _ssim_window(window)
    x, y = _batch(a), _batch(b)
    h, wd = x.shape[-2:]
    if min(h, wd) < window:
        raise ValueError(f"SSIM window {window} exceeds the image size {(h, wd)}")
    w = w.to(x.device)
    down, across = _valid_filter(w, h), _valid_filter(w, wd).T

    def filt(z):
        return down @ z @ across

    ux, uy, uxx, uyy, uxy = (filt(z) for z in (x, y, x * x, y * y, x * y))
    norm = window**2 / (window**2 - 1) if sample else 1.0
    vx, vy, vxy = norm * (uxx - ux * ux), norm * (uyy - uy * uy), norm * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)


def per_image(a, b, window: int = 11) -> dict[str, np.ndarray]:
    """l1, PSNR and SSIM of each composite in a batch against its ground truth (uint8 values)."""
    return {name: f(a, b).cpu().numpy() for name, f in
            (("l1", l1_percent_batch), ("psnr", psnr_batch), ("ssim", lambda x, y: ssim_batch(x, y, window)))}


def l1_percent(a: np.ndarray, b: np.ndarray) -> float:
    """One pair of uint8 H x W x 3 images."""
    return float(l1_percent_batch(a, b)[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr_batch(a, b)[0])


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11) -> float:
    return float(ssim_batch(a, b, window)[0])


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


def frechet_distance_of_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from the features themselves, for sets of fewer images than dimensions (the smoke profile's bins):
    `frechet_distance` of their moments in O(n1 n2 d) instead of O(d^3). With A, B the centred features over
    sqrt(n - 1), S1 = A'A and S2 = B'B, and the nonzero eigenvalues of S1 S2 are those of (AB')(AB')': the
    squared singular values of the n1 x n2 matrix AB', so tr((S1 S2)^1/2) is the sum of those singular values."""
    for name, x in (("real", real), ("fake", fake)):
        if len(x) < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {len(x)} {name}")
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    a, b = (real - mu1) / np.sqrt(len(real) - 1), (fake - mu2) / np.sqrt(len(fake) - 1)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * tr_covmean)


def kernel_inception_distance(real, fake, subsets: int, seed: int, max_subset: int = 1000) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 between two feature sets under the polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over `subsets` random subsets of min(n, max_subset) features of
    each set (drawn without replacement, seeded). Unbiased: near 0, possibly negative, for equal laws.
    `real` and `fake`: n x d arrays, or `FeatureFile` rows (only the drawn subsets are read)."""
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


class Moments:
    """Mean and covariance of a feature set seen batch by batch (Chan, Golub and LeVeque's pairwise update of
    the mean and the centred scatter matrix, stable in float64): FID's statistics without the features. The
    d x d scatter is updated in place, so a set holds one d x d matrix however many batches it sees."""

    def __init__(self, dims: int):
        self.n, self.mean, self.scatter = 0, np.zeros(dims), np.zeros((dims, dims))

    def add(self, features: np.ndarray) -> None:
        batch_n, batch_mean = len(features), features.mean(axis=0)
        centred = features - batch_mean
        n = self.n + batch_n
        delta = batch_mean - self.mean
        self.scatter += centred.T @ centred
        self.scatter += np.outer(delta, delta * (self.n * batch_n / n))
        self.mean += delta * (batch_n / n)
        self.n = n

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sample covariance), as `feature_stats` of all the features added."""
        if self.n < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {self.n}")
        return self.mean, self.scatter / (self.n - 1)


class FeatureFile:
    """Feature rows appended batch by batch to a float32 file (Inception's own precision, so nothing is lost)
    and read back by row index: KID draws subsets from every pair's features, and holding them all would make
    the evaluator's memory grow with the number of pairs. `rows(start, stop)` is a view for a range."""

    def __init__(self, path: Path, dims: int, start: int = 0, stop: int | None = None):
        self.path, self.dims, self.start, self._stop = Path(path), dims, start, stop
        self.path.touch()

    @property
    def written(self) -> int:
        return self.path.stat().st_size // (4 * self.dims)

    @property
    def shape(self) -> tuple[int, int]:
        return ((self.written if self._stop is None else self._stop) - self.start, self.dims)

    def __len__(self) -> int:
        return self.shape[0]

    def append(self, features: np.ndarray) -> None:
        with open(self.path, "ab") as f:
            f.write(np.ascontiguousarray(features, dtype=np.float32).tobytes())

    def rows(self, start: int, stop: int) -> FeatureFile:
        return FeatureFile(self.path, self.dims, self.start + start, self.start + stop)

    def __getitem__(self, index) -> np.ndarray:
        """float64 rows; the file is mapped only for this read, so read pages do not stay resident."""
        mapped = np.memmap(self.path, np.float32, "r", shape=(self.written, self.dims))
        out = np.array(mapped[self.start: self.start + len(self)][index], dtype=np.float64)
        del mapped
        return out


def fid_inception_random_state() -> dict:
    """The state dict of pytorch-fid's Inception with its random initial weights (seeded by torch's RNG), for
    `weights: random` (tests only). pytorch-fid has no public way to skip its weight file: this and
    `_random_fid_inception` are the one place that patches its module, so that its URL loader hands back
    random weights instead of fetching anything."""
    from unittest import mock

    import pytorch_fid.inception as pfi

    built = {}
    make = pfi._inception_v3

    def capture(*args, **kwargs):
        built["model"] = make(*args, **kwargs)
        return built["model"]

    with mock.patch.object(pfi, "_inception_v3", capture), \
            mock.patch.object(pfi, "load_state_dict_from_url", lambda *_a, **_k: built["model"].state_dict()):
        pfi.fid_inception_v3()
    return built["model"].state_dict()


def _random_fid_inception(dims: int):
    from unittest import mock

    import pytorch_fid.inception as pfi

    state = fid_inception_random_state()
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *_a, **_k: state):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])


class InceptionFeatures:
    """pytorch-fid's InceptionV3 (pt_inception-2015-12-05) up to the block of `dims` features."""

    def __init__(self, dims: int, weights_path: Path | None, device: str = "cpu"):
        """`weights_path`: the weight file in the torch cache (inpaint/weights.py), which pytorch-fid's own
        loader (torch.hub) reads instead of downloading; None: random weights (tests only)."""
        from pytorch_fid.inception import InceptionV3

        if weights_path is None:
            model = _random_fid_inception(dims)
        elif Path(weights_path) != weights.FILES["fid_inception"].path or not Path(weights_path).is_file():
            raise FileNotFoundError(f"{weights_path}: pytorch-fid reads its weights from the torch cache only, "
                                    f"{weights.FILES['fid_inception'].path}")
        else:
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
        self.model = model.to(device).eval()
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
