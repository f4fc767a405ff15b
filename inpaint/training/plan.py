"""`inpaint plan`: what training every variant of the resolved params costs on a cluster, before renting it.

For each variant: the resources its worker group reserves (`train.num_workers` x a GPU share or a CPU), its
steps, and its seconds per step: an earlier finished run's throughput when MLflow holds one of the same
fingerprint, else a short calibration (a few optimisation steps of the variant's own framework at the
profile's resolution and micro-batch, on this machine's device). Then the schedule that training them all
at once produces (inpaint/training/together.py: every variant submitted in params order, each starting as soon as
its request fits, a later and smaller one first if it fits earlier) and its makespan beside the sum of the
trainings one after another. The schedule is a model of Ray's placement-group queue for planning, not a
scheduler: start-up, data loading and communication between workers are left out, and a step on N workers
is taken to cost what one worker's share (the micro-batch) costs.
"""
from __future__ import annotations

import heapq
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from inpaint.config import Params


@dataclass
class Item:
    variant: str
    framework: str
    kind: str  # "GPU" or "CPU": what the worker group reserves
    amount: float
    steps: int
    step_s: float
    source: str  # where step_s comes from
    start_h: float = 0.0

    @property
    def hours(self) -> float:
        return self.steps * self.step_s / 3600

    @property
    def end_h(self) -> float:
        return self.start_h + self.hours


def request(params: Params, variant: str) -> tuple[str, float]:
    """(resource, amount) a variant's worker group reserves."""
    t = params.train_for(variant)
    return ("GPU", t.num_workers * t.gpus_per_worker) if t.use_gpu else ("CPU", float(max(t.num_workers, 1)))


def schedule(items: list[Item], capacity: dict[str, float]) -> float:
    """Set each item's start (hours) as the cluster's queue would: in order, each as soon as its request fits
    the free resources; returns the makespan. An item larger than the cluster raises."""
    for item in items:
        if item.amount > capacity.get(item.kind, 0):
            raise ValueError(f"{item.variant} asks for {item.amount:g} {item.kind}; the cluster has "
                             f"{capacity.get(item.kind, 0):g}")
    free, now, running, waiting = dict(capacity), 0.0, [], list(items)
    while waiting:
        for item in list(waiting):
            if item.amount <= free[item.kind] + 1e-9:
                item.start_h = now
                free[item.kind] -= item.amount
                heapq.heappush(running, (item.end_h, id(item), item))
                waiting.remove(item)
        if waiting:  # the next end frees resources
            now, _, done = heapq.heappop(running)
            free[done.kind] += done.amount
    return max((i.end_h for i in items), default=0.0)


def calibrate(params: Params, variant: str, steps: int, device: str, batch: int | None = None) -> float:
    """Median seconds of `steps` optimisation steps (after one warm-up step) of the variant's framework on
    random images and square holes of the profile's size, at its micro-batch; with `batch`, on that many
    images, scaled to the micro-batch in proportion (a CPU's time per image barely depends on the batch)."""
    import torch

    from inpaint.frameworks import build_framework, build_networks

    cfg, t, size = params.variants[variant], params.train_for(variant), params.data.image_size
    torch.manual_seed(t.seed)
    networks = {k: v.to(device) for k, v in build_networks(cfg, size).items()}
    framework = build_framework(cfg, networks, weights_mode="random" if params.weights == "random" else "auto")
    framework.make_optimisers()
    framework.make_schedulers(t.steps)
    images = batch or t.micro_batch
    image = torch.rand(images, 3, size, size, device=device)
    mask = torch.zeros(images, 1, size, size, device=device)
    mask[..., size // 4: size // 2, size // 4: 3 * size // 4] = 1
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        framework.step(image, mask)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * t.accumulate * t.micro_batch / images  # a step: `accumulate` micro-batches


def measured(params: Params, variant: str) -> float | None:
    """Seconds per step of an earlier finished run of this fingerprint (MLflow's train/images_per_s), or None
    (no such run, no prepared data to fingerprint, or no store yet: planning writes nothing)."""
    from mlflow.tracking import MlflowClient

    from inpaint.provenance import tracking
    from inpaint.provenance.fingerprint import fingerprint

    uri = tracking.tracking_uri(params.tracking.uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None
    try:
        fp = fingerprint(params, variant)
    except FileNotFoundError:
        return None
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    run = experiment and tracking.finished_train_run(client, experiment.experiment_id, variant, fp)
    history = client.get_metric_history(run.info.run_id, "train/images_per_s") if run else []
    if not history:
        return None
    return params.train_for(variant).batch_size / statistics.median(m.value for m in history)


def measure(params: Params, calibration_steps: int = 2, calibration_batch: int | None = None,
            progress=print) -> tuple[list[Item], str]:
    """Every variant's item (request, steps, seconds per step; not yet scheduled) and the device measured on."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    items = []
    for v, cfg in params.variants.items():
        step_s, source = measured(params, v), "earlier run"
        if step_s is None:
            progress(f"plan: calibrating {v} ({calibration_steps} steps on {device})")
            step_s = calibrate(params, v, calibration_steps, device, calibration_batch)
            micro = params.train_for(v).micro_batch
            scaled = calibration_batch and calibration_batch != micro
            source = f"calibrated on {device}" + (f" (batch {calibration_batch}, x{micro / calibration_batch:g})"
                                                   if scaled else "")
        kind, amount = request(params, v)
        items.append(Item(v, cfg.framework, kind, amount, params.train_for(v).steps, step_s, source))
    return items, device


def table(params: Params, items: list[Item], makespan_h: float, capacity: dict[str, float], where: str) -> str:
    """The plan as text: one row per variant, then the makespan beside the sequential sum; times in hours,
    or in minutes when the whole plan is shorter than two hours."""
    sequential = sum(i.hours for i in items)
    unit, per_hour = ("h", 1) if sequential >= 2 else ("min", 60)
    cluster = ", ".join(f"{v:g} {k}" for k, v in capacity.items() if v)
    lines = [f"plan: profile {params.profile}, {len(items)} variants on {cluster} ({where})",
             f"{'variant':<18} {'framework':<9} {'request':>9} {'steps':>10} {'s/step':>8} {unit:>9} "
             f"{'start':>9} {'end':>9}  s/step from"]
    for i in items:
        lines.append(f"{i.variant:<18} {i.framework:<9} {f'{i.amount:g} {i.kind}':>9} {i.steps:>10,} "
                     f"{i.step_s:>8.3f} {i.hours * per_hour:>9.1f} {i.start_h * per_hour:>9.1f} "
                     f"{i.end_h * per_hour:>9.1f}  {i.source}")
    work = {k: sum(i.hours * i.amount for i in items if i.kind == k) for k in capacity}
    bound = max([max((i.hours for i in items), default=0.0)] +
                [work[k] / capacity[k] for k in capacity if capacity[k]])
    lines.append(f"makespan {makespan_h * per_hour:,.1f} {unit} together; {sequential * per_hour:,.1f} {unit} one "
                 f"after another ({makespan_h / max(sequential, 1e-12):.2f}x); no schedule beats "
                 f"{bound * per_hour:,.1f} {unit} (the longest training, or the work over the cluster)")
    return "\n".join(lines)


def cluster_capacity(address: str | None) -> dict[str, float]:
    """The CPUs and GPUs of the Ray cluster at `address` (or RAY_ADDRESS)."""
    import ray

    ray.init(address=address or "auto", configure_logging=False, log_to_driver=False)
    try:
        total = ray.cluster_resources()
    finally:
        ray.shutdown()
    return {"GPU": float(total.get("GPU", 0)), "CPU": float(total.get("CPU", 0))}
