"""Connecting to Ray: an existing cluster when an address is given (params `ray.address` or RAY_ADDRESS),
otherwise a local Ray that listens on 127.0.0.1 only."""
from __future__ import annotations

import os

from inpaint.paths import REPO_ROOT


def connect(address: str | None = None):
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    address = address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"INPAINT_ROOT": str(REPO_ROOT)}}
    if address:
        return ray.init(address=address, runtime_env=env, log_to_driver=True)
    return ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, runtime_env=env,
                    configure_logging=False)
