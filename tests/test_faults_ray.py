"""Two clones of the repository, one training and one running a Tune study, at the same time: both finish,
each on its own Ray. (The driver and `dvc repro` killed during a 2-worker run, and nothing listening beyond
loopback meanwhile: tests/test_pipeline_e2e.py.)"""
import shutil
import subprocess
import sys
import time

import pytest

from conftest import run_checked
from inpaint import cluster

pytestmark = pytest.mark.e2e

VARIANT = "gdn_weight"


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
