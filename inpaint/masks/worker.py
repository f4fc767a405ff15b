"""What a generation process runs: candidates start .. start + n - 1 of one split, eligible ones returned.

Kept apart from `generate.py` so that spawned workers import only numpy, cv2 and the recipe (no pandas).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inpaint.bins import bin_of
from inpaint.masks.process import draw_candidate, render_mask

SPLIT_ID = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Job:
    """Everything needed to make one split's candidates (pickled once per worker process)."""

    source: object  # a stroke source with .sample_flat(rng, n) and .kind
    split: str
    seed: int
    image_size: int
    margin_bins: tuple[int, ...]
    steer: bool
    erosion: str
    resize: str


_JOBS: dict[str, Job] = {}


def init_worker(jobs: dict[str, Job]) -> None:
    _JOBS.clear()
    _JOBS.update(jobs)
    cv2.setNumThreads(1)  # one process per core; no nested threads


def run_task(task: tuple[str, int, np.ndarray]):
    split, start, targets = task
    return run_candidates(_JOBS[split], start, targets)


def run_candidates(job: Job, start: int, targets: np.ndarray):
    """Make candidates start .. start + len(targets) - 1 (candidate i for target bin targets[i - start]).

    A candidate is eligible if its ratio lies in a bin and that bin is a margin bin exactly when the candidate
    was made with the margin. Returns the eligible ones: (index int64[m], bin int8[m], ratio float64[m],
    packed rows uint8[m, ceil(size^2 / 8)]).
    """
    size = job.image_size
    area = float(size * size)
    margin = set(job.margin_bins)
    stream = SPLIT_ID[job.split]
    idx, bins, ratios, rows = [], [], [], []
    for j, t in enumerate(targets.tolist()):
        i = start + j
        rng = np.random.default_rng([job.seed, stream, i])
        c = draw_candidate(rng, job.source, target=t, margin_bins=margin, steer=job.steer, erosion=job.erosion)
        m = render_mask(c, size, job.resize)
        ratio = cv2.countNonZero(m) / area
        b = bin_of(ratio)
        if b is None or (b in margin) != c.margin:
            continue
        idx.append(i)
        bins.append(b)
        ratios.append(ratio)
        rows.append(np.packbits(m))
    row_len = (size * size + 7) // 8
    return (np.asarray(idx, np.int64), np.asarray(bins, np.int8), np.asarray(ratios, np.float64),
            np.stack(rows) if rows else np.zeros((0, row_len), np.uint8))
