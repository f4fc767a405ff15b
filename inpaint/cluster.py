"""Connecting to Ray: an existing cluster when an address is given (params `ray.address` or RAY_ADDRESS),
otherwise a local Ray that listens on 127.0.0.1 only.

Ray resolves even an explicit 127.0.0.1 to the machine's network address unless it believes clusters are
off (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, its switch for single-machine use); the local default sets that
switch for this process and the Ray processes it starts. tests/test_cluster.py checks the address.
"""
from __future__ import annotations

import os

from inpaint.paths import REPO_ROOT

LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def connect(address: str | None = None):
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        os.environ[LOOPBACK_SWITCH] = "0"
    import ray
    import ray._private.ray_constants as ray_constants

    if ray.is_initialized():
        return ray.get_runtime_context()
    env = {"env_vars": {"INPAINT_ROOT": str(REPO_ROOT)}}
    if address:
        return ray.init(address=address, runtime_env=env)
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time; the env var covers the child processes
    return ray.init(include_dashboard=True, dashboard_host="127.0.0.1", runtime_env=env, configure_logging=False)


def node_addresses() -> list[str]:
    import ray

    return [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
