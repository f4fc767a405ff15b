"""One evaluator for every model (docs/protocol.md section 4): the fixed test pairs of every hole-ratio bin,
streamed in batches, scored on the composite at the working resolution.

Memory stays flat in the number of pairs: images are read batch by batch, the per-image scores (a few numbers
a pair) are kept, and the Inception features FID and KID need go to a temporary file, with FID's mean and
covariance accumulated batch by batch (a set of fewer images than dimensions gets its FID from its features
instead). A test image's ground-truth features are computed once and reused in every bin that pairs it with
a mask (a test image appears once per bin). The scoring runs in the stage's process or as a Ray task on the
cluster (`evaluate.on_ray`), on `evaluate.device`.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from inpaint import bins, checkpoints, weights
from inpaint.config import EvaluateConfig, Params
from inpaint.data.pairs import TestPairs
from inpaint.data.test_pairs import read_pairs
from inpaint.evaluation import metrics
from inpaint.evaluation.compare import PAIR_COLUMNS
from inpaint.frameworks.base import composite, masked_input
from inpaint.models.registry import build, build_loaded

PER_IMAGE = ("l1", "psnr", "ssim", "lpips")  # lpips only when its network is available
COMPLEXITY_SIZE = 256  # LGNet Table IV counts parameters and FLOPs at 256 x 256


def load_networks(model_path: Path) -> tuple[dict[str, torch.nn.Module], dict]:
    """The trained networks of runs/<variant>/model.pt: always the generator, and the detector of a Det
    variant when the file holds one (meta["detector"] names its builder)."""
    state = checkpoints.load_state(model_path)
    if "generator" not in state:
        raise ValueError(f"{model_path}: holds no generator weights (not written by the train stage?)")
    meta = state["meta"]
    networks = {"generator": meta["generator"]}
    if "detector" in state:
        if "detector" not in meta:
            raise ValueError(f"{model_path}: detector weights but no meta['detector'] naming its builder")
        networks["detector"] = meta["detector"]
    return {role: build_loaded(name, state[role], image_size=meta["image_size"]).eval()
            for role, name in networks.items()}, meta


def load_generator(model_path: Path) -> tuple[torch.nn.Module, dict]:
    networks, meta = load_networks(model_path)
    return networks["generator"], meta


def resolve_device(name: str) -> torch.device:
    """evaluate.device: `auto` is cuda when this process sees a GPU, else cpu; `cuda` without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("evaluate.device is cuda but this process sees no GPU (set evaluate.device: auto or cpu)")
    return torch.device(name)


@dataclass
class MetricStatus:
    """Why each set metric is or is not computed (`pretrained`, `random weights ...`, `not computed: ...`),
    and for each one not computed the reason in a few words (`absent`, for metrics/<variant>.json)."""

    status: dict[str, str] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)

    @property
    def pretrained(self) -> bool:
        """False when any computed metric used random weights."""
        return not any(s.startswith("random") for s in self.status.values())


class SetMetrics(MetricStatus):
    """FID and LPIPS as the `weights` setting allows, on evaluate.device; records why either is not computed."""

    def __init__(self, cfg: EvaluateConfig, mode: str):
        super().__init__()
        self.device, self.seed = resolve_device(cfg.device), cfg.seed
        self.fid = self._build("fid", "fid_inception", mode,
                               lambda path: metrics.InceptionFeatures(cfg.fid_dims, path, self.device))
        self.lpips = self._build("lpips", weights.lpips_backbone(cfg.lpips_net), mode,
                                 lambda path: metrics.LPIPSDistance(cfg.lpips_net, path is not None, self.device))

    def _build(self, name: str, key: str, mode: str, make):
        """The metric's network from the weight file `key`, random weights in `random` mode, or None (and a
        loud warning) when the file is missing in `auto` mode."""
        path = weights.resolve(key, mode)
        if path is None and mode != "random":
            self.status[name] = "not computed: " + weights.missing_message(weights.FILES[key])
            self.absent[name] = f"no {weights.FILES[key].filename} in the torch cache"
            print(f"WARNING {name} {self.status[name]}")
            return None
        self.status[name] = "pretrained" if path else "random weights (uncalibrated)"
        if path:
            return make(path)
        with torch.random.fork_rng(devices=[]):  # random weights drawn from evaluate.seed: equal in every process
            torch.manual_seed(self.seed)
            return make(None)


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
    """The scored image: generator output inside the hole, input outside, rounded to uint8 values (as saved)."""
    out = generator(masked_input(image, mask), mask)["output"]
    return metrics.quantise(composite(out, image, mask)) / 255


class PairFeatures:
    """The Inception features of every pair's ground truth and composite, for FID and KID per bin and over all
    bins. The rows go to files (KID reads back only its subsets). FID's moments (a d x d matrix a set) are
    accumulated only for a set of at least d images: a smaller set gets its FID from its rows. Ground-truth
    features are kept per test image (computed once, reused in every bin): bounded by the test split, not by
    the number of pairs."""

    def __init__(self, directory: Path, dims: int, inception: metrics.InceptionFeatures, pairs: int):
        """`pairs`: the number of pairs over all bins, known before the first batch."""
        self.inception, self.dims = inception, dims
        self.files = {s: metrics.FeatureFile(directory / f"{s}.f32", dims) for s in ("real", "fake")}
        self.all = self._moments(pairs)
        self.bin: dict[str, metrics.Moments] | None = None
        self.truths: dict[int, np.ndarray] = {}
        self.bin_start = 0

    def _moments(self, images: int) -> dict[str, metrics.Moments] | None:
        return {s: metrics.Moments(self.dims) for s in self.files} if images >= self.dims else None

    def start_bin(self, pairs: int) -> None:
        self.bin = self._moments(pairs)

    def add(self, image_ids: np.ndarray, image: torch.Tensor, comp: torch.Tensor) -> None:
        """One batch: the composites and the not yet seen ground truths in one Inception pass."""
        new = {}
        for k, i in enumerate(image_ids.tolist()):
            if i not in self.truths and i not in new:
                new[i] = k
        feats = self.inception(torch.cat([comp, image[list(new.values())]]))
        self.truths.update(zip(new, feats[len(comp):].astype(np.float32)))
        real = np.stack([self.truths[i] for i in image_ids.tolist()]).astype(np.float64)
        for s, x in (("real", real), ("fake", feats[: len(comp)])):
            self.files[s].append(x)
            for moments in (self.bin, self.all):
                if moments:
                    moments[s].add(x)

    def _distances(self, moments: dict | None, start: int, stop: int, cfg: EvaluateConfig) -> dict[str, float]:
        rows = {s: self.files[s].rows(start, stop) for s in self.files}
        if moments is None:  # fewer images than dimensions: the features are smaller than a covariance
            fid = metrics.frechet_distance_of_features(rows["real"][:], rows["fake"][:])
        else:
            fid = metrics.frechet_distance(*moments["real"].stats(), *moments["fake"].stats())
        return {"fid": fid,
                "kid": metrics.kernel_inception_distance(rows["real"], rows["fake"], cfg.kid_subsets, cfg.seed)}

    def end_bin(self, cfg: EvaluateConfig) -> dict[str, float]:
        """FID and KID of the bin just scored."""
        stop = self.files["real"].written
        out = self._distances(self.bin, self.bin_start, stop, cfg)
        self.bin, self.bin_start = None, stop
        return out

    def over_all(self, cfg: EvaluateConfig) -> dict[str, float]:
        return self._distances(self.all, 0, self.bin_start, cfg)


@torch.no_grad()
def score_bin(generator: torch.nn.Module, images, masks, sel: np.ndarray, cfg: EvaluateConfig,
              set_metrics: SetMetrics, features: PairFeatures | None, label: str) -> pd.DataFrame:
    """Per-image scores of one bin's pairs, batch by batch on the metrics' device; the Inception features go
    to `features`."""
    device = set_metrics.device
    loader = torch.utils.data.DataLoader(TestPairs(images, masks, sel), batch_size=cfg.batch_size,
                                         pin_memory=device.type == "cuda")
    tables, start = [], 0
    for image, mask in tqdm(loader, desc=f"evaluate {label}", unit="batch", leave=False):
        ids = sel[start: start + len(image), 0]
        start += len(image)
        image, mask = image.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        comp = composites(generator, image, mask)
        batch = metrics.per_image(metrics.quantise(comp), metrics.quantise(image), cfg.ssim_window)
        if set_metrics.lpips:
            batch["lpips"] = set_metrics.lpips(comp, image)
        if features:
            features.add(ids, image, comp)
        tables.append(pd.DataFrame(batch))
    return pd.concat(tables, ignore_index=True)


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
def evaluate(generator: torch.nn.Module, images, masks, pairs: pd.DataFrame, cfg: EvaluateConfig,
             set_metrics: SetMetrics) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics per bin (`{metric}/{bin key}`, with the per-image metrics' confidence intervals), FID and
    KID over the pairs of all bins together (`fid/all`, `kid/all`), and the per-pair table (bin, image, mask
    and the per-image metrics, in the recorded order: the paired comparisons of inpaint/evaluation/compare.py). The
    generator moves to the metrics' device."""
    generator.to(set_metrics.device)
    results, tables = {}, []
    selected = [bin_pairs(pairs, b, cfg) for b in range(len(bins.BINS))]
    with tempfile.TemporaryDirectory(prefix="inpaint-evaluate-") as tmp:
        features = (PairFeatures(Path(tmp), cfg.fid_dims, set_metrics.fid, sum(map(len, selected)))
                    if set_metrics.fid else None)
        for b, sel in enumerate(selected):
            if features:
                features.start_bin(len(sel))
            scores = score_bin(generator, images, masks, sel, cfg, set_metrics, features, bins.label(b))
            tables.append(scores.assign(bin=b, image=sel[:, 0], mask=sel[:, 1]))
            per_bin = mean_and_ci(scores, cfg, b)
            if features:
                per_bin.update(features.end_bin(cfg))
            results.update({f"{m}/{bins.key(b)}": v for m, v in per_bin.items()})
        if features:
            results.update({f"{m}/all": v for m, v in features.over_all(cfg).items()})
    per_image = pd.concat(tables, ignore_index=True)
    return results, per_image[[*PAIR_COLUMNS, *[m for m in PER_IMAGE if m in per_image]]]


def score_variant(model_path: Path, prepared: Path, test_masks: Path, pairs_path: Path, cfg: EvaluateConfig,
                  weights_mode: str) -> tuple[dict[str, float], pd.DataFrame, MetricStatus]:
    """The evaluate stage's scoring of one trained variant, from files only (so that it can run anywhere)."""
    from inpaint.data.prepare import load_split
    from inpaint.masks import MaskStore

    generator, _ = load_generator(model_path)
    set_metrics = SetMetrics(cfg, weights_mode)
    print(f"evaluate {model_path.parent.name} on {set_metrics.device}")
    results, per_image = evaluate(generator, load_split(prepared, "test"), MaskStore(test_masks),
                                  read_pairs(pairs_path), cfg, set_metrics)
    return results, per_image, MetricStatus(dict(set_metrics.status), dict(set_metrics.absent))


def on_ray(params: Params) -> bool:
    """evaluate.on_ray, or when unset: whether the pipeline uses a Ray cluster (ray.address or RAY_ADDRESS)."""
    if params.evaluate.on_ray is not None:
        return params.evaluate.on_ray
    return bool(params.ray.address or os.environ.get("RAY_ADDRESS"))


def gpus_wanted(params: Params) -> int:
    """The GPUs the Ray task asks for: one when evaluate.device is cuda, or auto while training uses GPUs."""
    device = params.evaluate.device
    return int(device == "cuda" or (device == "auto" and params.train.use_gpu))


def score(model_path: Path, prepared: Path, test_masks: Path, pairs_path: Path,
          params: Params) -> tuple[dict[str, float], pd.DataFrame, MetricStatus]:
    """`score_variant` in this process, or as a Ray task on the cluster (`on_ray`) asking for one CPU (it runs
    train.torch_threads threads; a larger request could fit no node of a small cluster) and `gpus_wanted` GPUs.
    On a cluster the paths must be readable from every node (shared storage, as for ray.storage_path)."""
    args = (Path(model_path).resolve(), Path(prepared).resolve(), Path(test_masks).resolve(),
            Path(pairs_path).resolve(), params.evaluate, params.weights)
    if not on_ray(params):
        return score_variant(*args)
    import ray

    from inpaint import cluster

    cluster.connect(params.ray.address, params.ray.keep_alive_s)
    threads = params.train.torch_threads
    task = ray.remote(num_cpus=1, num_gpus=gpus_wanted(params), max_retries=0)(_score_task)
    return ray.get(task.remote(threads, *args))


def _score_task(threads: int, *args):
    torch.set_num_threads(threads)
    return score_variant(*args)


@torch.no_grad()
def inference_ms(generator: torch.nn.Module, image_size: int, repeats: int = 2) -> float:
    """The fastest of `repeats` forward passes on one image (batch 1) on the CPU (the evaluator's device),
    in ms. The first pass also warms up (first-call allocations), so the fastest is a warm one; on a busy
    machine the fastest pass is the least disturbed."""
    x, m = torch.rand(1, 3, image_size, image_size), torch.zeros(1, 1, image_size, image_size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generator(x, m)
        times.append(time.perf_counter() - start)
    return min(times) * 1000


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
