"""Paired comparisons of rows scored on the same test pairs (docs/tables.md, "Paired comparisons").

Every variant and every classical fill is scored on the same recorded test pairs (data/test_pairs.csv), so two
rows are compared pair by pair: the difference of their means over the hole-ratio bins, with a paired bootstrap
interval. The bootstrap resamples the pairs within each bin (each bin keeps its size, so the statistic stays the
mean of the six bin means) and uses the same resamples for every row and every difference, drawn from
evaluate.seed: two runs of the report give the same intervals, and a row's interval and its differences come
from the same draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PAIR_COLUMNS = ("bin", "image", "mask")  # what identifies a test pair
METRICS = ("psnr", "ssim", "l1", "lpips")  # scored per pair; FID and KID are set metrics, without pairs
HIGHER_IS_BETTER = {"psnr", "ssim"}
LEVEL = 0.95


def pairs_path(evaluation: Path) -> Path:
    """evals/<name>.json -> evals/<name>_pairs.csv, the per-pair scores the evaluation wrote beside it."""
    return evaluation.with_name(f"{evaluation.stem}_pairs.csv")


def read_pair_scores(path: Path) -> pd.DataFrame | None:
    """The per-pair scores of one row (bin, image, mask and one column per metric), or None when absent."""
    if not path.is_file():
        return None
    scores = pd.read_csv(path)
    missing = set(PAIR_COLUMNS) - set(scores.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing (expected {', '.join(PAIR_COLUMNS)} and the "
                         "metrics); re-run the stage that writes it")
    return scores


@dataclass(frozen=True)
class Estimate:
    """A mean (or a difference of means) over the bins and its bootstrap interval."""
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (for a difference: the two rows differ at the 95 % level)."""
        return self.low > 0 or self.high < 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def better(metric: str, delta: Estimate) -> bool | None:
    """True: significantly better (a difference row - other), False: significantly worse, None: not told apart."""
    if not delta.significant:
        return None
    return (delta.value > 0) == (metric in HIGHER_IS_BETTER)


class PairedScores:
    """The per-pair scores of several rows, aligned on the same pairs, and their stratified bootstrap."""

    def __init__(self, scores: dict[str, pd.DataFrame], samples: int, seed: int):
        """`scores`: row key -> per-pair scores. Every row must hold the same pairs in the same order (the
        evaluator writes them in the recorded order); a row that does not is refused, by name."""
        if not scores:
            raise ValueError("no per-pair scores to compare")
        first_key, first = next(iter(scores.items()))
        keys = first[list(PAIR_COLUMNS)].to_numpy()
        for key, frame in scores.items():
            if len(frame) != len(keys) or not np.array_equal(frame[list(PAIR_COLUMNS)].to_numpy(), keys):
                raise ValueError(f"per-pair scores of {key} are not on the same test pairs as {first_key} "
                                 f"({len(frame)} vs {len(keys)} pairs); re-run its evaluation on data/test_pairs.csv")
        self.scores = scores
        bins = first["bin"].to_numpy()
        labels, counts = np.unique(bins, return_counts=True)
        rng = np.random.default_rng([seed, len(keys)])
        # one block of columns per bin: every resample keeps each bin's size, so one weight per column gives the
        # mean of the bin means
        self.index = np.concatenate([rng.choice(np.flatnonzero(bins == b), (samples, n))
                                     for b, n in zip(labels, counts)], axis=1)
        self.weights = np.concatenate([np.full(n, 1 / (n * len(labels))) for n in counts])
        self.point_weights = 1 / (pd.Series(bins).map(dict(zip(labels, counts))).to_numpy() * len(labels))

    def has(self, key: str, metric: str) -> bool:
        return key in self.scores and metric in self.scores[key] and self.scores[key][metric].notna().all()

    def _values(self, key: str, metric: str) -> np.ndarray:
        return self.scores[key][metric].to_numpy(dtype=np.float64)

    def _estimate(self, values: np.ndarray) -> Estimate:
        resampled = values[self.index] @ self.weights
        low, high = np.percentile(resampled, [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100])
        return Estimate(float(values @ self.point_weights), float(low), float(high))

    def mean(self, key: str, metric: str) -> Estimate:
        """The row's mean over the bins with its bootstrap interval."""
        return self._estimate(self._values(key, metric))

    def delta(self, key: str, other: str, metric: str) -> Estimate:
        """row - other, pair by pair, with the paired bootstrap interval (the same resamples for both)."""
        return self._estimate(self._values(key, metric) - self._values(other, metric))

    def best(self, keys: list[str], metric: str) -> str | None:
        """The key with the best mean among `keys` (those with scores of `metric`)."""
        have = [k for k in keys if self.has(k, metric)]
        if not have:
            return None
        means = {k: self.mean(k, metric).value for k in have}
        pick = max if metric in HIGHER_IS_BETTER else min
        return pick(means, key=means.get)


def format_delta(delta: Estimate, decimals: int) -> str:
    """'-5.69 ±0.80*': the difference, the half-width of its 95 % interval, '*' when the interval excludes 0."""
    if not (math.isfinite(delta.value) and math.isfinite(delta.low)):
        return "-"
    return f"{delta.value:+.{decimals}f} ±{delta.half_width:.{decimals}f}" + ("*" if delta.significant else "")
