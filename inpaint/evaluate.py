"""One evaluator for every model (protocol.md section 4): the fixed test pairs of every hole-ratio bin,
streamed in batches, scored on the composite at the working resolution."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from inpaint import bins, metrics, weights
from inpaint.config import EvaluateConfig
from inpaint.data.pairs import TestPairs
from inpaint.frameworks.base import composite, masked_input
from inpaint.models.registry import build

PER_IMAGE = ("l1", "psnr", "ssim", "lpips")  # lpips only when its network is available
COMPLEXITY_SIZE = 256  # LGNet Table IV counts parameters and FLOPs at 256 x 256


def load_networks(model_path: Path) -> tuple[dict[str, torch.nn.Module], dict]:
    """The trained networks of runs/<variant>/model.pt: always the generator, and the detector of a Det
    variant when the file holds one (meta["detector"] names its builder)."""
    from inpaint.train import load_state

    state = load_state(model_path)
    if "generator" not in state:
        raise ValueError(f"{model_path}: holds no generator weights (not written by the train stage?)")
    meta = state["meta"]
    networks = {"generator": meta["generator"]}
    if "detector" in state:
        if "detector" not in meta:
            raise ValueError(f"{model_path}: detector weights but no meta['detector'] naming its builder")
        networks["detector"] = meta["detector"]
    built = {}
    for role, name in networks.items():
        built[role] = build(name, image_size=meta["image_size"])
        built[role].load_state_dict(state[role])
        built[role].eval()
    return built, meta


def load_generator(model_path: Path) -> tuple[torch.nn.Module, dict]:
    networks, meta = load_networks(model_path)
    return networks["generator"], meta


def read_pairs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the pairs stage writes the test pairs (`dvc repro pairs`)")
    pairs = pd.read_csv(path)
    missing = {"bin", "image", "mask"} - set(pairs.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing (expected bin, image, mask)")
    return pairs


class SetMetrics:
    """FID and LPIPS as the `weights` setting allows; records why either is not computed."""

    def __init__(self, cfg: EvaluateConfig, mode: str):
        self.status: dict[str, str] = {}
        self.fid = self._build("fid", "fid_inception", mode, lambda path: metrics.InceptionFeatures(cfg.fid_dims, path))
        self.lpips = self._build("lpips", weights.lpips_backbone(cfg.lpips_net), mode,
                                 lambda path: metrics.LPIPSDistance(cfg.lpips_net, pretrained_backbone=path is not None))

    def _build(self, name: str, key: str, mode: str, make):
        """The metric's network from the weight file `key`, random weights in `random` mode, or None (and a
        loud warning) when the file is missing in `auto` mode."""
        path = weights.resolve(key, mode)
        if path is None and mode != "random":
            self.status[name] = "not computed: " + weights.missing_message(weights.FILES[key])
            print(f"WARNING {name} {self.status[name]}")
            return None
        self.status[name] = "pretrained" if path else "random weights (uncalibrated)"
        return make(path)

    @property
    def pretrained(self) -> bool:
        """False when any computed metric used random weights."""
        return not any(s.startswith("random") for s in self.status.values())


def bin_pairs(pairs: pd.DataFrame, b: int, cfg: EvaluateConfig) -> np.ndarray:
    """The (image, mask) rows of bin `b`, cut to evaluate.pairs_per_bin."""
    sel = pairs[pairs.bin == b][["image", "mask"]].to_numpy()
    if cfg.pairs_per_bin:
        sel = sel[: cfg.pairs_per_bin]
    if len(sel) == 0:
        raise ValueError(f"no test pairs for bin {bins.label(b)}")
    return sel


@torch.no_grad()
def composites(generator: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The scored image: generator output inside the hole, input outside, rounded to uint8 (as saved)."""
    out = generator(masked_input(image, mask), mask)["output"]
    return torch.from_numpy(metrics.to_uint8(composite(out, image, mask))).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def score_bin(generator: torch.nn.Module, images: np.ndarray, masks, sel: np.ndarray, cfg: EvaluateConfig,
              set_metrics: SetMetrics, label: str) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """Per-image scores of one bin's pairs, and the Inception features of its ground truths and composites
    (None without FID's network)."""
    loader = torch.utils.data.DataLoader(TestPairs(images, masks, sel), batch_size=cfg.batch_size)
    scores, real, fake = [], [], []
    for image, mask in tqdm(loader, desc=f"evaluate {label}", unit="batch", leave=False):
        comp = composites(generator, image, mask)
        batch = pd.DataFrame([{"l1": metrics.l1_percent(a, g), "psnr": metrics.psnr(a, g),
                               "ssim": metrics.ssim(a, g, cfg.ssim_window)}
                              for a, g in zip(metrics.to_uint8(comp), metrics.to_uint8(image))])
        if set_metrics.lpips:
            batch["lpips"] = set_metrics.lpips(comp, image)
        scores.append(batch)
        if set_metrics.fid:
            real.append(set_metrics.fid(image))
            fake.append(set_metrics.fid(comp))
    features = (np.concatenate(real), np.concatenate(fake)) if real else (None, None)
    return pd.concat(scores, ignore_index=True), *features


def set_distances(real: np.ndarray, fake: np.ndarray, cfg: EvaluateConfig) -> dict[str, float]:
    """FID and KID between the ground truths' and the composites' Inception features."""
    mu1, s1 = metrics.feature_stats(real)
    mu2, s2 = metrics.feature_stats(fake)
    return {"fid": metrics.frechet_distance(mu1, s1, mu2, s2),
            "kid": metrics.kernel_inception_distance(real, fake, cfg.kid_subsets, cfg.seed)}


def mean_and_ci(scores: pd.DataFrame, cfg: EvaluateConfig, b: int) -> dict[str, float]:
    """Each per-image metric's mean and bootstrap 95% interval (`{m}`, `{m}_ci_low`, `{m}_ci_high`); the
    resamples are seeded by (evaluate.seed, bin) and shared by the metrics of a bin."""
    out = {}
    for m in PER_IMAGE:
        if m in scores:
            low, high = metrics.bootstrap_ci(scores[m].to_numpy(), cfg.bootstrap, [cfg.seed, b])
            out.update({m: float(scores[m].mean()), f"{m}_ci_low": low, f"{m}_ci_high": high})
    return out


@torch.no_grad()
def evaluate(generator: torch.nn.Module, images: np.ndarray, masks, pairs: pd.DataFrame, cfg: EvaluateConfig,
             set_metrics: SetMetrics) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics per bin (`{metric}/{bin key}`, with the per-image metrics' confidence intervals), FID and
    KID over the pairs of all bins together (`fid/all`, `kid/all`), and the per-image table."""
    results, tables, features = {}, [], []
    for b in range(len(bins.BINS)):
        scores, real, fake = score_bin(generator, images, masks, bin_pairs(pairs, b, cfg), cfg, set_metrics,
                                       bins.label(b))
        tables.append(scores.assign(bin=b))
        per_bin = mean_and_ci(scores, cfg, b)
        if real is not None:
            per_bin.update(set_distances(real, fake, cfg))
            features.append((real, fake))
        results.update({f"{m}/{bins.key(b)}": v for m, v in per_bin.items()})
    if features:
        real, fake = (np.concatenate(f) for f in zip(*features))
        results.update({f"{m}/all": v for m, v in set_distances(real, fake, cfg).items()})
    per_image = pd.concat(tables, ignore_index=True)
    return results, per_image[["bin", *[m for m in PER_IMAGE if m in per_image]]]


@torch.no_grad()
def inference_ms(generator: torch.nn.Module, image_size: int, repeats: int = 2) -> float:
    """Median wall time of one forward pass on one image (batch 1), after a warm-up pass, on the CPU (the
    evaluator's device)."""
    x, m = torch.rand(1, 3, image_size, image_size), torch.zeros(1, 1, image_size, image_size)
    generator(x, m)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generator(x, m)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def complexity(generator: torch.nn.Module, meta: dict) -> dict[str, float]:
    """LGNet Table IV's columns for the trained generator's architecture at 256 x 256, batch 1 (the papers'
    setting, whatever the working resolution): parameters, GFLOPs (2 per multiply-add, every matrix
    product), GMACs in Table IV's own convention (models/summary.py), and the CPU time of one forward pass
    of the architecture built at 256 (the trained weights do not change the time)."""
    from inpaint.models.summary import measure

    counted = measure(meta["generator"], COMPLEXITY_SIZE)
    size = COMPLEXITY_SIZE
    at_256 = generator if meta["image_size"] == size else build(meta["generator"], image_size=size)
    return {"params_m": counted["params"] / 1e6, f"gflops_{COMPLEXITY_SIZE}": counted["gflops"],
            f"gmacs_table_iv_{COMPLEXITY_SIZE}": counted["gmacs_table_iv"],
            "infer_ms_cpu": inference_ms(at_256.eval(), COMPLEXITY_SIZE), "infer_size": COMPLEXITY_SIZE}
