"""Connecting to Ray: an existing cluster when an address is given (params `ray.address` or RAY_ADDRESS),
otherwise this repository's local head, on 127.0.0.1 only.

The local head is Ray's own `ray start --head` (token-authenticated, every port on 127.0.0.1, its Ray
client server on a free port rather than the fixed 10001 a second clone would also take). Its record lives
in <repo>/.ray/head.json. Every process that uses it holds a lease (a file named by its pid); a watchdog
stops the head `ray.keep_alive_s` seconds after the last leasing process has exited (0: at once), so a
DVC pipeline's stages share one head and nothing is left running after the last one. `inpaint ray stop`
stops it at once.

Why a head rather than a private `ray.init()`: its address is known before the job starts, so every
process of the job, Ray Train's own included, gets it as RAY_ADDRESS and never looks for "the latest
cluster" on the machine (which, with a second clone running, is the other clone's). The head is started
in a session of its own and stopped by that session id, so exactly its processes (dashboard and runtime-env
agents included) stop, whatever their command lines; another repository's head lives on.

Ray resolves even an explicit 127.0.0.1 to the machine's network address unless it believes clusters are
off (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, its switch for single-machine use); the local default sets that
switch for this process and the Ray processes it starts. tests/test_cluster.py checks the addresses.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from inpaint import lifetime
from inpaint.io import atomic_path
from inpaint.paths import REPO_ROOT

LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# A Tune trial that drives a TorchTrainer only waits on it, and the trainer's workers reserve the CPUs (or GPUs)
# themselves; Ray needs a non-empty request, so the driver reserves the memory it uses instead of Tune's default CPU.
DRIVER_RESOURCES = {"CPU": 0, "memory": 256 * 2**20}
# Ray Train's switch for the actor each fit starts to watch for nodes drained ahead of a preemption
PREEMPTION_WATCHER = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
HEAD_DIR = ".ray"
START_ATTEMPTS = 2


def connect(address: str | None = None, keep_alive_s: int = 0, env: dict[str, str] | None = None):
    """Join the cluster (or this repository's local head) once per process; `env`: environment variables for
    every process of this job (its tasks, actors and Ray Train workers)."""
    address = address or os.environ.get("RAY_ADDRESS")
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    env = {"INPAINT_ROOT": str(REPO_ROOT), **(env or {})}
    if os.environ.get("MLFLOW_TRACKING_URI"):  # Tune's trial drivers, on any node, log to the driver's store
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
    if address:
        return ray.init(address=address, runtime_env={"env_vars": env})
    os.environ[LOOPBACK_SWITCH] = "0"  # the Ray processes this one starts read the switch at their import
    # A private Ray name (the other is _use_token's): this process imported Ray before it could set the switch,
    # and Ray reads it into this constant at import, with no public setter (tests/test_cluster.py checks it).
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    head = running_head() or start_head(keep_alive_s)
    _use_token(head)
    _lease(Path(head["dir"]))
    env["RAY_ADDRESS"] = head["address"]  # Ray Train's own lookups (state API, placement-group cleaner) too
    env[PREEMPTION_WATCHER] = "0"  # one machine: no node is drained for preemption, so no watcher actor per fit
    return ray.init(address=head["address"], runtime_env={"env_vars": env}, configure_logging=False)


def is_local() -> bool:
    """Whether every node of the connected cluster is this machine on loopback (the local default); before
    connecting, whether no cluster address is set."""
    import ray

    if not ray.is_initialized():
        return not os.environ.get("RAY_ADDRESS")
    return set(node_addresses()) == {"127.0.0.1"}


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or the IPv4 loopback as an IPv6 socket shows it (::ffff:127.0.0.1)."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


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


def start_head(keep_alive_s: int, root: Path | None = None) -> dict:
    """`ray start --head` on 127.0.0.1 plus its watchdog; returns the head's record (also in .ray/head.json).
    The calling process holds the first lease, so the watchdog cannot stop the head before it joins. `ray
    start` gives up when its own processes answer too slowly (a loaded machine): it is tried START_ATTEMPTS
    times, each on fresh ports."""
    directory = _head_dir(root)
    (directory / "leases").mkdir(parents=True, exist_ok=True)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            head, env = _ray_start(directory, keep_alive_s)
            break
        except RuntimeError as e:
            if attempt == START_ATTEMPTS:
                raise
            print(f"WARNING ray: the local head did not start ({str(e).splitlines()[-1]}); trying again",
                  flush=True)
    with atomic_path(directory / "head.json") as tmp:
        tmp.write_text(json.dumps(head))
        tmp.chmod(0o600)  # holds the token
    _lease(directory)
    subprocess.Popen([sys.executable, "-m", "inpaint.cluster", "watch", str(directory)], env=env,
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    print(f"ray: started a local head on {head['address']}; it stops {keep_alive_s} s after its last use "
          "(or now: `inpaint ray stop`)", flush=True)
    return head


def _ray_start(directory: Path, keep_alive_s: int) -> tuple[dict, dict]:
    """One `ray start --head`: (the head's record, the environment its processes run with). On failure,
    stops whatever of the head did start and raises RuntimeError with `ray start`'s output."""
    port, dashboard, client = _free_port(), _free_port(), _free_port()
    head = {"address": f"127.0.0.1:{port}", "port": port, "dir": str(directory), "keep_alive_s": keep_alive_s,
            "token": secrets.token_hex(32)}
    env = {**os.environ, LOOPBACK_SWITCH: "0", **_auth(head)}
    env.pop("RAY_ADDRESS", None)
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
           f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
           f"--ray-client-server-port={client}", "--disable-usage-stats"]
    # a session of its own: every process of the head (and only those) carries its id, `session`
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, stderr = proc.communicate()
    head["session"] = proc.pid
    if proc.returncode != 0:
        _stop_session(proc.pid)  # whatever of the head did start
        raise RuntimeError(f"could not start a local Ray head ({' '.join(cmd)}):\n{stderr[-3000:].rstrip()}")
    return head, env


def _lease(directory: Path) -> None:
    """Mark this process as a user of the head until it exits (the watchdog checks the pid)."""
    (directory / "leases").mkdir(parents=True, exist_ok=True)
    (directory / "leases" / str(os.getpid())).touch()


def session_processes(session: int) -> list:
    """The live processes of session `session` (a session id is never reused while a member lives)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == session and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return found


def stop_head(root: Path | None = None) -> bool:
    """Stop this repository's local head: the processes of its session, found by id, and nothing else."""
    path = _head_dir(root) / "head.json"
    if not path.is_file():
        return False
    stopped = _stop_session(json.loads(path.read_text())["session"])
    path.unlink(missing_ok=True)
    return stopped


def _stop_session(session: int) -> bool:
    """Stop every process of a head's session; whether there were any."""
    stopped = False
    for _ in range(3):  # a process the head starts while it is being stopped joins its session too
        procs = session_processes(session)
        if not procs:
            break
        lifetime.stop(procs)
        stopped = True
    return stopped


def watch(directory: Path, poll_s: float = 1.0) -> None:
    """The watchdog: stop the head `keep_alive_s` after the last leasing process has exited. It follows the
    head's processes and record, not its GCS port: a GCS slow to answer under load is no reason to leave.
    When the record is gone or names another head (the repository deleted or moved, a head started over
    it), whatever is left of this head's session is stopped: a head nobody can find again must not run on."""
    import psutil

    head = json.loads((directory / "head.json").read_text())
    last_used = time.monotonic()
    while session_processes(head["session"]):
        try:
            current = json.loads((directory / "head.json").read_text())
        except (OSError, ValueError):  # gone (the atomic write never leaves a partial one)
            current = None
        if current is None or current["session"] != head["session"]:
            _stop_session(head["session"])
            return
        leases = list((directory / "leases").glob("*"))
        live = [p for p in leases if psutil.pid_exists(int(p.name))]
        for p in set(leases) - set(live):
            p.unlink(missing_ok=True)
        if live:
            last_used = time.monotonic()
        elif time.monotonic() - last_used >= head["keep_alive_s"]:
            stop_head(directory.parent)
            return
        time.sleep(poll_s)


if __name__ == "__main__" and sys.argv[1:2] == ["watch"]:
    watch(Path(sys.argv[2]))
