"""The ci pipeline on a two-node Ray cluster logging to an MLflow tracking server, both started the way
docs/cluster.md tells a researcher to (`ray start --head`, then `ray start --address` on the second machine;
`mlflow server` with a SQLite backend, artifacts served through it), here all on this machine with their own
temp dirs and ports: every stage, the report and a Tune study log over HTTP, artifacts included, and the
repository's own mlflow.db and mlartifacts/ are never created; 2 Ray Train workers on different nodes
(train.placement_strategy SPREAD) reach the parameters of the run with both workers on one node, and those
of one process on the whole batch; a Tune study stopped on one driver resumes from another; removing a
worker's node mid-run is survived from the last checkpoint on the shared ray.storage_path. The server is
stopped at the end with no process left.

Tolerance: both runs split the same global batch over 2 gloo workers, so the all-reduce adds the same two
numbers whichever node each worker is on: the parameters must agree to float32 rounding (1e-6). A step
applied twice or lost moves most elements by about lr (1e-4, Adam's first updates), far outside it.
Against one process the all-reduce sums in another order, and Adam's first updates are about lr * sign(g),
so a gradient within float noise of 0 can flip its update, and each flip moves the later steps: after 4
steps at least 95 % of the elements agree to 1e-5, and none differs by more than two full updates per step
(2 * lr * steps). (Adam normalises the gradient's
scale away: tests/test_ddp_equivalence.py compares the gradients themselves.)"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import yaml

from conftest import registered_checkpoint, run_checked, trained_in_this_process
from inpaint.models.registry import build
from nodes import cluster, free_port  # noqa: F401 (cluster: the module's two-node cluster fixture)

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


def _group(pgid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                out.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 in a process group of its own, stopped (the whole group) at the end."""
    store = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
           f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(store / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (store / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield uri, store
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(_group(proc.pid), timeout=20)
        for p in alive:
            p.kill()
        proc.wait(timeout=20)
        log.close()
    assert not _group(proc.pid), "mlflow server processes left"


@pytest.fixture(scope="module")
def pipeline(repo_copy, cluster, server, tmp_path_factory):
    """A ci copy of the repository after `dvc repro` on the cluster (RAY_ADDRESS) with SPREAD, logging to the
    server (MLFLOW_TRACKING_URI)."""
    shared = tmp_path_factory.mktemp("shared")
    work, env = repo_copy(lambda p: _spread(p, shared))
    env.update(RAY_ADDRESS=cluster.address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.env["RAY_AUTH_TOKEN"],
               MLFLOW_TRACKING_URI=server[0])
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    run_checked(["git", "init", "-q"], work, env)
    run_checked([*git, "add", "-A"], work, env)
    run_checked([*git, "commit", "-qm", "copy"], work, env)
    before = cluster.train_workers()
    start = time.perf_counter()
    run_checked([str(Path(sys.executable).parent / "dvc"), "repro"], work, env, timeout=900)
    print(f"dvc repro (ci, {VARIANT}) on two nodes took {time.perf_counter() - start:.0f} s")
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
def test_two_workers_on_two_nodes_train_like_two_on_one_node_and_like_one_process(pipeline, cluster):
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

    one = trained_in_this_process(work, VARIANT)["generator"]  # the same global batch in one process
    torch.manual_seed(10)  # the ci profile's train.seed
    init = build("gdn_generator").state_dict()
    assert any(not torch.equal(init[k], v) for k, v in one.items()), "training changed nothing"
    diffs = torch.cat([(spread["generator"][k] - v).abs().flatten() for k, v in one.items()])
    # measured: 96.9 % of the elements within 1e-5, the largest difference 3.3e-4 (of the bound 8e-4)
    assert (diffs <= 1e-5).float().mean() >= 0.95, f"{(diffs > 1e-5).sum()} of {diffs.numel()} differ"
    assert diffs.max() <= 2 * 1e-4 * STEPS, diffs.max()  # 2 * lr_g (GDN) * steps


@pytest.mark.e2e
def test_a_study_stopped_on_one_driver_resumes_from_another_on_the_shared_path(pipeline, cluster):
    """The first driver is killed with -9 once its trial has a checkpoint, and Ray ends the trials it owned; a
    second process (another machine of the cluster: it only needs RAY_ADDRESS and the shared
    tune.storage_path) resumes the study, and the trial goes on from that checkpoint."""
    work, env, shared, _ = pipeline
    study_dir = shared / "tune" / "seeds"
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
    deadline = time.monotonic() + 60
    while trainings := cluster.alive_actors():  # Ray ends the trials the killed driver owned
        assert time.monotonic() < deadline, f"the killed driver's trials still run after 60 s: {trainings}"
        time.sleep(0.5)
    log = run_checked([*CLI, "tune", "seeds"], work, env)
    assert "resuming the study" in log, log[-4000:]
    assert re.search(r"resumed from the checkpoint of step [1-9]", log), log[-4000:]
    table = pd.read_csv(work / "reports" / "tune" / "seeds" / "results.csv")
    assert list(table.status) == ["completed"] and list(table.step) == [STEPS], table


@pytest.mark.e2e
def test_the_server_holds_every_run_and_its_artifacts_and_the_repository_no_store(pipeline, server):
    from mlflow.tracking import MlflowClient

    work = pipeline[0]
    assert not (work / "mlflow.db").exists() and not (work / "mlartifacts").exists()
    uri, store = server
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("inpaint")
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location  # proxied by the server
    runs = client.search_runs([exp.experiment_id])
    kinds = sorted(r.data.tags.get("inpaint.kind") for r in runs)
    assert kinds == ["baseline"] * 3 + ["masks", "report", "train", "tune_study", "tune_trial"], kinds
    by_kind = {r.data.tags["inpaint.kind"]: r.info.run_id for r in runs}
    expected = {"masks": ("pictures", "ratio_histogram.png"), "train": ("checkpoint", "model.pt"),
                "report": ("tables", "weight_adv_det.md"), "tune_study": ("results", "results.csv")}
    for kind, (folder, name) in expected.items():
        local = Path(client.download_artifacts(by_kind[kind], folder, str(work / "downloaded" / kind)))
        files = [f for f in local.rglob("*") if f.is_file()]
        assert any(f.name == name and f.stat().st_size > 0 for f in files), (kind, files)
    assert client.list_artifacts(by_kind["train"], "evaluation"), "the evaluate stage logged nothing"
    train = client.get_run(by_kind["train"])
    assert "test/psnr" in train.data.metrics, train.data.metrics.keys()  # one series over the bins
    assert [m.step for m in client.get_metric_history(by_kind["train"], "train/loss_g")] == list(range(1, STEPS + 1))
    assert client.get_metric_history(by_kind["tune_trial"], "val/psnr")
    # the artifacts are files of the server's store, uploaded through it
    assert list((store / "artifacts").rglob("model.pt")) and list((store / "artifacts").rglob("results.csv"))


@pytest.mark.e2e
def test_removing_a_workers_node_resumes_on_the_node_left_and_does_every_step_once(pipeline, cluster, server):
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
    client = MlflowClient(server[0])
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
