"""The six hole-ratio bins of the papers: (0.01, 0.1], (0.1, 0.2], ..., (0.5, 0.6].

One definition for masks, evaluation and tables. `key` is safe for MLflow metric names
(`test/psnr/bin_0p1_0p2`); `label` is what tables print.
"""
from __future__ import annotations

import math

EDGES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
BINS: tuple[tuple[float, float], ...] = tuple(zip(EDGES[:-1], EDGES[1:]))


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def key(b: int) -> str:
    lo, hi = BINS[b]
    return f"bin_{_fmt(lo)}_{_fmt(hi)}"


def label(b: int) -> str:
    lo, hi = BINS[b]
    return f"({lo:g}, {hi:g}]"


def percent_label(b: int) -> str:
    """The LGNet tables' style: '1-10%'."""
    lo, hi = BINS[b]
    return f"{round(lo * 100)}-{round(hi * 100)}%"


def bin_of(ratio: float) -> int | None:
    """Index of the bin holding `ratio` (left-open, right-closed), or None outside (0.01, 0.6]."""
    if not math.isfinite(ratio):
        return None
    for b, (lo, hi) in enumerate(BINS):
        if lo < ratio <= hi:
            return b
    return None
