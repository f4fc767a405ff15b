"""`dvc repro` on a two-node Ray cluster with room for three one-CPU trainings (a head of 2 CPUs and a node of 1)
trains the three stale variants at once (inpaint/training/together.py): their training intervals overlap, each model
equals the one trained alone (same fingerprint, parameters within 1e-6: the same steps on the same batches
in one worker each), and the train phase's wall time is printed beside the one-after-another sum. `dvc repro`
killed with -9 while they train leaves no training on the cluster; the next `dvc repro` resumes each from
its checkpoint, logging every step once, while a variant made to fail fails its own stage with one line."""
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from conftest import as_from_a_terminal, registered_checkpoint, run_checked
from nodes import cluster  # noqa: F401 (the module's two-node cluster fixture)

pytestmark = pytest.mark.e2e
VARIANTS = ("gdn_weight", "pennet", "pconv")
STEPS = 4
DVC = str(Path(sys.executable).parent / "dvc")
CLI = [sys.executable, "-m", "inpaint.cli"]  # the copy's inpaint (its working directory comes first)
LEASE_S = 30  # docs/cluster.md: how long trainings may outlive a killed `dvc repro`


def _three(params: dict, shared: Path) -> None:
    params["profile"] = "ci"
    params["variants"] = {k: params["variants"][k] for k in VARIANTS}
    params["train"] = {"steps": STEPS}
    params["ray"] = {"storage_path": str(shared / "together")}  # absolute: every node writes its checkpoints there
    params["tune"] = {"studies": {}}


def _set_params(work: Path, edit) -> None:
    params = yaml.safe_load((work / "params.yaml").read_text())
    edit(params)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _targets(variants) -> list[str]:
    return [f"train@{v}" for v in variants]


@pytest.fixture(scope="module")
def together(repo_copy, cluster, tmp_path_factory):
    """A ci copy with three variants whose train stages ran on the cluster; the seconds of that train phase."""
    shared = tmp_path_factory.mktemp("shared")
    work, env = repo_copy(lambda p: _three(p, shared))
    env.update(RAY_ADDRESS=cluster.address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.env["RAY_AUTH_TOKEN"])
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    run_checked(["git", "init", "-q"], work, env)
    run_checked([*git, "add", "-A"], work, env)
    run_checked([*git, "commit", "-qm", "copy"], work, env)
    run_checked([DVC, "repro", "prepare", "masks"], work, env)
    start = time.perf_counter()
    log = run_checked([DVC, "repro", *_targets(VARIANTS)], work, env)
    return work, env, shared, log, time.perf_counter() - start


def _client(work: Path, experiment: str = "inpaint"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    return client, client.get_experiment_by_name(experiment).experiment_id


def _run_of(work: Path, variant: str, fingerprint: str, experiment: str = "inpaint"):
    client, experiment_id = _client(work, experiment)
    (run,) = client.search_runs([experiment_id], filter_string=(
        f"tags.`inpaint.variant` = '{variant}' and tags.fingerprint = '{fingerprint}'"))
    return client, run.info.run_id


def _stages_of(work: Path) -> list[str]:
    """The command lines of the processes that run in the copy (its stages)."""
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        if proc.info["cwd"] == str(work):
            found.append(" ".join(proc.info["cmdline"] or []))
    return found


def _model(work: Path, variant: str) -> dict:
    return torch.load(work / "runs" / variant / "model.pt", weights_only=True)


def test_stale_variants_train_at_once_each_like_alone(together, cluster):
    work, env, shared, log, together_s = together
    assert "train: 3 variants need training; training them together on Ray" in log, log[-4000:]
    models = {v: _model(work, v) for v in VARIANTS}
    intervals = {}
    for v, model in models.items():
        client, run_id = _run_of(work, v, model["meta"]["fingerprint"])
        started = client.get_metric_history(run_id, "startup/setup_s")  # logged when the worker began
        steps = client.get_metric_history(run_id, "train/loss_g")
        assert sorted(m.step for m in steps) == list(range(1, STEPS + 1))
        intervals[v] = (min(m.timestamp for m in started), max(m.timestamp for m in steps))
    assert max(s for s, _ in intervals.values()) < min(e for _, e in intervals.values()), intervals  # all at once

    def alone(params):
        params["ray"] = {"storage_path": str(shared / "alone")}
        params["tracking"] = {"experiment": "alone"}

    _set_params(work, alone)
    alone_s = 0.0
    for v in VARIANTS:  # `inpaint train VARIANT` trains that variant alone
        start = time.perf_counter()
        run_checked([*CLI, "train", v], work, env)
        alone_s += time.perf_counter() - start
        single = _model(work, v)
        assert single["meta"]["fingerprint"] == models[v]["meta"]["fingerprint"]
        for k, tensor in models[v]["generator"].items():
            assert torch.allclose(single["generator"][k], tensor, rtol=0, atol=1e-6), (v, k)
    print(f"train phase of {len(VARIANTS)} variants: {together_s:.0f} s together, {alone_s:.0f} s one after "
          f"another ({together_s / alone_s:.2f}x)")


def test_a_killed_repro_leaves_no_training_and_resumes_each_once_while_a_failing_variant_fails_alone(together,
                                                                                                        cluster):
    work, env, shared, _, _ = together
    steps, broken = 20, "pconv_broken"  # steps: room for the variants' start-up times to differ under load

    def longer(params):
        params["ray"] = {"storage_path": str(shared / "together")}
        params["tracking"] = {}
        params["train"] = {"steps": steps, "checkpoint_every": 2}

    _set_params(work, longer)
    since = time.time()
    proc = subprocess.Popen(as_from_a_terminal([DVC, "repro", *_targets(VARIANTS)]), cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    storage = shared / "together"
    killed, deadline = False, time.monotonic() + 600
    while not killed and proc.poll() is None and time.monotonic() < deadline:
        if all(registered_checkpoint(storage / v, since) for v in VARIANTS):
            proc.kill()  # dvc repro, -9
            killed_at = time.monotonic()
            killed = True
        time.sleep(0.1)
    log, _ = proc.communicate(timeout=60)
    assert killed, f"dvc repro ended before every variant had a checkpoint:\n{log[-4000:]}"
    alive = cluster.alive_actors() + _stages_of(work)
    while alive and time.monotonic() - killed_at < LEASE_S:
        time.sleep(1)
        alive = cluster.alive_actors() + _stages_of(work)
    assert not alive, f"still running {LEASE_S} s after dvc repro was killed: {alive}"
    print(f"no training left {time.monotonic() - killed_at:.1f} s after kill -9 of dvc repro")

    # valid params that fail at run time, in this variant's own training only (the others' fingerprints stay)
    _set_params(work, lambda p: p["variants"].update({broken: {"framework": "pconv", "train": {"batch_size": 512}}}))
    targets = _targets([*VARIANTS, broken])
    out = subprocess.run([DVC, "repro", "-k", *targets], cwd=work, env=env, capture_output=True, text=True,
                         timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-4000:]
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: train {broken}: ValueError: train.batch_size=512 is larger than the training set "
                      "(80 images)"], log[-6000:]
    resumed = re.findall(r"train (\w+): resumed from the checkpoint of step (\d+)", log)
    assert {v for v, step in resumed if 0 < int(step) <= steps} == set(VARIANTS), "\n".join(
        line for line in log.splitlines() if re.search("resum|together|train \\w+: ", line))[-6000:]
    for v in VARIANTS:
        model = _model(work, v)
        assert model["meta"]["steps"] == steps
        client, run_id = _run_of(work, v, model["meta"]["fingerprint"])
        logged = sorted(m.step for m in client.get_metric_history(run_id, "train/loss_g"))
        assert logged == list(range(1, steps + 1)), (v, logged)  # every step once
