"""Two Ray nodes on this machine, started the way docs/cluster.md tells a researcher to (`ray start --head`,
then `ray start --address` on the second machine), each with its own temp dir and ports: the multi-node
cluster of tests/test_multinode.py and tests/test_together.py."""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from conftest import run_checked

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes(marks: list[str]) -> list[psutil.Process]:
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


def stop_processes(procs: list[psutil.Process]) -> None:
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
        self.port, self.dashboard = free_port(), free_port()
        # token authentication, the token given to every node and driver (else a ~/.ray/auth_token left by any
        # local Ray on the machine switches the head to token mode and the second node is refused)
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")},
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.address = None

    def start(self) -> None:
        out = run_checked([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                           "--num-cpus=2", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard}",
                           f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
                           f"--temp-dir={self.head_dir}", "--disable-usage-stats"], None, self.env, timeout=180)
        # the address the head prints for other nodes (Ray replaces 127.0.0.1 by this machine's address)
        self.address = re.search(r"ray start --address='([^']+)'", out).group(1)
        self.add_node()

    def add_node(self) -> None:
        run_checked([RAY, "start", f"--address={self.address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                     f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={self.node_dir}",
                     "--disable-usage-stats"], None, self.env, timeout=180)

    def remove_node(self) -> None:
        stop_processes(processes([re.escape(self.node_dir)]))

    def stop(self) -> None:
        stop_processes(processes([re.escape(self.head_dir), re.escape(self.node_dir), rf":{self.port}\b"]))
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

    def alive_actors(self, classes=("ImplicitFunc", "TrainController", "RayTrainWorker")) -> list[str]:
        """The classes of the live actors of a training: Tune's trial drivers, Ray Train's controllers and
        workers (not the cluster's own service actors)."""
        return [a["class_name"] for a in self._list("actors", "state=ALIVE") if a["class_name"] in classes]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"


@pytest.fixture(scope="module")
def cluster():
    """A two-node cluster for a test module, stopped at its end with no Ray process left."""
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
    assert not processes([re.escape(c.head_dir), re.escape(c.node_dir), rf":{c.port}\b"]), "Ray processes left"
