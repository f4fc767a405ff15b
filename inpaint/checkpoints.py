"""Ray Train checkpoints of one training run, as found on disk.

Ray resumes a run from its own record of the checkpoints (a snapshot file it writes after each one), so a
driver killed between a checkpoint and that record loses the checkpoint, and a record naming a deleted
checkpoint stops the run. Here every start of a run (an attempt) is a new Ray run under the run's folder,
and the checkpoints to resume from are whatever complete checkpoints the folder holds, newest first:

    <storage_path>/<variant>/<variant>-<fingerprint>/attempt-<UTC time>/checkpoint_<local time>/state.pt

Each fingerprint (code, data, params) is a run folder of its own. The variant keeps the `ray.keep_runs`
most recently used ones (the driver touches its run's folder at each start), so switching between two
branches finds both results, while a long series of code edits does not fill the disk with old models.

A run trained in-process (`train.num_workers: 0`, Ray Train's local mode) has no Ray to store its
checkpoints: the loop writes them into the same layout, named as Ray names them, each complete before it
gets its name (`publish`).

Loading is the completeness test (a truncated state.pt does not load), so the newest is tried first and an
older one is the fallback. Before an attempt the run keeps its two newest checkpoints (the newest may be
the truncated one); once the run has finished none is kept: its result (model.pt and finished.json in the
run's folder, inpaint/training/train.py) is all a re-run needs.

This module also owns both file formats: a checkpoint's state.pt (networks, optimisers, schedulers, step, RNG,
and a meta that names the variant and fingerprint) and a finished run's model.pt (the generator, the Det
detector, and the meta that rebuilds them). The trainer writes them; evaluation, `inpaint fill` and Tune's
scoring read them through here, without importing the trainer.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from inpaint.io import atomic_path

PREFIX = "checkpoint_"
ATTEMPT = "attempt-"
KEEP = 2  # the newest may be the one a crash truncated: keep the one before it
RUN_NAME = re.compile(r".+-[0-9a-f]{12}")  # <variant>-<fingerprint> (inpaint/provenance/fingerprint.py)
STATE_FILE = "state.pt"  # a checkpoint's one file
STAGING = "inpaint-checkpoint-"  # + the writer's pid: a Ray worker's checkpoint before Ray copies it to storage
MODEL_POINTER = "checkpoint/model.json"  # where a local MLflow store keeps the path of a run's model.pt


def new_attempt() -> str:
    return ATTEMPT + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**9:09d}"


def publish(attempt: Path, write: Callable[[Path], None]) -> Path:
    """A new checkpoint of `attempt`: `write` fills a hidden folder, which then takes a checkpoint's name
    (a kill leaves a hidden folder, never a partial checkpoint), and the run keeps its KEEP newest, as
    Ray's `num_to_keep` would. Only the holder of the variant's training lock may call this."""
    attempt.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=attempt))
    write(partial)
    checkpoint = attempt / (PREFIX + datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f"))  # Ray's own naming
    partial.rename(checkpoint)
    prune(attempt.parent)
    return checkpoint


def staging() -> tempfile.TemporaryDirectory:
    """A folder in the node's temp folder for a Ray worker to write a checkpoint into before Ray copies it to
    storage. A worker killed while writing leaves its folder (up to the size of a checkpoint, 1.4 GB for LGNet
    with Adam), so each new one first removes those of writers no longer alive on this node."""
    import psutil

    for left in Path(tempfile.gettempdir()).glob(f"{STAGING}*"):
        writer = left.name[len(STAGING):].split("-", 1)[0]
        if writer.isdigit() and not psutil.pid_exists(int(writer)):
            shutil.rmtree(left, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{STAGING}{os.getpid()}-")


def on_disk(run: Path) -> list[Path]:
    """Every checkpoint folder of every attempt of `run`, newest first (Ray names them by their time)."""
    found = [p for p in Path(run).glob(f"{ATTEMPT}*/{PREFIX}*") if p.is_dir()]
    return sorted(found, key=lambda p: (p.name, p.parent.name), reverse=True)


def prune(run: Path, keep: list[Path] | None = None, newest: int = KEEP) -> list[Path]:
    """Delete every checkpoint of `run` except `keep` (default: the `newest` ones) and the attempt folders
    left without a checkpoint. Only the holder of the variant's training lock may call this."""
    found = on_disk(run)
    keep = set(found[:newest] if keep is None else (Path(k) for k in keep))
    removed = [p for p in found if p not in keep]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    for attempt in Path(run).glob(f"{ATTEMPT}*"):
        if attempt.is_dir() and not any(attempt.glob(f"{PREFIX}*")):
            shutil.rmtree(attempt, ignore_errors=True)
    return removed


def prune_runs(variant_dir: Path, current: Path, keep: int) -> list[Path]:
    """Delete the run folders of a variant beyond the `keep` most recently used (a folder's mtime), never
    `current`, and return them. Only the holder of the variant's training lock may call this."""
    runs = [p for p in Path(variant_dir).iterdir() if p.is_dir() and RUN_NAME.fullmatch(p.name)]
    runs.sort(key=lambda p: (p == Path(current), p.stat().st_mtime), reverse=True)
    removed = runs[max(keep, 1):]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def save_state(directory: Path, framework, step: int, meta: dict) -> None:
    """Networks, optimisers, schedulers, step and torch's RNG (the data order depends only on seed and step)."""
    import torch

    state = {"meta": meta, "step": step, "framework": framework.state_dict(), "rng": torch.get_rng_state()}
    with atomic_path(Path(directory) / STATE_FILE) as tmp:
        torch.save(state, tmp)


def load_state(path: Path, expect: dict | None = None) -> dict:
    """Read a checkpoint or model file; refuse one that is corrupt or belongs to another variant/config.
    Memory-mapped: a tensor is read when used, so checking a finished run's meta or taking the generator out
    of a 1.4 GB LGNet checkpoint does not read the rest (the mapping is private: nothing written goes to the
    file)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "meta" not in state:
        raise ValueError(f"{path}: not an inpaint checkpoint (no 'meta' entry)")
    for key, want in (expect or {}).items():
        got = state["meta"].get(key)
        if got != want:
            raise ValueError(f"{path}: checkpoint is for {key}={got!r}, expected {want!r}")
    return state


def model_content(state: dict, cfg, image_size: int, run_id: str) -> dict:
    """A model.pt's content from a checkpoint's state: what evaluation and `inpaint fill` need of a finished
    run, the generator (and, for Det, the detector, whose heat maps the report draws), with enough metadata
    to rebuild them."""
    from inpaint.provenance import fingerprint

    networks = state["framework"]["networks"]
    meta = {**state["meta"], "generator": cfg.generator, "image_size": image_size, "steps": state["step"],
            "run_id": run_id, **fingerprint.data_hashes()}
    model = {"meta": meta, "generator": networks["generator"]}
    if "detector" in networks:
        meta["detector"] = cfg.detector
        model["detector"] = networks["detector"]
    return model


def checkpoint_model(checkpoint, variant: str, cfg, image_size: int, run_id: str, fp: str | None = None) -> dict:
    """model_content from a Ray checkpoint of `variant` (and of fingerprint `fp`, when given)."""
    with checkpoint.as_directory() as d:
        state = load_state(Path(d) / STATE_FILE, expect={"variant": variant, **({"fingerprint": fp} if fp else {})})
    return model_content(state, cfg, image_size, run_id)


def write_model(model: dict, path: Path) -> None:
    """Write a model.pt atomically (a kill leaves the previous file or none, never half of one)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model, tmp)
