"""Faults with Ray (ci profile): during a 2-worker training nothing listens beyond loopback; a second
trainer of the same variant is refused; the driver killed with -9 right after a checkpoint is resumed from
that checkpoint (not from step 0) and each step is logged once; the finished run leaves no checkpoint
behind. Two clones, one training and one running a Tune study, at the same time: both finish, each on its
own Ray."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

from conftest import run_checked
from inpaint import checkpoints, cluster
from inpaint.checkpoints import STATE_FILE, load_state
from inpaint.training import train

pytestmark = pytest.mark.e2e

VARIANT = "gdn_weight"
STEPS = 8


def _ci_two_workers(params: dict) -> None:
    params["profile"] = "ci"
    params["train"] = {**params.get("train", {}), "steps": STEPS, "checkpoint_every": 2, "num_workers": 2,
                       "log_every": 1}
    params["ray"] = {**params.get("ray", {}), "keep_alive_s": 0}  # a private Ray that dies with its driver


def _ray_processes(driver: psutil.Process, work) -> list[psutil.Process]:
    """The driver, its descendants and the processes of the copy's local Ray head (its own session)."""
    try:
        procs = [driver, *driver.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    head = cluster.running_head(work)
    return procs + (cluster.session_processes(head["session"]) if head else [])


def _listening(procs: list[psutil.Process]) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket that one of `procs` listens on."""
    by_pid = {p.pid: p for p in procs}
    found = set()
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.pid in by_pid:
            try:
                name = by_pid[c.pid].name()
            except psutil.NoSuchProcess:
                continue
            found.add((c.laddr.ip, c.laddr.port, name))
    return found


def _lock_holder(storage) -> int | None:
    """The pid in the variant's training lock file (inpaint/lifetime.py exclusive), None before there is one."""
    try:
        return int((storage / "train.lock").read_text().strip())
    except (OSError, ValueError):
        return None


def _complete_checkpoint(storage):
    """(folder, step) of a checkpoint that loads, or None while there is none."""
    for run in storage.glob(f"{VARIANT}-*"):
        for d in checkpoints.on_disk(run):
            try:
                return d, load_state(d / STATE_FILE)["step"]
            except ValueError:  # still being copied
                pass
    return None


@pytest.fixture(scope="module")
def work(repo_copy):
    work, env = repo_copy(_ci_two_workers)
    ray_tmp = tempfile.mkdtemp(prefix="rf", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    env["RAY_TMPDIR"] = ray_tmp
    cli = [sys.executable, "-m", "inpaint.cli"]
    run_checked([*cli, "prepare"], work, env)
    run_checked([*cli, "masks"], work, env)
    yield work, env, cli
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_killed_driver_resumes_from_its_checkpoint_and_only_loopback_listens(work):
    from mlflow.tracking import MlflowClient

    work, env, cli = work
    log_path = work / "driver.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen([*cli, "train", VARIANT], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(driver.pid)
    seen, found, second = set(), None, None
    storage = work / "checkpoints" / VARIANT
    deadline = time.monotonic() + 600
    # A second driver starts once the first holds the variant's lock, so that it has met the lock before the
    # first is killed right after its first checkpoint (killed later, the first may have finished its steps)
    while found is None or second.poll() is None:
        assert driver.poll() is None and time.monotonic() < deadline, (
            f"no checkpoint (exit {driver.poll()}):\n{log_path.read_text()[-3000:]}")
        if second is None and _lock_holder(storage) == driver.pid:
            second = subprocess.Popen([*cli, "train", VARIANT], cwd=work, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        seen |= _listening(_ray_processes(root, work))
        found = found or (second and _complete_checkpoint(storage))
        time.sleep(0.5)
    _, step = found
    ray_procs = _ray_processes(root, work)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _, alive = psutil.wait_procs(ray_procs, timeout=60)  # the watchdog stops the head (ray.keep_alive_s: 0)
    assert not alive, f"left running after the driver was killed: {alive}"

    _, second_err = second.communicate()
    assert second.returncode == 2, second_err[-3000:]
    assert f"training of variant {VARIANT} is already running (pid {driver.pid}" in second_err
    assert "Traceback" not in second_err
    assert seen, "no listening socket seen during training"
    outside = {s for s in seen if not cluster.is_loopback(s[0])}
    assert not outside, f"listening beyond loopback during a 2-worker run: {sorted(outside)}"

    log = run_checked([*cli, "train", VARIANT], work, env)
    assert "resumed from the checkpoint of step" in log, log[-3000:]
    resumed = int(log.split("resumed from the checkpoint of step ")[1].split()[0])
    assert resumed >= step
    run = next(storage.glob(f"{VARIANT}-*"))
    assert checkpoints.on_disk(run) == []  # finished: no Ray checkpoint left, only the result
    assert os.path.samefile(run / train.FINISHED_MODEL, work / "runs" / VARIANT / "model.pt")
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (train_run,) = client.search_runs([client.get_experiment_by_name("inpaint").experiment_id],
                                      filter_string=f"tags.`inpaint.variant` = '{VARIANT}'")
    steps = [m.step for m in client.get_metric_history(train_run.info.run_id, "train/loss_g")]
    assert sorted(steps) == list(range(1, STEPS + 1))  # each step once: not restarted at step 0, none logged twice
    assert not list((work / "mlartifacts").rglob("model.pt"))  # a local MLflow store: a pointer, no copy
    assert next((work / "mlartifacts").rglob("checkpoint/model.json")).is_file()



def _ci_study(params: dict) -> None:
    params["profile"] = "ci"
    params["ray"] = {**params.get("ray", {}), "keep_alive_s": 0}
    params["tune"]["studies"]["seed"] = {"variant": VARIANT, "space": {"train.seed": {"grid": [1]}}}
    params["tune"]["train"] = {"steps": 2, "checkpoint_every": 2}  # lean: what is tested is running at once


def test_two_clones_train_and_tune_at_the_same_time(repo_copy):
    """Each clone's processes use its own head (RAY_ADDRESS reaches Ray Train's internals too), so neither
    connects to "the latest cluster" of the other: both finish, every trial completes, no head is left."""
    clones = [repo_copy(_ci_study), repo_copy(_ci_study)]
    cli = [sys.executable, "-m", "inpaint.cli"]
    (a, env_a), (b, env_b) = clones
    for stage in ("prepare", "masks", "pairs"):  # a study scores its trials on the test pairs
        run_checked([*cli, stage], a, env_a)
    shutil.copytree(a / "data", b / "data", dirs_exist_ok=True)  # the same params make the same files
    procs = [subprocess.Popen([*cli, "train", VARIANT], cwd=a, env=env_a, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True),
             subprocess.Popen([*cli, "tune", "seed"], cwd=b, env=env_b, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-4000:]
        assert "Connecting to latest cluster" not in log and "AuthenticationError" not in log, log[-4000:]
    assert (a / "runs" / VARIANT / "model.pt").is_file()
    import pandas as pd

    table = pd.read_csv(b / "reports" / "tune" / "seed" / "results.csv")
    assert list(table.status) == ["completed"], table
    assert (b / "reports" / "tune" / "seed" / "best_params.yaml").is_file()
    deadline = time.monotonic() + 60
    while any(cluster.running_head(w) for w in (a, b)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not any(cluster.running_head(w) for w in (a, b)), "a head outlived its last user (keep_alive_s: 0)"
