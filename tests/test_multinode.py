"""The ci pipeline on a two-node Ray cluster, started the way docs/cluster.md tells a researcher to (`ray start
--head`, then `ray start --address` on the second machine), here both on this machine with their own temp
dirs and ports: 2 Ray Train workers on different nodes (train.placement_strategy SPREAD) reach the
parameters of the run with both workers on one node; removing a worker's node mid-run is survived from the
last checkpoint on the shared ray.storage_path; a Tune study stopped on one driver resumes from another.

Tolerance: both runs split the same global batch over 2 gloo workers, so the all-reduce adds the same two
numbers whichever node each worker is on: the parameters must agree to float32 rounding (1e-6). A step
applied twice or lost moves most elements by about lr (1e-4, Adam's first updates), far outside it."""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import yaml

from conftest import registered_checkpoint, run_checked

RAY = str(Path(sys.executable).parent / "ray")
VARIANT = "gdn_weight"
STEPS = 4
CLI = [sys.executable, "-m", "inpaint.cli"]  # the copy's inpaint (its working directory comes first)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes(marks: list[str]) -> list[psutil.Process]:
    """Every process whose command line holds one of `marks` (a node's temp dir, the GCS port), and their
    children (the Ray workers, whose command lines Ray rewrites)."""
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(re.search(m, cmdline) for m in marks):
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    found[p.pid] = p
            except psutil.NoSuchProcess:
                continue
    return [p for pid, p in found.items() if pid != os.getpid()]


def _stop(procs: list[psutil.Process]) -> None:
    """What `ray stop` does to a node's processes (it would stop every Ray on this shared machine)."""
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=10)


class Cluster:
    """A head (2 CPUs: after losing the other node, both workers of a run fit on it) and a node (1 CPU)."""

    def __init__(self):
        self.head_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths fit 107 characters
        self.node_dir = tempfile.mkdtemp(prefix="rn", dir="/tmp")
        self.port, self.dashboard = _free_port(), _free_port()
        # token authentication, the token given to every node and driver (else a ~/.ray/auth_token left by any
        # local Ray on the machine switches the head to token mode and the second node is refused)
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")},
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.address = None

    def start(self) -> None:
        out = run_checked([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                           "--num-cpus=2", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard}",
                           f"--dashboard-agent-listen-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
                           f"--temp-dir={self.head_dir}", "--disable-usage-stats"], None, self.env, timeout=180)
        # the address the head prints for other nodes (Ray replaces 127.0.0.1 by this machine's address)
        self.address = re.search(r"ray start --address='([^']+)'", out).group(1)
        self.add_node()

    def add_node(self) -> None:
        run_checked([RAY, "start", f"--address={self.address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                     f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={self.node_dir}",
                     "--disable-usage-stats"], None, self.env, timeout=180)

    def remove_node(self) -> None:
        _stop(_processes([re.escape(self.node_dir)]))

    def stop(self) -> None:
        _stop(_processes([re.escape(self.head_dir), re.escape(self.node_dir), rf":{self.port}\b"]))
        for d in (self.head_dir, self.node_dir):
            shutil.rmtree(d, ignore_errors=True)

    def _list(self, kind: str, *filters: str) -> list[dict]:
        """`ray list` of the State API, in a process of its own that carries the cluster's token."""
        out = subprocess.run([RAY, "list", kind, f"--address={self.api}", "--format=json", "--detail", "--limit=1000",
                              *(f"--filter={f}" for f in filters)], env=self.env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        if "No resource in the cluster" in out.stdout:  # what it prints for an empty list, in any format
            return []
        return json.loads(out.stdout[out.stdout.index("["):out.stdout.rindex("]") + 1])

    def nodes(self) -> dict[str, bool]:
        """{node id: is the head} of the nodes alive now."""
        return {n["node_id"]: n["is_head_node"] for n in self._list("nodes", "state=ALIVE")}

    def train_workers(self) -> dict[str, str]:
        """{actor id: node id} of every Ray Train worker the cluster has run, finished ones included."""
        return {a["actor_id"]: a["node_id"] for a in self._list("actors", "class_name=RayTrainWorker")}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
    assert not _processes([re.escape(c.head_dir), re.escape(c.node_dir), rf":{c.port}\b"]), "Ray processes left"


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
    from inpaint import train, tune
    from inpaint.config import resolve

    params = resolve({"profile": "ci", "variants": {VARIANT: {"framework": "weight"}},
                      "train": {"placement_strategy": "SPREAD"}, "tune": {
        "train": {"use_gpu": True, "gpus_per_worker": 0.5}, "studies": {
            "s": {"variant": VARIANT, "space": {"train.seed": {"grid": [1, 2]}}}}}})
    trial = tune.trial_params(params, "s", {"train.seed": 1})
    config = train.loop_config(trial, VARIANT, None, "fp")  # what tune hands the trainer
    scaling = train.make_trainer(trial, config, name="t", storage_path=Path("/tmp/unused")).scaling_config
    assert scaling.use_gpu and scaling.total_resources == {"GPU": 0.5}  # the ci profile: 1 worker per trial
    assert scaling.placement_strategy == "SPREAD"
