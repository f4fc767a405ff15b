"""`dvc repro` on a two-node Ray cluster with room for three one-CPU trainings (a head of 2 CPUs and a node of 1)
trains the three stale variants at once (inpaint/training/together.py). One gathering serves every check: it
is killed with -9 once all three have registered checkpoints, which must leave no training on the cluster,
and up to then their training intervals overlap. The next `dvc repro` resumes each from its checkpoint and
logs every step once, while a variant made to fail fails its own stage with one line. Each resumed model
then equals the one trained alone in one process without a stop (parameters within 1e-6: the same steps on
the same batches, a resume restores the data order and random state, and one process computes what one
worker does)."""
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from conftest import as_from_a_terminal, registered_checkpoint, run_checked, trained_in_this_process
from nodes import cluster  # noqa: F401 (the module's two-node cluster fixture)

pytestmark = pytest.mark.e2e
VARIANTS = ("gdn_weight", "pennet", "pconv")
BROKEN = "pconv_broken"  # valid params that fail at run time, in this variant's own training only
STEPS = 20  # room for the variants' start-up times to differ under load before the kill
DVC = str(Path(sys.executable).parent / "dvc")
LEASE_S = 30  # docs/cluster.md: how long trainings may outlive a killed `dvc repro`


def _three(params: dict, shared: Path) -> None:
    params["profile"] = "ci"
    params["variants"] = {k: params["variants"][k] for k in VARIANTS}
    params["train"] = {"steps": STEPS, "checkpoint_every": 2}
    params["ray"] = {"storage_path": str(shared / "together")}  # absolute: every node writes its checkpoints there
    params["tune"] = {"studies": {}}


def _set_params(work: Path, edit) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    edit(params)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _targets(variants) -> list[str]:
    return [f"train@{v}" for v in variants]


def _stages_of(work: Path) -> list[str]:
    """The command lines of the processes that run in the copy (its stages)."""
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        if proc.info["cwd"] == str(work):
            found.append(" ".join(proc.info["cmdline"] or []))
    return found


@pytest.fixture(scope="module")
def together(repo_copy, cluster, tmp_path_factory):
    """A ci copy with three variants on the cluster, after: `dvc repro` of their train stages killed with -9
    once all three registered a checkpoint; the wait for the cluster to drop their trainings; `dvc repro -k`
    with a fourth, failing variant added; and each of the three trained alone, in this process without Ray.
    Returns what the tests read."""
    shared = tmp_path_factory.mktemp("shared")
    work, env = repo_copy(lambda p: _three(p, shared))
    env.update(RAY_ADDRESS=cluster.address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.env["RAY_AUTH_TOKEN"])
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    run_checked(["git", "init", "-q"], work, env)
    run_checked([*git, "add", "-A"], work, env)
    run_checked([*git, "commit", "-qm", "copy"], work, env)
    run_checked([DVC, "repro", "prepare", "masks"], work, env)

    since = time.time()
    proc = subprocess.Popen(as_from_a_terminal([DVC, "repro", *_targets(VARIANTS)]), cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed_at, deadline = None, time.monotonic() + 600
    while killed_at is None and proc.poll() is None and time.monotonic() < deadline:
        if all(registered_checkpoint(shared / "together" / v, since) for v in VARIANTS):
            proc.kill()  # dvc repro, -9
            killed_at, killed_wall = time.monotonic(), time.time()
        time.sleep(0.1)
    killed_log, _ = proc.communicate(timeout=60)
    assert killed_at is not None, f"dvc repro ended before every variant had a checkpoint:\n{killed_log[-4000:]}"
    left = cluster.alive_actors() + _stages_of(work)
    while left and time.monotonic() - killed_at < LEASE_S:
        time.sleep(1)
        left = cluster.alive_actors() + _stages_of(work)
    gone_s = time.monotonic() - killed_at

    _set_params(work, lambda p: p["variants"].update({BROKEN: {"framework": "pconv", "train": {"batch_size": 512}}}))
    resumed = subprocess.run([DVC, "repro", "-k", *_targets([*VARIANTS, BROKEN])], cwd=work, env=env,
                             capture_output=True, text=True, timeout=900)

    together_models = {v: _model(work, v) for v in VARIANTS}
    alone_models = {v: trained_in_this_process(work, v) for v in VARIANTS}
    return dict(work=work, killed_log=killed_log, killed_wall=killed_wall, left=left, gone_s=gone_s,
                resumed=resumed, together_models=together_models, alone_models=alone_models)


def _model(work: Path, variant: str) -> dict:
    return torch.load(work / "runs" / variant / "model.pt", weights_only=True)


def _history(work: Path, variant: str, fingerprint: str, key: str) -> list:
    """`key`'s MLflow history in the run of `variant` trained together under `fingerprint`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("inpaint").experiment_id
    (run,) = client.search_runs([experiment_id], filter_string=(
        f"tags.`inpaint.variant` = '{variant}' and tags.fingerprint = '{fingerprint}'"))
    return client.get_metric_history(run.info.run_id, key)


def test_stale_variants_train_at_once_each_like_alone(together):
    t = together
    assert "train: 3 variants need training; training them together on Ray" in t["killed_log"], t["killed_log"][-4000:]
    intervals = {}
    for v, model in t["together_models"].items():
        fingerprint = model["meta"]["fingerprint"]
        started = _history(t["work"], v, fingerprint, "startup/setup_s")  # logged when a worker began
        before_kill = [m.timestamp for m in _history(t["work"], v, fingerprint, "train/loss_g")
                       if m.timestamp <= t["killed_wall"] * 1000]
        assert before_kill, f"{v} logged no step before the kill"
        intervals[v] = (min(m.timestamp for m in started), max(before_kill))
    assert max(s for s, _ in intervals.values()) < min(e for _, e in intervals.values()), intervals  # all at once
    for v, model in t["together_models"].items():
        single = t["alone_models"][v]
        assert model["meta"]["steps"] == STEPS
        for k, tensor in model["generator"].items():
            assert torch.allclose(single["generator"][k], tensor, rtol=0, atol=1e-6), (v, k)


def test_a_killed_repro_leaves_no_training_and_resumes_each_once_while_a_failing_variant_fails_alone(together):
    t = together
    assert not t["left"], f"still running {LEASE_S} s after dvc repro was killed: {t['left']}"
    print(f"no training left {t['gone_s']:.1f} s after kill -9 of dvc repro")
    log = t["resumed"].stdout + t["resumed"].stderr
    assert t["resumed"].returncode != 0, log[-4000:]
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: train {BROKEN}: ValueError: train.batch_size=512 is larger than the training set "
                      "(80 images)"], log[-6000:]
    resumed = re.findall(r"train (\w+): resumed from the checkpoint of step (\d+)", log)
    assert {v for v, step in resumed if 0 < int(step) <= STEPS} == set(VARIANTS), "\n".join(
        line for line in log.splitlines() if re.search("resum|together|train \\w+: ", line))[-6000:]
    for v, model in t["together_models"].items():
        assert model["meta"]["steps"] == STEPS
        logged = sorted(m.step for m in _history(t["work"], v, model["meta"]["fingerprint"], "train/loss_g"))
        assert logged == list(range(1, STEPS + 1)), (v, logged)  # every step once
