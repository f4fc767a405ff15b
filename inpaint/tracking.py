"""MLflow conventions: where the store is, how keys are named, what provenance every run carries."""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path

from inpaint.paths import REPO_ROOT

TAG_KIND = "inpaint.kind"  # "train" or "report"
TAG_VARIANT = "inpaint.variant"
TAG_FRAMEWORK = "inpaint.framework"


def tracking_uri(configured: str | None = None) -> str:
    """params `tracking.uri`, else MLFLOW_TRACKING_URI, else a SQLite file at the repository root."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def metric_key(*parts: str) -> str:
    """A key MLflow accepts: parts joined by '/', with anything outside [A-Za-z0-9_./ -] replaced."""
    key = "/".join(parts)
    return re.sub(r"[^A-Za-z0-9_./ -]", "_", key.replace("%", "pct"))


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = str(v)
    return out


def log_params(client, run_id: str, values: dict, prefix: str = "") -> None:
    """Log a nested dict as flat params, a hundred per request (MLflow's batch limit; one SQLite transaction
    each instead of one per param), values cut to MLflow's 6,000 characters."""
    from mlflow.entities import Param

    flat = [Param(k, v[:6000]) for k, v in flatten(values, prefix).items()]
    for i in range(0, len(flat), 100):
        client.log_batch(run_id, params=flat[i:i + 100])


def file_hash(path: Path) -> str:
    if not path.is_file():
        return "absent"
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict[str, str]:
    import ray
    import torch

    return {"git_sha": git_sha(), "dvc_lock": file_hash(REPO_ROOT / "dvc.lock"),
            "torch": torch.__version__, "ray": ray.__version__, "python": platform.python_version(),
            "host": platform.node()}


def open_experiment(cfg) -> tuple:
    """(client, experiment id) for params' `tracking` section."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(cfg.uri))
    return client, get_or_create_experiment(client, cfg.experiment)


def get_or_create_experiment(client, name: str) -> str:
    """Artifacts of a local store go to <repo>/mlartifacts, an absolute location: Ray workers run in other
    directories. A tracking server keeps its own (`mlflow server --serve-artifacts`: uploads go through it)."""
    exp = client.get_experiment_by_name(name)
    if exp:
        return exp.experiment_id
    server = client.tracking_uri.startswith(("http://", "https://"))
    return client.create_experiment(name, artifact_location=None if server else (REPO_ROOT / "mlartifacts").as_uri())
