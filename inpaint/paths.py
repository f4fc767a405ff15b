"""Where things live. Paths are resolved from the repository root, never from the working directory
(Ray changes the working directory of its workers)."""
from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("INPAINT_ROOT")
    if env:
        return Path(env).resolve()
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "params.yaml").is_file() and (parent / "dvc.yaml").is_file():
            return parent
    return Path(__file__).resolve().parent.parent


REPO_ROOT = _find_root()
DATA = REPO_ROOT / "data"
PREPARED = DATA / "prepared"
MASKS = DATA / "masks"
TEST_PAIRS = DATA / "test_pairs.csv"
RUNS = REPO_ROOT / "runs"
EVALS = REPO_ROOT / "evals"
METRICS = REPO_ROOT / "metrics"  # headline numbers per variant, the DVC metrics files
REPORTS = REPO_ROOT / "reports"


def absolute(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()
