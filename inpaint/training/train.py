"""Training on Ray Train: `train_func` runs on every worker (1 CPU here, many GPUs on a cluster);
`train_variant` is the driver that the `train` stage calls. The loop itself (`train_loop`) takes a session
(`RaySession`, or `LocalSession` for the plain-PyTorch comparison in bench/train.py).

The loop is step based: `train.steps` optimisation steps of a global batch `train.batch_size` split
across workers, each running its share as `train.accumulate` micro-batches (inpaint/frameworks/base.py).
Checkpoints (networks, optimisers, step, RNG states) go through `ray.train.report`. The
Ray run and the MLflow run are named by the run fingerprint (code + data + params, inpaint/provenance/fingerprint.py):
an interrupted run with the same fingerprint resumes from the newest checkpoint on disk that loads
(inpaint/checkpoints.py), anything else trains from step 0 under a new MLflow run (`train.resume`). Only
rank 0 talks to MLflow.
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from pydantic import TypeAdapter

from inpaint import checkpoints, lifetime, paths
from inpaint.config import Params, TrainConfig, Variant
from inpaint.io import atomic_path, write_json
from inpaint.provenance import codegraph, fingerprint, tracking

# Ray Train retries a worker group that cannot start (no free CPU, 60 s each) forever by default: a run or
# Tune trial whose CPUs never come would hang; after this many retries it fails, saying why.
STARTUP_RETRIES = 5
FINISHED, FINISHED_MODEL = "finished.json", "model.pt"  # a finished run's train metrics and result, in its folder


def _grid(visuals: dict[str, torch.Tensor], rows: int = 4) -> np.ndarray:
    """One row per sample, one column per image kind, each column labelled with its kind (masked input /
    output / composite / ...) in a white header; tiles below 128 px are enlarged (nearest) so that the
    grid reads in MLflow's image view."""
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid

    cols = [v[:rows].clamp(0, 1).cpu() for v in visuals.values()]
    scale = -(-128 // cols[0].shape[-1])
    tiles = torch.stack(cols, dim=1).flatten(0, 1)
    if scale > 1:
        tiles = tiles.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    grid = make_grid(tiles, nrow=len(cols), padding=2, pad_value=1.0)
    body = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    width = tiles.shape[-1] + 2  # one column with its padding
    font = ImageFont.load_default(size=13)
    header = Image.new("RGB", (body.shape[1], 20), "white")
    draw = ImageDraw.Draw(header)
    for c, name in enumerate(visuals):
        draw.text((2 + c * width + width // 2, 10), name, fill="black", font=font, anchor="mm")
    return np.concatenate([np.asarray(header), body])


class RaySession:
    """What the loop needs from Ray Train: rank, world size, device, DDP wrapping, checkpoints and reports.
    `attempt`: the attempt's folder when the loop runs in the driver's process (Ray Train's local mode),
    where Ray stores no checkpoint and the loop writes its own there."""

    def __init__(self, attempt: str | None = None):
        import ray.train
        import ray.train.torch

        self._train, self._torch = ray.train, ray.train.torch
        self.attempt = Path(attempt) if attempt else None
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare(self, network: torch.nn.Module) -> torch.nn.Module:
        return self._torch.prepare_model(network)

    def restore(self, meta: dict, on_disk: list[str] = ()) -> dict | None:
        """The newest checkpoint that loads: Ray's own (after a worker failure in this attempt), else those
        the driver found on disk (earlier attempts), newest first; a corrupt or truncated one is skipped."""
        own = self._train.get_checkpoint()
        for checkpoint in [own] * bool(own) + [self._train.Checkpoint(p) for p in on_disk]:
            try:
                with checkpoint.as_directory() as d:
                    return checkpoints.load_state(Path(d) / checkpoints.STATE_FILE, expect=meta)
            except ValueError as e:
                if self.rank == 0:  # sys.__stdout__: Ray Train's `print` also logs it, and the driver shows both
                    print(f"WARNING train: {e}; trying an older checkpoint", file=sys.__stdout__, flush=True)
        return None

    def report(self, metrics: dict, framework=None, step: int = 0, meta: dict | None = None) -> None:
        """Every rank reports (Ray needs all of them); rank 0 attaches the checkpoint when one is due."""
        if framework is None or self.rank != 0:
            self._train.report(metrics)
        elif self.attempt is not None:
            written = checkpoints.publish(self.attempt, lambda d: checkpoints.save_state(d, framework, step, meta))
            self._train.report(metrics, checkpoint=self._train.Checkpoint(str(written)))
        else:  # Ray copies it into the attempt's folder
            with checkpoints.staging() as d:
                checkpoints.save_state(Path(d), framework, step, meta)
                self._train.report(metrics, checkpoint=self._train.Checkpoint.from_directory(d))


class LocalSession:
    """The same loop without Ray, in this process: what bench/train.py compares Ray against and what the
    fault-tolerance test takes as the uninterrupted run. Keeps the reports and the last checkpointed state."""

    rank, world = 0, 1

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.reports: list[dict] = []
        self.state: dict | None = None

    def prepare(self, network: torch.nn.Module) -> torch.nn.Module:
        return network.to(self.device)

    def restore(self, meta: dict, on_disk: list[str] = ()) -> None:
        return None

    def report(self, metrics: dict, framework=None, step: int = 0, meta: dict | None = None) -> None:
        self.reports.append(metrics)
        if framework is not None:
            self.state = copy.deepcopy(framework.state_dict())


class ResumableSampler(torch.utils.data.DistributedSampler):
    """A DistributedSampler that can start an epoch `skip` samples in, so a resumed run does not decode
    the batches it already trained on."""

    skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


def train_func(config: dict) -> None:
    """The per-worker entry point of Ray Train. `config` is plain data so that it crosses process and node
    boundaries."""
    train_loop(config, RaySession(config.get("attempt")))
    codegraph.write_imports("train")  # Ray ends its workers without running atexit


def train_loop(config: dict, session) -> None:
    """Build the networks and the framework, resume if a checkpoint exists, and run `train.steps` steps."""
    entered = time.time()
    from inpaint.data.pairs import TrainPairs
    from inpaint.data.prepare import load_split
    from inpaint.frameworks import build_framework, build_networks, global_batch
    from inpaint.masks import MaskStore
    from inpaint.training import speed

    cfg = TypeAdapter(Variant).validate_python(config["variant_cfg"])
    tcfg = TrainConfig.model_validate(config["train"])
    torch.set_num_threads(tcfg.torch_threads)
    torch.manual_seed(tcfg.seed)

    networks = build_networks(cfg, config["image_size"])
    if tcfg.batchnorm_synced:  # BatchNorm over every worker's micro-batch (docs/departures.md)
        networks = {k: global_batch.synchronise(v) for k, v in networks.items()}
    networks = {k: session.prepare(speed.apply(v, tcfg, session.device)) for k, v in networks.items()}
    framework = build_framework(cfg, networks, weights_mode=config["weights"], accumulate=tcfg.accumulate)
    framework.make_optimisers()
    framework.make_schedulers(tcfg.steps)
    meta = {"variant": config["variant"], "framework": cfg.framework, "fingerprint": config["fingerprint"],
            "switched_off": switched_off(config["variant"], framework, say=session.rank == 0)}

    step = 0
    state = session.restore(meta, config.get("resume_from", []))
    if state:
        framework.load_state_dict(state["framework"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
        if session.rank == 0:
            print(f"train {config['variant']}: resumed from the checkpoint of step {step}", file=sys.__stdout__,
                  flush=True)  # once: Ray Train's `print` would also log it, and the driver shows both

    images, masks = load_split(Path(config["prepared"]), "train"), MaskStore(Path(config["masks"]))
    validation = None
    if config.get("validation"):  # Tune's trials: whole source photos held out of the training images
        from inpaint.training.validation import Validation  # only here: its metrics import scipy.stats (~1 s CPU)

        manifest = pd.read_csv(Path(config["prepared"]) / "manifest.csv")
        validation = Validation.from_config(images, manifest, masks, config["validation"])
    dataset = TrainPairs(images, masks, tcfg.seed, cfg.augment)
    train_set = torch.utils.data.Subset(dataset, validation.train_index) if validation else dataset
    per_worker = tcfg.batch_size // session.world  # this worker's share of a step: accumulate micro-batches
    sampler = ResumableSampler(train_set, session.world, session.rank, shuffle=True, seed=tcfg.seed, drop_last=True)
    batches_per_epoch = len(sampler) // per_worker
    if batches_per_epoch == 0:
        raise ValueError(f"train.batch_size={tcfg.batch_size} is larger than the training set ({len(train_set)} images)")
    loader = torch.utils.data.DataLoader(train_set, batch_size=per_worker, sampler=sampler, drop_last=True,
                                         num_workers=tcfg.loader_workers, pin_memory=tcfg.pin_memory,
                                         persistent_workers=False)

    log = RunLog(config, framework, session)
    # Where an attempt's start-up went (train_metrics.json, MLflow startup/*): Ray starting the worker group,
    # then this worker building networks, data and its MLflow client. Wall clocks of two processes (and, on a
    # cluster, two machines): seconds, not milliseconds.
    startup = {"startup_ray_s": max(entered - config.get("fit_started_at", entered), 0.0),
               "startup_setup_s": time.time() - entered}
    log.started(startup, step)
    # Resumed: the restored step's report again, scored (Tune may not have received it: a study stopped between
    # the checkpoint and its report), its random draws kept out of the run's; at the last step with the
    # checkpoint, which is then this attempt's result
    if state and (validation is not None or step >= tcfg.steps):
        with torch.random.fork_rng(devices=[]):
            scores = {} if validation is None else log.validation(step, validation.score(framework, session.device))
        session.report({"step": step, **scores}, framework if step >= tcfg.steps else None, step, meta)
    framework.train()
    while step < tcfg.steps:
        epoch = step // batches_per_epoch
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        sampler.skip = (step - epoch * batches_per_epoch) * per_worker  # non-zero only when resuming mid-epoch
        for image, mask in loader:
            image, mask = speed.batch_to(image, tcfg, session.device), speed.batch_to(mask, tcfg, session.device)
            losses = framework.step(image, mask)
            step += 1
            report = log.step(step, losses, tcfg, image, mask)
            checkpoint_due = step % tcfg.checkpoint_every == 0 or step == tcfg.steps
            validation_due = validation is not None and (checkpoint_due or validation.due(step))
            if validation_due:
                report.update(log.validation(step, validation.score(framework, session.device)))
            if checkpoint_due or validation_due:
                session.report({**report, **startup}, framework if checkpoint_due else None, step, meta)
            if step >= tcfg.steps:
                break
    log.close()


def switched_off(variant: str, framework, say: bool = True) -> dict[str, str]:
    """The loss terms this run trains without, or with random weights, and why (e.g. no VGG-16 in the torch
    cache): recorded in the checkpoint's meta (the report footnotes them) and, when `say`, one warning line
    per term naming it and the missing file."""
    found = {k: v for k, v in framework.notes.items() if v.startswith(("off", "uncalibrated"))}
    for term, why in found.items() if say else ():
        print(f"WARNING train {variant}: loss terms {term} {why}", flush=True)
    return found


class RunLog:
    """Rank 0's view of the run: the progress bar, throughput, and MLflow losses / learning rates / grids."""

    def __init__(self, config: dict, framework, session):
        self.framework, self.run_id = framework, config["run_id"]
        self.client = self.progress = None
        self.logged_through = 0  # the last step MLflow holds: a resumed run re-runs the steps after its checkpoint
        self.validated_through = 0  # the same for the validation scores (Tune's trials)
        self.window_start, self.window_cpu, self.window_images = time.perf_counter(), time.process_time(), 0
        if session.rank != 0:
            return
        from mlflow.tracking import MlflowClient
        from tqdm import tqdm

        self.client = MlflowClient(config["tracking_uri"]) if config["tracking_uri"] else None
        tcfg = config["train"]
        self.progress = tqdm(total=tcfg["steps"], desc=f"train {config['variant']}", unit="step")
        if self.client:
            for name, note in framework.notes.items():  # what this run did differently from its config
                self.client.set_tag(self.run_id, f"inpaint.note.{name}", note[:5000])
            device = session.device
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
            self.client.set_tag(self.run_id, "device", f"{device.type} x {session.world} ({name})")
            history = self.client.get_metric_history(self.run_id, "train/loss_g")
            self.logged_through = max((m.step for m in history), default=0)  # not logged twice
            scored = self.client.get_metric_history(self.run_id, "val/psnr")  # inpaint/training/validation.py's keys
            self.validated_through = max((m.step for m in scored), default=0)

    def started(self, startup: dict, step: int) -> None:
        """Log the attempt's start-up seconds once, at the step it starts from."""
        if self.client:
            from mlflow.entities import Metric

            self.client.log_batch(self.run_id, metrics=[
                Metric(k.replace("startup_", "startup/"), round(v, 2), int(time.time() * 1000), step)
                for k, v in startup.items()])

    def step(self, step: int, losses: dict, tcfg: TrainConfig, image, mask) -> dict:
        """Record one finished step; returns the metrics Ray reports at this step."""
        self.window_images += tcfg.batch_size
        if self.progress:
            self.progress.n = step
            self.progress.refresh()
        report = {**losses, "step": step}
        if step % tcfg.log_every == 0 or step == tcfg.steps:
            elapsed = time.perf_counter() - self.window_start
            report["images_per_s"] = self.window_images / max(elapsed, 1e-9)
            report["images_per_cpu_s"] = self.window_images / max(time.process_time() - self.window_cpu, 1e-9)
            for name, opt in self.framework.optimisers.items():
                report[f"lr_{name}"] = opt.param_groups[0]["lr"]
            self.window_start, self.window_cpu, self.window_images = time.perf_counter(), time.process_time(), 0
            if self.client and step > self.logged_through:
                from mlflow.entities import Metric

                now = int(time.time() * 1000)
                self.client.log_batch(self.run_id, metrics=[
                    Metric(f"train/{k}", float(v), now, step) for k, v in report.items() if k != "step"])
        if self.client and step > self.logged_through and (step % tcfg.image_every == 0 or step == tcfg.steps):
            self.framework.train(False)
            grid = _grid(self.framework.visuals(image, mask))
            self.framework.train(True)
            self.client.log_image(self.run_id, grid, artifact_file=f"train/grid_step{step:06d}.png")
        return report

    def validation(self, step: int, scores: dict) -> dict:
        """Log the validation scores of `step` (val/psnr, val/ssim, val/l1) unless MLflow holds that step;
        returns them, for the report."""
        if self.client and step > self.validated_through:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in scores.items()])
            self.validated_through = step
        return scores

    def close(self) -> None:
        if self.progress:
            self.progress.close()


def train_variant(params: Params, variant: str, out_dir: Path) -> dict:
    """Driver: start (or resume) the Ray Train run of one variant and write `out_dir/model.pt`. One driver
    per variant at a time (a second one fails at once instead of deleting the first one's checkpoints). A
    run that another driver finished under this fingerprint (inpaint/training/together.py trains every stale variant
    at once) is picked up, not trained again."""
    if variant not in params.variants:
        raise KeyError(f"unknown variant {variant!r}; params.yaml variants: {', '.join(params.variants)}")
    with lifetime.exclusive(lock_path(params, variant), f"training of variant {variant}"):
        return _train(params, variant, out_dir)


def run_folder(params: Params, variant: str, fp: str) -> Path:
    """Where the run of `variant` under fingerprint `fp` keeps its attempts, checkpoints and result."""
    return paths.absolute(params.ray.storage_path) / variant / f"{variant}-{fp}"


def lock_path(params: Params, variant: str) -> Path:
    """The lock one driver of `variant` holds while it trains it."""
    return paths.absolute(params.ray.storage_path) / variant / "train.lock"


class TrainRun(NamedTuple):
    """Where one training of a variant goes: its fingerprint, its run folder (attempts, checkpoints, result;
    inpaint/checkpoints.py) and its MLflow run. Plain data: it crosses to the Tune trial that trains it."""
    variant: str
    fingerprint: str
    folder: str
    run_id: str


def open_run(params: Params, variant: str) -> TrainRun:
    """The run `variant` trains under now: its folder (older fingerprints' folders pruned by ray.keep_runs)
    and its MLflow run (resumed or new, by `train.resume`)."""
    fp = fingerprint.fingerprint(params, variant)
    client, experiment_id = tracking.open_experiment(params.tracking)
    run = run_folder(params, variant, fp)
    storage = run.parent
    run.mkdir(parents=True, exist_ok=True)
    os.utime(run)  # its last use: what ray.keep_runs keeps
    removed = checkpoints.prune_runs(storage, run, params.ray.keep_runs)
    if removed:
        print(f"train {variant}: removed {len(removed)} run folder(s) of older fingerprints beyond ray.keep_runs="
              f"{params.ray.keep_runs}: {', '.join(p.name for p in removed)}", flush=True)
    run_id = _find_or_start_run(client, experiment_id, variant, fp, params, run)
    return TrainRun(variant, fp, str(run), run_id)


def finished(r: TrainRun) -> dict | None:
    """The train metrics of a run whose result (model.pt and the marker) is in its folder, or None."""
    folder = Path(r.folder)
    marker, model = folder / FINISHED, folder / FINISHED_MODEL
    if not marker.is_file():
        return None
    try:
        checkpoints.load_state(model, expect={"variant": r.variant, "fingerprint": r.fingerprint})
    except ValueError as e:
        print(f"WARNING train: {e}; training again", flush=True)
        marker.unlink()
        return None
    return json.loads(marker.read_text())


def fit_run(params: Params, r: TrainRun, wait_for_workers: bool = False) -> dict:
    """Train the run (resuming from the newest checkpoint in its folder that loads) and write its result to
    its folder: model.pt, then the marker with the train metrics, which it returns. `wait_for_workers`: the
    worker group waits in Ray's queue for as long as the cluster is busy, instead of failing after
    STARTUP_RETRIES attempts (inpaint/training/together.py, whose trainings queue behind one another)."""
    folder = Path(r.folder)
    model, summary = _fit(params, r, startup_retries=-1 if wait_for_workers else STARTUP_RETRIES)
    checkpoints.write_model(model, folder / FINISHED_MODEL)
    write_json(folder / FINISHED, summary)  # the marker: the run's result is complete
    checkpoints.prune(folder, keep=[])  # what a re-run needs is the result, not the checkpoints (GBs)
    return summary


def _train(params: Params, variant: str, out_dir: Path) -> dict:
    r = open_run(params, variant)
    summary = finished(r)
    if summary is None:
        try:
            summary = fit_run(params, r)
        except SystemExit:  # Ctrl-C: Ray Train's SIGINT handler aborts the run, then its `ray.get` exits the process
            raise KeyboardInterrupt from None
        finally:  # Ray leaves that handler installed, and it would call the aborted controller on the next Ctrl-C
            signal.signal(signal.SIGINT, signal.default_int_handler)
    else:  # trained together with the other stale variants, `train.resume: always` on a finished run, or a
        # driver stopped after its result was written
        print(f"train {variant}: finished before; model.pt from {Path(r.folder) / FINISHED_MODEL}", flush=True)
    client, _ = tracking.open_experiment(params.tracking)
    _link(Path(r.folder) / FINISHED_MODEL, out_dir / "model.pt")  # one file for runs/, the run and DVC's cache
    write_json(out_dir / "train_metrics.json", summary)
    _write_loss_curve(client, r.run_id, out_dir / "loss.csv")
    _log_model(client, r.run_id, out_dir / "model.pt")
    client.set_terminated(r.run_id)
    print(f"train {variant}: {summary['steps']} steps in {summary['seconds']:.0f} s (MLflow run {r.run_id})")
    return summary


def _link(source: Path, target: Path) -> None:
    """`target` becomes a hard link to `source` (a copy across file systems), replaced atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            tmp.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, tmp)


def _fit(params: Params, r: TrainRun, startup_retries: int) -> tuple[dict, dict]:
    """Train and return (model.pt content, train metrics)."""
    from inpaint import cluster

    variant, run = r.variant, Path(r.folder)
    cfg, tcfg = params.variants[variant], params.train_for(variant)
    checkpoints.prune(run)
    config = {**loop_config(params, variant, r.run_id, r.fingerprint),
              "resume_from": [str(p) for p in checkpoints.on_disk(run)]}
    attempt = checkpoints.new_attempt()
    if tcfg.num_workers == 0:  # in this process: no Ray to connect to, and the loop stores its checkpoints
        config["attempt"] = str(run / attempt)
        logging.getLogger("ray.train").setLevel(logging.WARNING)  # its INFO line per report breaks the progress bar
    else:
        cluster.connect(params.ray.address, params.ray.keep_alive_s)
    start, driver_s = time.perf_counter(), time.time() - _process_start()
    result = make_trainer(params, config, name=attempt, storage_path=run, startup_retries=startup_retries).fit()
    seconds = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"variant {variant}: training finished without a checkpoint")
    model = checkpoints.checkpoint_model(result.checkpoint, variant, cfg, params.data.image_size, r.run_id,
                                         r.fingerprint)
    summary = {"variant": variant, "framework": cfg.framework, "steps": model["meta"]["steps"],
               "seconds": round(seconds, 1), "startup_driver_s": round(driver_s, 1),
               "images_per_s_with_startup": round(tcfg.steps * tcfg.batch_size / max(seconds, 1e-9), 2),
               **{k: round(float(v), 6) for k, v in result.metrics.items() if isinstance(v, (int, float))}}
    return model, summary


def _process_start() -> float:
    """When this process started (wall clock): the driver's share of a stage's start-up begins there."""
    import psutil

    return psutil.Process().create_time()


def loop_config(params: Params, variant: str, run_id: str | None, fp: str) -> dict:
    """What `train_func` reads: plain data (it crosses process and node boundaries), absolute paths (Ray
    changes the working directory of its workers). `run_id` None: no MLflow logging from the workers."""
    return {"variant": variant, "variant_cfg": params.variants[variant].model_dump(mode="json"),
            "train": params.train_for(variant).model_dump(mode="json"), "image_size": params.data.image_size,
            "prepared": str(paths.PREPARED), "masks": str(paths.MASKS / "train"),
            "tracking_uri": tracking.tracking_uri(params.tracking.uri) if run_id else None, "run_id": run_id,
            "fingerprint": fp, "weights": params.weights}


def make_trainer(params: Params, config: dict, name: str, storage_path: Path | None = None, callbacks=None,
                 train_fn=train_func, startup_retries: int = STARTUP_RETRIES):
    """A TorchTrainer of `train_fn` (the loop's `train_func` unless bench/train.py wraps it) with the scaling,
    failure and checkpoint settings of `params`. A run with the same `name` under the same storage path
    resumes from its last checkpoint. `callbacks`: Ray Train callbacks, e.g. Tune's TuneReportCallback that
    forwards the workers' reports to a Tune trial (Ray calls none in local mode, `train.num_workers: 0`,
    where `fit` runs the loop in this process). `startup_retries`: worker groups that fail to start (no free
    resources for 60 s each) before the run fails; -1 waits for as long as it takes."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from inpaint import cluster
    from inpaint.training.rendezvous import LoopbackTorchConfig

    t = TrainConfig.model_validate(config["train"])  # the variant's merged train settings (Params.train_for)
    torch_config = LoopbackTorchConfig if cluster.is_local() else TorchConfig
    return TorchTrainer(
        train_fn, train_loop_config={**config, "fit_started_at": time.time()},  # startup_ray_s counts from here
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu, resources_per_worker=(
            {"GPU": t.gpus_per_worker} if t.use_gpu else {"CPU": 1}), placement_strategy=t.placement_strategy),
        torch_config=torch_config(backend="nccl" if t.use_gpu else "gloo"),
        run_config=RunConfig(name=name, storage_path=str(storage_path or paths.absolute(params.ray.storage_path)),
                             failure_config=FailureConfig(max_failures=t.max_failures,
                                                          controller_failure_limit=startup_retries),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks))


def _find_or_start_run(client, experiment_id: str, variant: str, fp: str, params: Params, ray_run: Path) -> str:
    """The MLflow run to train under, by `train.resume`: the interrupted run of this fingerprint (its Ray run
    `ray_run` resumes from its last checkpoint), or a new run from step 0 (the Ray run folder of a finished
    or abandoned run of this fingerprint is removed so that Ray starts afresh)."""
    found = client.search_runs([experiment_id], filter_string=(
        f"tags.`{tracking.TAG_VARIANT}` = '{variant}' and tags.fingerprint = '{fp}'"), order_by=["start_time DESC"],
        max_results=1)
    mode = params.train_for(variant).resume
    if found and (mode == "always" or (mode == "interrupted" and found[0].info.status != "FINISHED")):
        print(f"train {variant}: resuming MLflow run {found[0].info.run_id} (fingerprint {fp}, train.resume={mode})")
        return found[0].info.run_id
    if found and found[0].info.status == "RUNNING":
        client.set_terminated(found[0].info.run_id, status="KILLED")
    shutil.rmtree(ray_run, ignore_errors=True)
    cfg = params.variants[variant]
    run = client.create_run(experiment_id, run_name=variant, tags={
        tracking.TAG_KIND: "train", tracking.TAG_VARIANT: variant, tracking.TAG_FRAMEWORK: cfg.framework,
        **tracking.run_provenance(params, variant, fp)})
    tracking.log_params(client, run.info.run_id, {"variant": cfg.model_dump(mode="json"),
                                                  "train": params.train_for(variant).model_dump(mode="json"),
                                                  "data": params.data.model_dump(mode="json")})
    return run.info.run_id


def _log_model(client, run_id: str, model: Path) -> None:
    """model.pt in the run's artifacts when they are stored elsewhere (a server, a bucket); when they are on
    this disk, only a pointer (checkpoint/model.json): DVC's cache already holds the file, and a second and
    third copy of every model is what filled the disk (inpaint fill follows the pointer)."""
    from urllib.parse import urlparse

    if urlparse(client.get_run(run_id).info.artifact_uri).scheme not in ("", "file"):
        client.log_artifact(run_id, str(model), artifact_path="checkpoint")
        return
    model = model.resolve()
    where = model.relative_to(paths.REPO_ROOT).as_posix() if model.is_relative_to(paths.REPO_ROOT) else str(model)
    client.log_dict(run_id, {"path": where, "run_id": run_id}, checkpoints.MODEL_POINTER)


def _write_loss_curve(client, run_id: str, path: Path) -> None:
    """The generator loss per logged step as a CSV (a train stage output; the report overlays every variant's)."""
    history = client.get_metric_history(run_id, "train/loss_g")
    rows = sorted({m.step: m.value for m in history}.items())
    with atomic_path(path) as tmp:
        tmp.write_text("step,loss_g\n" + "".join(f"{s},{v}\n" for s, v in rows))
