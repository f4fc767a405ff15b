"""Training on Ray Train: `train_func` runs on every worker (1 CPU here, many GPUs on a cluster);
`train_variant` is the driver that the `train` stage calls.

The loop is step based: `train.steps` optimisation steps of a global batch `train.batch_size` split
across workers. Checkpoints (networks, optimisers, step, RNG states) go through `ray.train.report`; a
re-run with the same resolved config resumes from the last one (the Ray run name carries the config hash).
Only rank 0 talks to MLflow.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import TypeAdapter

from inpaint import paths, tracking
from inpaint.config import Params, TrainConfig, Variant
from inpaint.io import atomic_path, write_json

STATE_FILE = "state.pt"


def config_hash(variant: str, params: Params) -> str:
    """Everything that changes what a run computes: the variant, training, data and masks sections, and
    which pretrained files the run would use (a resumed run must not switch a loss term on half-way)."""
    from inpaint import weights

    used = {k: weights.FILES[k].path.is_file() for k in weights.needed_for_training(params.variants[variant])}
    blob = json.dumps({"variant": variant, "cfg": params.variants[variant].model_dump(mode="json"),
                       "weights": params.weights, "weight_files": used,
                       "train": params.train.model_dump(mode="json", exclude={"log_every", "image_every"}),
                       "data": params.data.model_dump(mode="json"), "masks": params.masks.model_dump(mode="json")},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _grid(visuals: dict[str, torch.Tensor], rows: int = 4) -> np.ndarray:
    """One row per sample, one column per image kind (masked input / output / composite / ...)."""
    from torchvision.utils import make_grid

    cols = [v[:rows].clamp(0, 1).cpu() for v in visuals.values()]
    tiles = torch.stack(cols, dim=1).flatten(0, 1)
    grid = make_grid(tiles, nrow=len(cols), padding=2, pad_value=1.0)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_state(directory: Path, framework, step: int, meta: dict) -> None:
    """Networks, optimisers, schedulers, step and torch's RNG (the data order depends only on seed and step)."""
    state = {"meta": meta, "step": step, "framework": framework.state_dict(), "rng": torch.get_rng_state()}
    with atomic_path(directory / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_state(path: Path, expect: dict | None = None) -> dict:
    """Read a checkpoint file; refuse one that is corrupt or belongs to another variant/config."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "meta" not in state:
        raise ValueError(f"{path}: not an inpaint checkpoint (no 'meta' entry)")
    for key, want in (expect or {}).items():
        got = state["meta"].get(key)
        if got != want:
            raise ValueError(f"{path}: checkpoint is for {key}={got!r}, expected {want!r}")
    return state


def train_func(config: dict) -> None:
    """The per-worker loop. `config` is plain data so that it crosses process and node boundaries."""
    import ray.train
    import ray.train.torch
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from inpaint.data.pairs import TrainPairs
    from inpaint.data.prepare import load_split
    from inpaint.frameworks import build_framework, build_networks
    from inpaint.masks import MaskStore

    cfg = TypeAdapter(Variant).validate_python(config["variant_cfg"])
    tcfg = TrainConfig.model_validate(config["train"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(tcfg.torch_threads)
    torch.manual_seed(tcfg.seed)

    networks = build_networks(cfg, config["image_size"])
    networks = {k: ray.train.torch.prepare_model(v) for k, v in networks.items()}
    framework = build_framework(cfg, networks, weights_mode=config["weights"])
    framework.make_optimisers()
    framework.make_schedulers(tcfg.steps)
    meta = {"variant": config["variant"], "framework": cfg.framework, "config_hash": config["config_hash"]}

    step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            state = load_state(Path(d) / STATE_FILE, expect=meta)
        framework.load_state_dict(state["framework"])
        torch.set_rng_state(state["rng"])
        step = state["step"]

    dataset = TrainPairs(load_split(Path(config["prepared"]), "train"), MaskStore(Path(config["masks"])), tcfg.seed)
    per_worker = tcfg.batch_size // world
    sampler = torch.utils.data.DistributedSampler(dataset, world, rank, shuffle=True, seed=tcfg.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=per_worker, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"train.batch_size={tcfg.batch_size} is larger than the training set ({len(dataset)} images)")
    device = ray.train.torch.get_device()

    client = MlflowClient(config["tracking_uri"]) if rank == 0 else None
    if client:
        for name, note in framework.notes.items():  # what this run did differently from its config
            client.set_tag(config["run_id"], f"inpaint.note.{name}", note[:5000])
    framework.train()
    window_start, window_images = time.perf_counter(), 0
    progress = None
    if rank == 0:
        from tqdm import tqdm
        progress = tqdm(total=tcfg.steps, initial=step, desc=f"train {config['variant']}", unit="step")
    while step < tcfg.steps:
        epoch = step // len(loader)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        for batch_index, (image, mask) in enumerate(loader):
            if epoch * len(loader) + batch_index < step:  # resuming mid-epoch: skip what was done
                continue
            image, mask = image.to(device), mask.to(device)
            losses = framework.step(image, mask)
            step += 1
            window_images += tcfg.batch_size
            if progress:
                progress.update(1)
            report = {**losses, "step": step}
            if step % tcfg.log_every == 0 or step == tcfg.steps:
                elapsed = time.perf_counter() - window_start
                report["images_per_s"] = window_images / max(elapsed, 1e-9)
                window_start, window_images = time.perf_counter(), 0
                if client:
                    now = int(time.time() * 1000)
                    client.log_batch(config["run_id"], metrics=[
                        Metric(f"train/{k}", float(v), now, step) for k, v in report.items() if k != "step"])
            if client and (step % tcfg.image_every == 0 or step == tcfg.steps):
                framework.train(False)
                grid = _grid(framework.visuals(image, mask))
                framework.train(True)
                client.log_image(config["run_id"], grid, artifact_file=f"train/grid_step{step:06d}.png")
            if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
                with tempfile.TemporaryDirectory() as d:
                    if rank == 0:
                        save_state(Path(d), framework, step, meta)
                    ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(d) if rank == 0 else None)
            if step >= tcfg.steps:
                break
    if progress:
        progress.close()


def train_variant(params: Params, variant: str, out_dir: Path) -> dict:
    """Driver: start (or resume) the Ray Train run of one variant and write `out_dir/model.pt`."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from inpaint import cluster

    if variant not in params.variants:
        raise KeyError(f"unknown variant {variant!r}; params.yaml variants: {', '.join(params.variants)}")
    cfg = params.variants[variant]
    chash = config_hash(variant, params)
    uri = tracking.tracking_uri(params.tracking.uri)
    client, experiment_id = tracking.open_experiment(params.tracking)
    run_id = _find_or_start_run(client, experiment_id, variant, chash, params)

    cluster.connect(params.ray.address)
    start = time.perf_counter()
    trainer = TorchTrainer(
        train_func,
        train_loop_config={
            "variant": variant, "variant_cfg": cfg.model_dump(mode="json"),
            "train": params.train.model_dump(mode="json"), "image_size": params.data.image_size,
            "prepared": str(paths.PREPARED), "masks": str(paths.MASKS / "train"),
            "tracking_uri": uri, "run_id": run_id, "config_hash": chash, "weights": params.weights},
        scaling_config=ScalingConfig(num_workers=params.train.num_workers, use_gpu=params.train.use_gpu,
                                     resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="nccl" if params.train.use_gpu else "gloo"),
        run_config=RunConfig(name=f"{variant}-{chash}", storage_path=str(paths.absolute(params.ray.storage_path)),
                             failure_config=FailureConfig(max_failures=params.train.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))
    result = trainer.fit()
    seconds = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"variant {variant}: training finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = load_state(Path(d) / STATE_FILE, expect={"variant": variant, "config_hash": chash})
    model = {"meta": {**state["meta"], "generator": cfg.generator, "image_size": params.data.image_size,
                      "steps": state["step"], "run_id": run_id},
             "generator": state["framework"]["networks"]["generator"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(model, tmp)
    summary = {"variant": variant, "framework": cfg.framework, "steps": state["step"], "seconds": round(seconds, 1),
               "images_per_s_with_startup": round(params.train.steps * params.train.batch_size / max(seconds, 1e-9), 2),
               **{k: round(float(v), 6) for k, v in result.metrics.items() if isinstance(v, (int, float))}}
    write_json(out_dir / "train_metrics.json", summary)
    _write_loss_curve(client, run_id, out_dir / "loss.csv")
    client.log_artifact(run_id, str(out_dir / "model.pt"), artifact_path="checkpoint")
    client.set_terminated(run_id)
    print(f"train {variant}: {state['step']} steps in {seconds:.0f} s (MLflow run {run_id})")
    return summary


def _find_or_start_run(client, experiment_id: str, variant: str, chash: str, params: Params) -> str:
    """The MLflow run of this exact config (resumed after a stop), or a new one."""
    found = client.search_runs([experiment_id], filter_string=(
        f"tags.`{tracking.TAG_VARIANT}` = '{variant}' and tags.config_hash = '{chash}'"), max_results=1)
    if found:
        return found[0].info.run_id
    cfg = params.variants[variant]
    run = client.create_run(experiment_id, run_name=variant, tags={
        tracking.TAG_KIND: "train", tracking.TAG_VARIANT: variant, tracking.TAG_FRAMEWORK: cfg.framework,
        "config_hash": chash, "profile": params.profile, **tracking.provenance(),
        "dataset_manifest": tracking.file_hash(paths.PREPARED / "manifest.csv"),
        "mask_manifest": tracking.file_hash(paths.MASKS / "train" / "manifest.csv")})
    flat = tracking.flatten({"variant": cfg.model_dump(mode="json"), "train": params.train.model_dump(mode="json"),
                             "data": params.data.model_dump(mode="json")})
    for k, v in flat.items():
        client.log_param(run.info.run_id, k, v[:6000])
    return run.info.run_id


def _write_loss_curve(client, run_id: str, path: Path) -> None:
    """The generator loss per logged step, as a CSV that dvc.yaml declares as a plot."""
    history = client.get_metric_history(run_id, "train/loss_g")
    rows = sorted({m.step: m.value for m in history}.items())
    with atomic_path(path) as tmp:
        tmp.write_text("step,loss_g\n" + "".join(f"{s},{v}\n" for s, v in rows))
