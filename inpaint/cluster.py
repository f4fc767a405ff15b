"""Connecting to Ray: an existing cluster when an address is given (params `ray.address` or RAY_ADDRESS),
otherwise a local Ray that listens on 127.0.0.1 only.

Ray resolves even an explicit 127.0.0.1 to the machine's network address unless it believes clusters are
off (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, its switch for single-machine use); the local default sets that
switch for this process and the Ray processes it starts. tests/test_cluster.py checks the address.

A DVC pipeline runs each train stage in its own process; starting Ray in each costs seconds that twelve
variants pay twelve times. With `ray.keep_alive_s` > 0 the first stage starts a local head (`ray start`,
token-authenticated, on 127.0.0.1) that later stages join; a watchdog process stops it once no stage has
used it for that many seconds (`inpaint ray stop` stops it at once). Its state lives in <repo>/.ray/.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from inpaint.io import atomic_path
from inpaint.paths import REPO_ROOT

LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
HEAD_DIR = ".ray"


def is_local(address: str | None = None) -> bool:
    """Whether `connect(address)` runs Ray on this machine only (no cluster address given)."""
    return not (address or os.environ.get("RAY_ADDRESS"))


def connect(address: str | None = None, keep_alive_s: int = 0):
    address = address or os.environ.get("RAY_ADDRESS")
    head = None
    if not address:
        os.environ[LOOPBACK_SWITCH] = "0"
        if keep_alive_s > 0:
            head = running_head() or _try_start_head(keep_alive_s)
        if head:
            _use_token(head)
            _lease(Path(head["dir"]))
    import ray
    import ray._private.ray_constants as ray_constants

    if ray.is_initialized():
        return ray.get_runtime_context()
    env = {"env_vars": {"INPAINT_ROOT": str(REPO_ROOT)}}
    if address:
        return ray.init(address=address, runtime_env=env)
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time; the env var covers the child processes
    if head:
        return ray.init(address=head["address"], runtime_env=env, configure_logging=False)
    # "local": a private Ray even when a `ray start` head runs on this machine (plain ray.init() would join it).
    # The dashboard stays on although it costs start-up time: Ray Train's placement-group cleaner asks the State
    # API it serves, and without it a failed run's CPUs stay reserved, so the next Tune trial never starts.
    return ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", runtime_env=env,
                    configure_logging=False)


def node_addresses() -> list[str]:
    import ray

    return [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]


def _head_dir(root: Path | None = None) -> Path:
    return (root or REPO_ROOT) / HEAD_DIR


def running_head(root: Path | None = None) -> dict | None:
    """This repository's local head if it is up (its GCS port answers), else None."""
    path = _head_dir(root) / "head.json"
    if not path.is_file():
        return None
    head = json.loads(path.read_text())
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", head["port"])) != 0:
            return None
    return head


def _auth(head: dict) -> dict:
    """The head's own token (not ~/.ray's): every process that joins it, and its workers, carry it."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head["token"]}


def _use_token(head: dict) -> None:
    """Join with the head's token. Ray caches its auth mode and token when first used, so refresh both
    the way Ray's own `_enable_token_auth` does (pinned Ray; tests/test_cluster.py covers it)."""
    os.environ.update(_auth(head))
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _try_start_head(keep_alive_s: int) -> dict | None:
    """A shared head only saves start-up time: if it cannot start, this stage runs on a private Ray."""
    try:
        return start_head(keep_alive_s)
    except RuntimeError as e:
        print(f"WARNING ray: {e}\nWARNING ray: this stage uses a private Ray instead of a shared head", flush=True)
        return None


def start_head(keep_alive_s: int, root: Path | None = None) -> dict:
    """`ray start --head` on 127.0.0.1 plus its watchdog; returns the head's record (also in .ray/head.json)."""
    directory = _head_dir(root)
    (directory / "leases").mkdir(parents=True, exist_ok=True)
    port, dashboard = _free_port(), _free_port()
    head = {"address": f"127.0.0.1:{port}", "port": port, "dir": str(directory), "keep_alive_s": keep_alive_s,
            "token": secrets.token_hex(32)}
    env = {**os.environ, LOOPBACK_SWITCH: "0", **_auth(head)}
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
           f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
           "--disable-usage-stats"]
    out = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if out.returncode != 0:
        _kill(list(head_processes(port)))  # whatever of the head did start
        raise RuntimeError(f"could not start a local Ray head ({' '.join(cmd)}):\n{out.stderr[-3000:]}")
    with atomic_path(directory / "head.json") as tmp:
        tmp.write_text(json.dumps(head))
        tmp.chmod(0o600)  # holds the token
    subprocess.Popen([sys.executable, "-m", "inpaint.cluster", "watch", str(directory)], env=env,
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    print(f"ray: started a local head on {head['address']}; it stops {keep_alive_s} s after its last use "
          "(or now: `inpaint ray stop`)", flush=True)
    return head


def _lease(directory: Path) -> None:
    """Mark this process as a user of the head until it exits (the watchdog checks the pid)."""
    (directory / "leases").mkdir(parents=True, exist_ok=True)
    (directory / "leases" / str(os.getpid())).touch()


def head_processes(port: int):
    """Every process of the head listening on `port`: each Ray process carries the GCS address or port."""
    import psutil

    marks = (f"127.0.0.1:{port}", f"--gcs_server_port={port}")
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(m in cmdline for m in marks) and "inpaint.cluster" not in cmdline:
            yield proc


def stop_head(root: Path | None = None) -> bool:
    """Stop this repository's local head (only its own processes: other Rays on the machine live on)."""
    directory = _head_dir(root)
    path = directory / "head.json"
    if not path.is_file():
        return False
    procs = list(head_processes(json.loads(path.read_text())["port"]))
    _kill(procs)
    path.unlink(missing_ok=True)
    return bool(procs)


def _kill(procs: list) -> None:
    import psutil

    for proc in procs:
        proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        proc.kill()


def watch(directory: Path, poll_s: float = 2.0) -> None:
    """The watchdog: stop the head `keep_alive_s` after the last leasing process has exited."""
    import psutil

    head = json.loads((directory / "head.json").read_text())
    last_used = time.monotonic()
    while running_head(directory.parent):
        leases = list((directory / "leases").glob("*"))
        live = [p for p in leases if psutil.pid_exists(int(p.name))]
        for p in set(leases) - set(live):
            p.unlink(missing_ok=True)
        if live:
            last_used = time.monotonic()
        elif time.monotonic() - last_used > head["keep_alive_s"]:
            stop_head(directory.parent)
            return
        time.sleep(poll_s)


if __name__ == "__main__" and sys.argv[1:2] == ["watch"]:
    watch(Path(sys.argv[2]))
