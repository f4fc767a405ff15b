"""Every stale variant at once: under `dvc repro`, the first train stage trains all the variants that need
training, as many at a time as the Ray cluster holds, and every train stage then finishes its own variant.

Why this shape (docs/cluster.md): DVC runs one stage at a time in a workspace, and each variant is its own
`train@VARIANT` stage, with its own staleness, run folder, MLflow run and model file. So the first train
stage DVC runs gathers every variant whose current fingerprint has no finished run, and trains them as one
Ray Tune run: a trial per variant, Tune as the run scheduler. Each trial drives its variant's TorchTrainer,
whose worker group waits in Ray's placement-group queue while the cluster is full. A trial writes its
variant's result into the variant's run folder, exactly what training the variant alone writes; each train
stage, the gathering one included, then picks its variant's result up (`train.train_variant`). A variant that
failed fails its own stage with its own error when DVC reaches it; the others are trained.

The trials are Ray actors owned by the stage's process, so they share its fate: `dvc repro` killed takes its
stage with it (inpaint/lifetime.py), and Ray ends the dead driver's trials and their workers within seconds.
Their checkpoints stay in the run folders, and the next `dvc repro` resumes each variant from its own.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from contextlib import ExitStack
from pathlib import Path

from inpaint import cluster, lifetime, paths
from inpaint.config import Params
from inpaint.io import atomic_path
from inpaint.provenance import tracking
from inpaint.training import train
from inpaint.training.plan import request

OUTCOME = "together.json"  # in a variant's storage folder: how its training in a gathering ended
# A queued worker group waits for its resources in one placement-group request for up to a week, instead of
# Ray Train's 60 s followed by a retry that logs the timeout's traceback (the retries are unlimited anyway:
# train.fit_run's wait_for_workers). Ray Train reads it in each run's controller, a process of this job.
QUEUE_QUIETLY = {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(7 * 24 * 3600)}


def applies(params: Params) -> bool:
    """Whether this process is a DVC stage (DVC sets DVC_STAGE for every stage command) with `ray.concurrent`.
    `inpaint train VARIANT` trains that variant alone."""
    return bool(os.environ.get("DVC_STAGE")) and params.ray.concurrent


def gathering_id() -> str:
    """The `dvc repro` this stage belongs to: DVC runs every stage as its child, so its parent's pid and start
    time name it (a pid alone may be reused)."""
    import psutil

    parent = psutil.Process(os.getppid())
    return f"{parent.pid}-{parent.create_time():.2f}"


def candidates(params: Params) -> list[str]:
    """The variants that may train together: those on Ray workers (`train.num_workers` >= 1; in-process
    training buys nothing from concurrency on one machine) that resume (`train.resume: never` starts from
    step 0 in its own stage every time)."""
    return [v for v in params.variants
            if params.train_for(v).num_workers >= 1 and params.train_for(v).resume != "never"]


def train_stale(params: Params, own: str) -> str | None:
    """Train every stale candidate at once, unless this `dvc repro` did already; returns why `own`'s training
    failed (one line), or None."""
    gathering = gathering_id()
    outcome = _read_outcome(params, own)
    if outcome.get("gathering") != gathering:
        if own not in candidates(params) or not _stale(params, own):
            return None
        _train_together(params, own, gathering)
        outcome = _read_outcome(params, own)
    return outcome["error"] if outcome.get("status") == "failed" else None


def _stale(params: Params, variant: str) -> bool:
    """No finished run of the variant's current fingerprint: neither a result in its run folder nor a
    FINISHED MLflow run."""
    from inpaint.provenance.fingerprint import fingerprint

    fp = fingerprint(params, variant)
    if (train.run_folder(params, variant, fp) / train.FINISHED).is_file():
        return False
    return tracking.finished_train_run(*tracking.open_experiment(params.tracking), variant, fp) is None


def _train_together(params: Params, own: str, gathering: str) -> None:
    stale = [v for v in candidates(params) if _stale(params, v)]
    if len(stale) < 2:  # nothing to overlap: the stage trains its variant as it would alone
        return
    with ExitStack() as held:
        locked = []
        for v in stale:  # a variant that another driver trains right now is left to it (its own stage says so)
            try:
                held.enter_context(lifetime.exclusive(train.lock_path(params, v), f"training of variant {v}"))
                locked.append(v)
            except lifetime.Busy:
                if v == own:
                    raise
        cluster.connect(params.ray.address, params.ray.keep_alive_s, env=QUEUE_QUIETLY)
        fits = {}
        for v in locked:
            why = _infeasible(params, v)
            if why:
                _write_outcome(params, v, gathering, "failed", why)
            else:
                fits[v] = train.open_run(params, v)
        if fits:
            _fit_all(params, fits, gathering)


def _infeasible(params: Params, variant: str) -> str | None:
    """Why the cluster can never hold the variant's worker group (more than its total), or None."""
    import ray

    kind, amount = request(params, variant)
    total = ray.cluster_resources().get(kind, 0)
    if amount <= total:
        return None
    return (f"train.num_workers={params.train_for(variant).num_workers} asks for {amount:g} {kind}; "
            f"the cluster has {total:g}")


def _train_one(config: dict, params: Params, runs: dict[str, tuple]) -> dict:
    """Tune's trainable: the driver of one variant's training."""
    summary = train.fit_run(params, train.TrainRun(*runs[config["variant"]]), wait_for_workers=True)
    return {"steps": summary["steps"]}


def _fit_all(params: Params, runs: dict[str, train.TrainRun], gathering: str) -> None:
    """One Tune run, a trial per variant; each variant's outcome written to its storage folder."""
    from ray import tune

    names = ", ".join(runs)
    print(f"train: {len(runs)} variants need training; training them together on Ray: {names}", flush=True)
    where = paths.absolute(params.ray.storage_path) / "together"
    trainable = tune.with_parameters(_train_one, params=params, runs={v: tuple(r) for v, r in runs.items()})
    tuner = tune.Tuner(
        tune.with_resources(trainable, cluster.DRIVER_RESOURCES),
        param_space={"variant": tune.grid_search(list(runs))},
        run_config=tune.RunConfig(name=gathering, storage_path=str(where), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0), callbacks=[_progress(len(runs))]))
    start = time.perf_counter()
    try:
        results = tuner.fit()  # Ctrl-C: Tune's own SIGINT handler stops the trials and returns
    finally:  # Tune leaves that handler installed after a fit it did not interrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
        shutil.rmtree(where / gathering, ignore_errors=True)  # Tune's own records: each run folder holds the state
    client, _ = tracking.open_experiment(params.tracking)
    ended = {}
    for result in results:
        variant = result.config["variant"]
        if result.error is not None:
            ended[variant] = "failed"
            _write_outcome(params, variant, gathering, "failed", one_line(result.error))
            client.set_terminated(runs[variant].run_id, status="FAILED")
        elif (Path(runs[variant].folder) / train.FINISHED).is_file():
            ended[variant] = "finished"
            _write_outcome(params, variant, gathering, "finished")
    seconds = time.perf_counter() - start
    unfinished = [v for v in runs if v not in ended]
    if unfinished:
        raise KeyboardInterrupt(f"interrupted: the training of {', '.join(unfinished)} stopped before the last step "
                                "(the next `dvc repro` resumes each from its last checkpoint)")
    print(f"train: trained together in {seconds:.0f} s: " + ", ".join(f"{v} {s}" for v, s in ended.items()),
          flush=True)


def one_line(error: BaseException) -> str:
    """The last line of an error that says what went wrong (Ray wraps a worker's error in its traceback)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("File ", "Traceback", "^", "~"))]
    return (said or lines or [type(error).__name__])[-1]


def _outcome_path(params: Params, variant: str) -> Path:
    return paths.absolute(params.ray.storage_path) / variant / OUTCOME


def _read_outcome(params: Params, variant: str) -> dict:
    path = _outcome_path(params, variant)
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_outcome(params: Params, variant: str, gathering: str, status: str, error: str = "") -> None:
    with atomic_path(_outcome_path(params, variant)) as tmp:
        tmp.write_text(json.dumps({"gathering": gathering, "status": status, "error": error}))


def _progress(total: int):
    """A Tune callback that prints a line per trial as it starts, finishes or fails (Tune's own status table
    is off: `verbose=0`)."""
    from ray import tune

    class Progress(tune.Callback):
        started = ended = 0

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started += 1
            print(f"train: {trial.config['variant']} started ({self.started - self.ended} of {total} running)",
                  flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended += 1
            print(f"train: {trial.config['variant']} finished ({self.ended} of {total} done)", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.ended += 1
            print(f"train: {trial.config['variant']} failed ({self.ended} of {total} done)", flush=True)

    return Progress()
