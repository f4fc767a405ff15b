"""The run fingerprint: one hash over everything a trained model depends on.

- code: the content of every `inpaint` file the train stage runs (inpaint/provenance/codegraph.py, lazy imports
  included);
- data: the prepared dataset's manifest (it holds every image's content hash) and the training mask set's
  manifest (every mask's hash);
- params: the variant, the train, data and masks sections, the `weights` mode and which pretrained files the
  run would use (a run must not switch a loss term on half-way through).

A train run is named by it: a run with the same fingerprint that was interrupted resumes from its checkpoint;
any change (a line of a loss, a mask setting, a param) starts a new run from step 0 (docs/provenance.md).
"""
from __future__ import annotations

import hashlib
import json

from inpaint import paths, weights
from inpaint.config import Params
from inpaint.io import file_hash
from inpaint.provenance import codegraph

# train settings that change how a run is watched or fed, not what it computes: a resumed run may change them
NOT_IN_FINGERPRINT = {"log_every", "image_every", "max_failures", "loader_workers", "pin_memory", "resume",
                      "placement_strategy", "gpus_per_worker"}


def code_hashes(stage: str = "train") -> dict[str, str]:
    """{file relative to the repository: short sha1} for the files `stage` runs."""
    return {p.relative_to(codegraph.PACKAGE_DIR.parent).as_posix(): file_hash(p) for p in codegraph.stage_files(stage)}


def data_hashes() -> dict[str, str]:
    """The manifests of the prepared data (every image's content hash) and of the training masks (every
    mask's hash)."""
    return {"data": file_hash(paths.PREPARED / "manifest.csv"), "masks": file_hash(paths.MASKS / "train" / "manifest.csv")}


def pretrained_used(params: Params, variant: str) -> dict[str, bool]:
    """{pretrained file: present} for the files the variant's training would load."""
    return {k: weights.FILES[k].path.is_file() for k in weights.needed_for_training(params.variants[variant])}


def train_params(params: Params, variant: str) -> dict:
    """The params part of the fingerprint (plain data)."""
    return {"variant": variant, "cfg": params.variants[variant].model_dump(mode="json"),
            "weights": params.weights, "weight_files": pretrained_used(params, variant),
            "train": params.train_for(variant).model_dump(mode="json", exclude=NOT_IN_FINGERPRINT),
            "data": params.data.model_dump(mode="json"), "masks": params.masks.model_dump(mode="json")}


def fingerprint(params: Params, variant: str) -> str:
    """12 hex digits over code, data and params (see the module docstring)."""
    blob = json.dumps({"code": code_hashes("train"), "inputs": data_hashes(), "params": train_params(params, variant)},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
