"""An MLflow tracking server as the one store (docs/cluster.md): with MLFLOW_TRACKING_URI pointing at
`mlflow server` (SQLite backend, artifacts served through the server), every stage of the ci pipeline, the
report and a Tune study log over HTTP, artifacts included, and the repository's own mlflow.db and
mlartifacts/ are never created. The server is stopped at the end with no process left."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import run_checked

pytestmark = pytest.mark.e2e
VARIANT = "gdn_weight"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
           "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts",
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


def _ci(params: dict) -> None:
    params["profile"] = "ci"
    params["variants"] = {VARIANT: params["variants"][VARIANT]}
    params["tune"] = {"studies": {"seeds": {"variant": VARIANT, "space": {"train.seed": {"grid": [1]}}}}}


@pytest.fixture(scope="module")
def pipeline(repo_copy, server):
    """A ci copy of the repository after `dvc repro` and `inpaint tune seeds`, logging to the server."""
    uri, _ = server
    work, env = repo_copy(_ci)
    env["MLFLOW_TRACKING_URI"] = uri
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    run_checked(["git", "init", "-q"], work, env)
    run_checked([*git, "add", "-A"], work, env)
    run_checked([*git, "commit", "-qm", "copy"], work, env)
    try:
        start = time.perf_counter()
        run_checked([str(BIN / "dvc"), "repro"], work, env, timeout=1200)
        run_checked([sys.executable, "-m", "inpaint.cli", "tune", "seeds"], work, env)
        print(f"dvc repro + inpaint tune (ci, 1 variant, tracking server) took {time.perf_counter() - start:.0f} s")
        yield work
    finally:
        from inpaint import cluster

        cluster.stop_head(work)


def test_nothing_is_written_to_the_repositorys_own_store(pipeline):
    assert not (pipeline / "mlflow.db").exists()
    assert not (pipeline / "mlartifacts").exists()


def test_the_server_holds_every_run_and_its_artifacts(pipeline, server):
    from mlflow.tracking import MlflowClient

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
        local = Path(client.download_artifacts(by_kind[kind], folder, str(pipeline / "downloaded" / kind)))
        files = [f for f in local.rglob("*") if f.is_file()]
        assert any(f.name == name and f.stat().st_size > 0 for f in files), (kind, files)
    assert client.list_artifacts(by_kind["train"], "evaluation"), "the evaluate stage logged nothing"
    train = client.get_run(by_kind["train"])
    assert "test/psnr" in train.data.metrics, train.data.metrics.keys()  # one series over the bins
    assert [m.step for m in client.get_metric_history(by_kind["train"], "train/loss_g")] == [1, 2]
    assert client.get_metric_history(by_kind["tune_trial"], "val/psnr")
    # the artifacts are files of the server's store, uploaded through it
    assert list((store / "artifacts").rglob("model.pt")) and list((store / "artifacts").rglob("results.csv"))
