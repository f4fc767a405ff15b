"""MLflow conventions: where the store is, how keys are named, what provenance every run carries."""
from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import time
from pathlib import Path

from inpaint.io import file_hash
from inpaint.paths import REPO_ROOT

TAG_KIND = "inpaint.kind"  # "train", "baseline", "report", "masks"
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


def significant(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits (what a chart or a table cell can show; 16 say nothing more);
    whole numbers such as counts stay exact."""
    return value if float(value).is_integer() else float(f"{value:.{digits}g}")


def log_metrics(client, run_id: str, values: dict[str, float], series: dict[str, list[float]] | None = None) -> None:
    """Log the finite `values` at step 0, and each of `series` as one metric whose step is the list index
    (MLflow draws it as one chart), to 4 significant digits (`significant`), in one request per thousand (MLflow's batch
    limit): one SQLite transaction each, where a request per metric took about 10 ms each."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    points = [(k, v, 0) for k, v in values.items()]
    points += [(k, v, step) for k, values_ in (series or {}).items() for step, v in enumerate(values_)]
    batch = [Metric(k, significant(float(v)), now, step) for k, v, step in points if math.isfinite(v)]
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i:i + 1000])


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_dirty() -> str:
    """"true" when tracked files differ from the commit (the code that ran is not the commit's), "unknown"
    outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return "unknown" if out.returncode else str(bool(out.stdout.strip())).lower()


def provenance() -> dict[str, str]:
    """What every MLflow run carries: the commit (and whether the working tree differed from it), library
    versions and the host."""
    import ray
    import torch

    return {"git_sha": git_sha(), "git_dirty": git_dirty(), "dvc_lock": file_hash(REPO_ROOT / "dvc.lock"),
            "torch": torch.__version__, "ray": ray.__version__, "python": platform.python_version(),
            "host": platform.node()}


def run_provenance(params, variant: str, fp: str) -> dict[str, str]:
    """A train run's provenance tags: the above plus its fingerprint, data and mask manifests, profile, the
    `weights` mode and which pretrained files it loads (docs/provenance.md)."""
    from inpaint.provenance import fingerprint

    used = fingerprint.pretrained_used(params, variant)
    return {**provenance(), "fingerprint": fp, "profile": params.profile, "weights": params.weights,
            **{f"{k}_manifest": v for k, v in fingerprint.data_hashes().items()},
            "pretrained": ", ".join(f"{k}={'present' if v else 'missing'}" for k, v in used.items()) or "none"}


def open_experiment(cfg) -> tuple:
    """(client, experiment id) for params' `tracking` section."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(cfg.uri))
    return client, get_or_create_experiment(client, cfg.experiment)


def finished_train_run(client, experiment_id: str, variant: str, fp: str):
    """The newest FINISHED train run of `variant` under fingerprint `fp`, or None."""
    found = client.search_runs([experiment_id], max_results=1, order_by=["start_time DESC"], filter_string=(
        f"tags.`{TAG_VARIANT}` = '{variant}' and tags.fingerprint = '{fp}' and attributes.status = 'FINISHED'"))
    return found[0] if found else None


def get_or_create_experiment(client, name: str) -> str:
    """A new experiment gets the headline view (`set_headline_view`). Artifacts of a local store go to <repo>/mlartifacts, an absolute location: Ray workers run in other
    directories. A tracking server keeps its own (`mlflow server --serve-artifacts`: uploads go through it)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        server = client.tracking_uri.startswith(("http://", "https://"))
        experiment_id = client.create_experiment(name, artifact_location=None if server else ARTIFACTS.as_uri())
        set_headline_view(client, experiment_id)
        return experiment_id
    follow_repository(client.tracking_uri, exp.artifact_location)
    return exp.experiment_id


ARTIFACTS = REPO_ROOT / "mlartifacts"


def follow_repository(uri: str, artifact_location: str) -> None:
    """A copied or moved repository: its own mlflow.db still names the old folder's artifact store (MLflow
    stores absolute locations), so new runs would log into the old folder. Re-point the store's locations at
    this repository's mlartifacts. Only for the repository's own SQLite store; a tracking server keeps its own.
    MLflow has no public call that changes an experiment's or a run's artifact location, so this updates the
    store's tables itself (tests/test_tracking.py checks a copied repository)."""
    import sqlite3
    from contextlib import closing

    here = ARTIFACTS.as_uri()
    if uri != f"sqlite:///{REPO_ROOT / 'mlflow.db'}" or not artifact_location.startswith("file:///") \
            or artifact_location == here or not artifact_location.endswith("/mlartifacts"):
        return
    with closing(sqlite3.connect(REPO_ROOT / "mlflow.db")) as db, db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                              ("logged_models", "artifact_location")):
            if table in tables:
                n = len(artifact_location)
                db.execute(f"update {table} set {column} = ? || substr({column}, ?) where substr({column}, 1, ?) = ? "
                           f"and (length({column}) = ? or substr({column}, ?, 1) = '/')",
                           (here, n + 1, n, artifact_location, n, n + 1))
    print(f"mlflow: this repository's store named artifacts in {artifact_location}; now {here}")



HEADLINE_VIEW = "headline"  # the saved view's id: ?viewStateShareKey=headline
HEADLINE_VIEW_NAME = "Headline: variants and classical fills by PSNR"
SAVED_VIEW_TAG = "mlflow.sharedViewState."  # MLflow 3's saved and shared runs-table views: one experiment tag each
HEADLINE_COLUMNS = ("psnr_mean", "ssim_mean", "l1_pct_mean", "lpips_mean")


def set_headline_view(client, experiment_id: str) -> None:
    """The runs table the experiment is read by, saved in the experiment: every scored run (the variants and
    the classical fills: those with a `psnr_mean`) with the headline means, best PSNR first. MLflow 3.17's UI
    lists an experiment tag `mlflow.sharedViewState.<id>` holding {name, createdAt, updatedAt, state} (state:
    the runs table's search and column settings as JSON) in its Views menu, and opens it from
    ?viewStateShareKey=<id>. The experiment kind tag is what older UIs read to open on the runs table; 3.17
    takes the kind from the `workflowType` of the address instead (`headline_url`)."""
    import json

    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
    columns = [*[f"metrics.`{m}`" for m in HEADLINE_COLUMNS], f"tags.`{TAG_FRAMEWORK}`", "attributes.`Duration`"]
    state = {"selectedColumns": columns, "searchFilter": "metrics.psnr_mean > 0",
             "orderByKey": "metrics.`psnr_mean`", "orderByAsc": False, "runsExpanded": {}, "runsPinned": [],
             "runsHidden": [], "viewMaximized": False, "runListHidden": False}
    key = f"{SAVED_VIEW_TAG}{HEADLINE_VIEW}"
    now = int(time.time() * 1000)
    try:
        created = json.loads(client.get_experiment(experiment_id).tags.get(key, "{}")).get("createdAt", now)
    except json.JSONDecodeError:
        created = now
    client.set_experiment_tag(experiment_id, key, json.dumps(
        {"name": HEADLINE_VIEW_NAME, "createdAt": created, "updatedAt": now, "state": json.dumps(state)}))


def headline_url(base: str, experiment_id: str) -> str:
    """The address of the headline view on a server at `base` (http://host:port): the runs table in MLflow's
    model-training workflow (3.17 opens any experiment on its GenAI overview unless the address says
    workflowType=machine_learning)."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={HEADLINE_VIEW}")
