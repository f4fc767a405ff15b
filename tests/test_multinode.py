"""The ci pipeline on a two-node Ray cluster, started the way docs/cluster.md tells a researcher to (`ray start
--head`, then `ray start --address` on the second machine), here both on this machine with their own temp
dirs and ports: 2 Ray Train workers on different nodes (train.placement_strategy SPREAD) reach the
parameters of the run with both workers on one node; removing a worker's node mid-run is survived from the
last checkpoint on the shared ray.storage_path; a Tune study stopped on one driver resumes from another.

Tolerance: both runs split the same global batch over 2 gloo workers, so the all-reduce adds the same two
numbers whichever node each worker is on: the parameters must agree to float32 rounding (1e-6). A step
applied twice or lost moves most elements by about lr (1e-4, Adam's first updates), far outside it."""
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import registered_checkpoint, run_checked
from nodes import cluster  # noqa: F401 (the module's two-node cluster fixture)

VARIANT = "gdn_weight"
STEPS = 4
CLI = [sys.executable, "-m", "inpaint.cli"]  # the copy's inpaint (its working directory comes first)


def _spread(params: dict, shared: Path) -> None:
    params["profile"] = "ci"
    params["variants"] = {VARIANT: params["variants"][VARIANT]}
    params["train"] = {"num_workers": 2, "placement_strategy": "SPREAD", "steps": STEPS}
    params["ray"] = {"storage_path": str(shared / "train")}  # absolute: every node writes its checkpoints there
    params["tune"] = {"storage_path": str(shared / "tune"), "train": {"checkpoint_every": 1}, "studies": {
        "seeds": {"variant": VARIANT, "space": {"train.seed": {"grid": [1]}}}}}


@pytest.fixture(scope="module")
def pipeline(repo_copy, cluster, tmp_path_factory):
    """A ci copy of the repository whose train stage ran on the cluster (RAY_ADDRESS) with SPREAD."""
    shared = tmp_path_factory.mktemp("shared")
    work, env = repo_copy(lambda p: _spread(p, shared))
    env.update(RAY_ADDRESS=cluster.address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.env["RAY_AUTH_TOKEN"])
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    run_checked(["git", "init", "-q"], work, env)
    run_checked([*git, "add", "-A"], work, env)
    run_checked([*git, "commit", "-qm", "copy"], work, env)
    before = cluster.train_workers()
    start = time.perf_counter()
    run_checked([str(Path(sys.executable).parent / "dvc"), "repro", f"train@{VARIANT}"], work, env, timeout=900)
    print(f"dvc repro train@{VARIANT} on two nodes took {time.perf_counter() - start:.0f} s")
    workers = {a: n for a, n in cluster.train_workers().items() if a not in before}
    return work, env, shared, workers


def _set_params(work: Path, **sections) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    for name, values in sections.items():
        params[name] = {**params.get(name, {}), **values}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _generator(work: Path) -> dict:
    return torch.load(work / "runs" / VARIANT / "model.pt", weights_only=True)


def _assert_same_parameters(a: dict, b: dict) -> None:
    assert a["meta"]["steps"] == b["meta"]["steps"] == STEPS
    for k, v in a["generator"].items():
        assert torch.allclose(b["generator"][k], v, rtol=0, atol=1e-6), (k, (b["generator"][k] - v).abs().max())


@pytest.mark.e2e
def test_two_workers_on_two_nodes_train_like_two_on_one_node(pipeline, cluster):
    work, env, shared, workers = pipeline
    nodes = cluster.nodes()
    assert len(nodes) == 2
    assert len(workers) == 2 and set(workers.values()) == set(nodes), workers  # one worker on each node
    run = shared / "train" / VARIANT
    # the result is on the shared path (a finished run keeps no Ray checkpoint, inpaint/checkpoints.py)
    assert list(run.glob(f"{VARIANT}-*/model.pt")), list(run.rglob("*"))
    spread = _generator(work)

    original = (work / "params.yaml").read_text()
    _set_params(work, train={"placement_strategy": "PACK"}, ray={"storage_path": str(shared / "pack")},
                tracking={"experiment": "pack"})
    before = cluster.train_workers()
    try:
        run_checked([*CLI, "train", VARIANT], work, env)
    finally:
        (work / "params.yaml").write_text(original)
    packed = {a: n for a, n in cluster.train_workers().items() if a not in before}
    assert len(packed) == 2 and len(set(packed.values())) == 1, packed  # both on one node
    _assert_same_parameters(spread, _generator(work))


@pytest.mark.e2e
def test_a_study_stopped_on_one_driver_resumes_from_another_on_the_shared_path(pipeline, cluster):
    """The first driver dies once its trial has a checkpoint; a second process (another machine of the
    cluster: it only needs RAY_ADDRESS and the shared tune.storage_path) resumes the study, and the trial
    goes on from that checkpoint."""
    work, env, shared, _ = pipeline
    study_dir = shared / "tune" / "seeds"
    run_checked([*CLI, "pairs"], work, env)  # a study scores its completed trials on the test pairs
    first = subprocess.Popen([*CLI, "tune", "seeds"], cwd=work, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    stopped, deadline = False, time.monotonic() + 300
    while not stopped and first.poll() is None and time.monotonic() < deadline:
        if registered_checkpoint(study_dir / "trials") and list((study_dir / "study").glob("experiment_state*")):
            first.send_signal(signal.SIGKILL)
            stopped = True
        time.sleep(0.05)
    log, _ = first.communicate(timeout=60)
    assert stopped, f"the study ended before its trial's first checkpoint:\n{log[-3000:]}"
    log = run_checked([*CLI, "tune", "seeds"], work, env)
    assert "resuming the study" in log, log[-4000:]
    assert re.search(r"resumed from the checkpoint of step [1-9]", log), log[-4000:]
    table = pd.read_csv(work / "reports" / "tune" / "seeds" / "results.csv")
    assert list(table.status) == ["completed"] and list(table.step) == [STEPS], table


@pytest.mark.e2e
def test_removing_a_workers_node_resumes_on_the_node_left_and_does_every_step_once(pipeline, cluster):
    from mlflow.tracking import MlflowClient

    work, env, shared, _ = pipeline
    reference = _generator(work)
    original = (work / "params.yaml").read_text()
    storage = shared / "removal"
    _set_params(work, train={"checkpoint_every": 1, "max_failures": 1}, ray={"storage_path": str(storage)},
                tracking={"experiment": "removal"})
    before = cluster.train_workers()
    try:
        proc = subprocess.Popen([*CLI, "train", VARIANT], cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        removed, deadline = False, time.monotonic() + 300
        while not removed and proc.poll() is None and time.monotonic() < deadline:
            if registered_checkpoint(storage / VARIANT):
                cluster.remove_node()
                removed = True
            time.sleep(0.05)
        log, _ = proc.communicate(timeout=600)
    finally:
        (work / "params.yaml").write_text(original)
    assert removed, f"the run ended before its first checkpoint:\n{log[-3000:]}"
    assert proc.returncode == 0, log[-6000:]
    resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "resumed from the checkpoint of step" in line]
    assert resumed and 0 < resumed[-1] < STEPS, log[-4000:]
    nodes = cluster.nodes()
    assert list(nodes.values()) == [True], nodes  # only the head is left
    workers = {a: n for a, n in cluster.train_workers().items() if a not in before}
    assert len(workers) == 4 and list(workers.values()).count(next(iter(nodes))) == 3, workers  # 1 + 2 on the head

    _assert_same_parameters(reference, _generator(work))  # no step lost, none applied twice
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("removal").experiment_id])
    history = client.get_metric_history(run.info.run_id, "train/loss_g")
    # the steps after the restored checkpoint ran again, but MLflow holds each step once
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1)), [m.step for m in history]


def test_tune_trials_ask_for_the_gpus_and_placement_of_params():
    """Trials on a GPU cluster: each Ray Train worker of a trial reserves train.gpus_per_worker GPUs (0.5: two
    trials share one GPU); this machine has no GPU to run them, so the request itself is checked."""
    from inpaint.config import resolve
    from inpaint.training import train, tune

    params = resolve({"profile": "ci", "variants": {VARIANT: {"framework": "weight"}},
                      "train": {"placement_strategy": "SPREAD"}, "tune": {
        "train": {"use_gpu": True, "gpus_per_worker": 0.5}, "studies": {
            "s": {"variant": VARIANT, "space": {"train.seed": {"grid": [1, 2]}}}}}})
    trial = tune.trial_params(params, "s", {"train.seed": 1})
    config = train.loop_config(trial, VARIANT, None, "fp")  # what tune hands the trainer
    scaling = train.make_trainer(trial, config, name="t", storage_path=Path("/tmp/unused")).scaling_config
    assert scaling.use_gpu and scaling.total_resources == {"GPU": 0.5}  # the ci profile: 1 worker per trial
    assert scaling.placement_strategy == "SPREAD"
