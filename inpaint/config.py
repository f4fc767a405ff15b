"""params.yaml, typed and validated once at the edge.

The resolved configuration is the chosen profile (`profiles/<profile>.yaml`) with the sections of
`params.yaml` laid over it key by key. Every stage reads it through `load_params`, so a wrong key, type or
range stops the stage before any work with a message naming the key and what is allowed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from inpaint.masks.settings import MaskSettings
from inpaint.paths import REPO_ROOT
from inpaint.variants.base import Strict
from inpaint.variants.registry import registrations

PROFILES = ("smoke", "ci", "paper", "learn")
SECTIONS = ("data", "masks", "train", "evaluate", "tracking", "ray", "tune")


class DataConfig(Strict):
    """Which images, at which working resolution, split how (docs/protocol.md section 1).

    Every dataset but `sample` is read from data.folder; the layout each one expects is described in
    inpaint/data/presets.py (LAYOUTS).
    """

    dataset: Literal["sample", "folder", "celeba_hq", "places2_gdn", "places2_lgnet", "paris"] = "sample"
    folder: Path | None = None  # every dataset but sample: the directory its images are read from
    image_size: Annotated[int, Field(ge=64, le=1024)] = 64
    seed: int = 0  # the random splits, the sample crops, the Places categories and per-category draws
    crops_per_photo: Annotated[int, Field(ge=1)] = 64  # sample: random crops cut from each photo
    test_photos: Annotated[int, Field(ge=1)] = 2  # sample: photos held out for the test split
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1  # folder, celeba_hq: share of usable files in test
    min_size: Annotated[int, Field(ge=1)] = 32  # every folder dataset: smaller images are reported and skipped
    categories: list[str] = []  # places2_*: Places365 categories ('airfield' or '/a/airfield'); [] = drawn
    categories_count: Annotated[int, Field(ge=1)] | None = None  # places2_*: how many to draw; None = GDN 30, LGNet 20
    train_per_category: Annotated[int, Field(ge=1)] = 2000  # places2_*: train images drawn per category
    # How an image becomes S x S (docs/departures.md): squash = the whole image resized (all three authors),
    # centre_crop = its centred square; resample: bicubic (PIL, LGNet and PEN-Net), bilinear_tf1 (GDN's TF 1.x
    # resize_images: no antialiasing, legacy pixel alignment), bilinear or lanczos (PIL).
    resize: Literal["squash", "centre_crop"] = "squash"
    resample: Literal["bicubic", "bilinear_tf1", "bilinear", "lanczos"] = "bicubic"

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be a multiple of 32 (the generators downsample by up to 32), got {v}")
        return v

    @field_validator("categories")
    @classmethod
    def _distinct_names(cls, v: list[str]) -> list[str]:
        if any(not c.strip() for c in v):
            raise ValueError(f"data.categories: empty category name in {v}")
        if len(set(v)) < len(v):
            raise ValueError(f"data.categories: a category is listed twice in {v}")
        return v

    @model_validator(mode="after")
    def _folder_given(self):
        if self.dataset != "sample" and self.folder is None:
            raise ValueError(f"data.folder: dataset {self.dataset!r} needs data.folder, the directory its images "
                             "are read from (layouts: inpaint/data/presets.py)")
        return self

    @model_validator(mode="after")
    def _categories_for_places(self):
        if (self.categories or self.categories_count) and not self.dataset.startswith("places2"):
            raise ValueError(f"data.categories / data.categories_count: only the places2_gdn and places2_lgnet "
                             f"datasets have categories, not {self.dataset!r}")
        if self.categories and self.categories_count not in (None, len(self.categories)):
            raise ValueError(f"data.categories_count={self.categories_count} but data.categories lists "
                             f"{len(self.categories)}; give one of the two")
        return self


# Every registered framework's settings (inpaint/variants/registry.py), told apart by their `framework:` key.
Variant = Annotated[Union[tuple(r.settings for r in registrations())], Field(discriminator="framework")]
FRAMEWORKS = tuple(r.name for r in registrations())


class TrainConfig(Strict):
    steps: Annotated[int, Field(ge=1)] = 100
    batch_size: Annotated[int, Field(ge=1)] = 8  # global: num_workers x per-worker batch x accumulate
    # Ray Train workers (DDP); 0 trains in the driver's own process (Ray Train's local mode): no worker
    # group to start (~16 s a stage on 2 cores), no worker to lose, checkpoints written by the loop itself.
    num_workers: Annotated[int, Field(ge=0)] = 1
    # Micro-batches per optimisation step (gradient accumulation): each worker runs batch_size / (num_workers x
    # accumulate) images at a time and steps once, on the gradient of the whole global batch (docs/departures.md).
    accumulate: Annotated[int, Field(ge=1)] = 1
    # BatchNorm statistics over the whole global micro-batch (all workers) instead of each worker's share;
    # None: on when num_workers > 1 (a no-op for models without BatchNorm). False reproduces per-worker statistics.
    sync_batchnorm: bool | None = None
    use_gpu: bool = False
    seed: int = 10
    log_every: Annotated[int, Field(ge=1)] = 10
    image_every: Annotated[int, Field(ge=1)] = 100
    checkpoint_every: Annotated[int, Field(ge=1)] = 100
    torch_threads: Annotated[int, Field(ge=1)] = 2  # per worker, on CPU
    max_failures: Annotated[int, Field(ge=0)] = 1  # worker failures survived (Ray FailureConfig)
    # A re-run with an unchanged fingerprint (inpaint/provenance/fingerprint.py): `interrupted` resumes a run that
    # stopped before its last step and trains a finished one again from step 0 (`dvc repro -f` retrains); `always`
    # also reuses a finished run's final checkpoint (no step trained); `never` always starts from step 0.
    resume: Literal["interrupted", "always", "never"] = "interrupted"
    # Where the workers go on a cluster (docs/cluster.md): PACK fills one node first, SPREAD puts them on
    # different nodes where it can; the STRICT_ forms refuse to start otherwise.
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    gpus_per_worker: Annotated[float, Field(gt=0, le=1)] = 1.0  # with use_gpu; 0.5: two Tune trials share a GPU
    # Speed switches for GPU clusters (inpaint/training/speed.py); all off by default and on CPU.
    bf16: bool = False  # forward passes under bfloat16 autocast; losses and optimiser steps stay float32
    channels_last: bool = False  # NHWC memory layout for networks and batches (faster convolutions on GPUs)
    compile: bool = False  # torch.compile each network (generator, discriminator/detector) separately
    loader_workers: Annotated[int, Field(ge=0)] = 0  # DataLoader processes per Ray worker (0: in the loop)
    pin_memory: bool = False  # page-locked batches for faster host-to-GPU copies

    @model_validator(mode="after")
    def _batch_splits(self):
        if self.batch_size % (max(self.num_workers, 1) * self.accumulate):
            raise ValueError(
                f"train.batch_size ({self.batch_size}) must be divisible by train.num_workers ({self.num_workers}) "
                f"x train.accumulate ({self.accumulate})")
        return self

    @property
    def workers(self) -> int:
        """Processes that split the global batch (the local mode's 0 trains in one)."""
        return max(self.num_workers, 1)

    @property
    def micro_batch(self) -> int:
        """Images one worker runs at a time: batch_size / (workers x accumulate)."""
        return self.batch_size // (self.workers * self.accumulate)

    @property
    def batchnorm_synced(self) -> bool:
        """Whether BatchNorm layers normalise with the statistics of all workers' micro-batches."""
        return self.workers > 1 if self.sync_batchnorm is None else self.sync_batchnorm


class EvaluateConfig(Strict):
    batch_size: Annotated[int, Field(ge=1)] = 16
    pairs_per_bin: Annotated[int, Field(ge=1)] | None = None  # None: every test image once per bin
    ssim_window: Literal[11, 51] = 11  # 11 = Gaussian sigma 1.5 (Wang et al.); 51 = the GDN/PEN-Net code
    fid_dims: Literal[64, 192, 768, 2048] = 2048
    lpips_net: Literal["alex", "vgg"] = "alex"
    kid_subsets: Annotated[int, Field(ge=1)] = 100  # KID: the mean over this many subsets of min(n, 1000) pairs
    bootstrap: Annotated[int, Field(ge=100)] = 1000  # resamples behind each 95% confidence interval
    seed: int = 0  # the KID subsets and the bootstrap resamples
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when the evaluating process sees a GPU, else cpu
    # Where the evaluation runs: true = a Ray task on the cluster (asking for a GPU when device is cuda, or auto
    # with train.use_gpu), false = in the stage's process; None: a Ray task when RAY_ADDRESS is set.
    on_ray: bool | None = None


class TrackingConfig(Strict):
    experiment: str = "inpaint"
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db


class RayConfig(Strict):
    address: str | None = None  # None: RAY_ADDRESS, else a local Ray on 127.0.0.1
    storage_path: str = "checkpoints"  # Ray Train's checkpoints, one folder per variant; relative to the repo root
    keep_alive_s: Annotated[int, Field(ge=0)] = 0  # > 0: stages share a local head that stops after this idle time
    keep_runs: Annotated[int, Field(ge=1)] = 3  # run folders (one per fingerprint) kept per variant, most recent use first
    # Under `dvc repro`, the first train stage trains every stale variant that has Ray workers at once, as many
    # at a time as the cluster holds (inpaint/training/together.py; docs/cluster.md); false: one stage, one variant.
    concurrent: bool = True


class SearchDomain(Strict):
    """The values one swept key takes: exactly one of a `choice` list (a random pick per trial), a `grid`
    list (every value, once per sample), or a `uniform` / `loguniform` range [low, high]."""

    choice: list[Any] | None = None
    grid: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k, v in self.model_dump().items() if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of choice, grid, uniform, loguniform (got {given or 'none'})")
        values = getattr(self, given[0])
        if given[0] in ("choice", "grid") and not values:
            raise ValueError(f"{given[0]}: empty list, nothing to try")
        if given[0] in ("uniform", "loguniform") and not values[0] < values[1]:
            raise ValueError(f"{given[0]}: needs low < high, got {list(values)}")
        if given[0] == "loguniform" and values[0] <= 0:
            raise ValueError(f"loguniform: needs low > 0, got {list(values)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self.model_dump().items() if v is not None)

    @property
    def candidates(self) -> list[Any]:
        """The values every trial's params must accept: each listed value, or both ends of a range."""
        return list(getattr(self, self.kind))


class Study(Strict):
    """One sweep (inpaint/training/tune.py): the variant it perturbs and the training params it varies.

    `space` maps a dotted training param to its values: `variant.X` is a key of the study's variant (e.g.
    `variant.exp_base`), `train.X` a key of the train section; the key `variant` alone takes whole partial
    variant settings, e.g. `{weight_mapping: linear}`, for settings that only make sense together."""

    variant: Union[str, Variant]  # a key of `variants`, or a variant's settings written out
    space: dict[str, SearchDomain]
    metric: Literal["val/psnr", "val/ssim", "val/l1"] = "val/psnr"  # on the validation split, never the test pairs
    mode: Literal["max", "min"] | None = None  # None: the metric's own direction (max PSNR / SSIM, min l1)
    samples: Annotated[int, Field(ge=1)] = 1  # Tune's num_samples: random draws, or repeats of a grid

    @field_validator("space")
    @classmethod
    def _not_empty(cls, v: dict) -> dict:
        if not v:
            raise ValueError("empty search space: name at least one param to sweep")
        return v

    @property
    def direction(self) -> str:
        return self.mode or ("min" if self.metric == "val/l1" else "max")


class ValidationConfig(Strict):
    """The held-out validation split that trials are scored on: whole source photos of the prepared training
    images, drawn with `seed` until at least `images` are held out (left out of the trials' training set),
    each with one training mask drawn with `seed` (inpaint/training/validation.py)."""

    images: Annotated[int, Field(ge=1)] = 16  # at least this many (whole photos are held out)
    seed: int = 7
    every: Annotated[int, Field(ge=1)] = 10  # steps between validation reports (ASHA's decision points)


class TuneConfig(Strict):
    """Ray Tune sweeps (inpaint/training/tune.py). Each trial trains its variant for `train` (laid over the train
    section; resources per trial: train.num_workers Ray Train workers of 1 CPU, or of train.gpus_per_worker GPUs
    with use_gpu)."""

    train: dict[str, Any] = {}
    validation: ValidationConfig = ValidationConfig()
    scheduler: Literal["asha", "fifo"] = "asha"  # asha: stop trials that trail at a rung; fifo: run all to the end
    grace_period: Annotated[int, Field(ge=1)] = 10  # ASHA: steps before a trial can be stopped
    reduction_factor: Annotated[float, Field(gt=1)] = 3  # ASHA: keep the best 1/reduction_factor at each rung
    concurrency: Annotated[int, Field(ge=1)] = 1  # trials at once
    storage_path: str = "checkpoints/tune"  # Tune state + trial checkpoints, outside DVC outputs
    # A finished study keeps its scored trials' model files; its trials' training checkpoints (every network and
    # its optimiser state, 2 per trial) only with True
    keep_checkpoints: bool = False
    studies: dict[str, Study] = {}


class Params(Strict):
    profile: Literal["smoke", "ci", "paper", "learn"]
    # docs/protocol.md section 4: what a missing pretrained file (FID Inception, LPIPS backbone, VGG-16) does
    weights: Literal["auto", "required", "random"] = "auto"
    data: DataConfig = DataConfig()
    masks: MaskSettings = MaskSettings()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tracking: TrackingConfig = TrackingConfig()
    ray: RayConfig = RayConfig()
    tune: TuneConfig = TuneConfig()
    # Train settings per framework family, laid over `train` (the paper profile: the authors' batch sizes and
    # run lengths); a variant's own `train` is laid over both. Learning rates are the variant's `optimiser`.
    framework_train: dict[str, dict[str, Any]] = {}
    variants: dict[str, Variant]

    @field_validator("variants")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("at least one variant to train is needed")
        for name in v:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"variant name {name!r} may only hold letters, digits and underscores")
        return v

    @field_validator("framework_train")
    @classmethod
    def _known_frameworks(cls, v: dict) -> dict:
        unknown = sorted(set(v) - set(FRAMEWORKS))
        if unknown:
            raise ValueError(f"unknown framework(s) {unknown}; frameworks: {', '.join(FRAMEWORKS)}")
        return v

    @model_validator(mode="after")
    def _variant_train_fits(self):
        for name in self.variants:
            self.train_for(name)
        return self

    def train_for(self, variant: str) -> TrainConfig:
        """The train settings variant `variant` runs with: `train`, then `framework_train[its framework]`,
        then the variant's own `train`, laid over one another key by key."""
        if variant not in self.variants:
            raise KeyError(f"unknown variant {variant!r}; params.yaml variants: {', '.join(self.variants)}")
        cfg = self.variants[variant]
        merged = merge(merge(self.train.model_dump(), self.framework_train.get(cfg.framework, {})), cfg.train)
        try:
            return TrainConfig.model_validate(merged)
        except ValidationError as e:
            raise ValueError(f"variants.{variant}.train (laid over train and framework_train.{cfg.framework}) "
                             "is invalid:\n" + "\n".join("  " + line for line in explain(e))) from None

    @model_validator(mode="after")
    def _studies_fit(self):
        try:
            TrainConfig.model_validate(merge(self.train.model_dump(), self.tune.train))
        except ValidationError as e:
            raise ValueError("tune.train (laid over the train section) is invalid:\n" + "\n".join(explain(e))) from None
        for name, study in self.tune.studies.items():
            if isinstance(study.variant, str) and study.variant not in self.variants:
                raise ValueError(f"tune.studies.{name}.variant: unknown variant {study.variant!r}; "
                                 f"params.yaml variants: {', '.join(self.variants)}")
        return self


class ParamsError(ValueError):
    """A params file that does not validate; the message names the file and every bad key."""


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def resolve(raw: dict, source: str = "params.yaml", profiles_dir: Path | None = None) -> Params:
    """Lay `raw` (the contents of params.yaml) over its profile and validate the result."""
    profile = raw.get("profile", "smoke")
    if profile not in PROFILES:
        raise ParamsError(f"{source}: profile: unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    base = _read_yaml((profiles_dir or REPO_ROOT / "profiles") / f"{profile}.yaml")
    merged = merge(base, {k: v for k, v in raw.items() if v is not None})
    try:
        return Params.model_validate(merged)
    except ValidationError as e:
        raise ParamsError(f"{source} (profile {profile}) is invalid:\n" + "\n".join(explain(e, merged))) from None


def explain(error: ValidationError, data: dict | None = None) -> list[str]:
    """One line per bad key: its dotted name, what is wrong and the value given. With the validated `data`,
    the name holds only keys of the file (pydantic's error location also names the union member that was
    tried, e.g. `det` in variants.gdn_det.det.exp_base)."""
    lines = []
    for err in error.errors():
        loc = ".".join(_keys(err["loc"], data))
        if not loc:  # a check across sections: its message names the keys, the input is the whole file
            lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
            continue
        if err["type"] == "value_error" and isinstance(err.get("input"), dict):
            # a section's own check across its keys: the input is the whole section, the message names the keys
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {msg}" if msg.startswith(f"{loc}.") else f"  {loc}: {msg}")
            continue
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        lines.append(f"  {loc}: {err['msg']}{got}")
    return lines


def _keys(loc: tuple, data) -> list[str]:
    """The parts of a pydantic error location that are keys (or list indices) of `data`."""
    keys, node = [], data
    for part in loc:
        if str(part).startswith(("function-after", "tagged-union")):
            continue
        if data is not None:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif isinstance(node, (dict, list)):
                continue  # not a key of the file: the union member pydantic tried
        keys.append(str(part))
    return keys


def load_params(path: Path | None = None) -> Params:
    path = path or REPO_ROOT / "params.yaml"
    return resolve(_read_yaml(path), source=str(path), profiles_dir=path.parent / "profiles")
