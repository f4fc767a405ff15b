"""Stroke sources for the raw QD-IMD-style canvases (docs/protocol.md section 2, docs/authors_code.md section 4).

A stroke is a float32 array of shape (n, 2) holding (x, y) points in Quick Draw's 256-unit box. Two sources,
both split into disjoint train and test "categories":

* `QuickDrawStrokes`: Google Quick Draw "simplified" ndjson files, one file per category. As in QD-IMD's
  `generate_dataset.py`, the sorted file list is shuffled with a fixed seed (`category_seed`) and split half
  and half (first half train, second half test); from each file the first `drawings_per_category` drawings
  are read and one stroke is taken from each. QD-IMD never published which stroke; here it is a seeded
  random one, drawn from `(category_seed, file position)`.
* `ProceduralStrokes` (the offline default): smooth random curves built from a heading that drifts with a
  constant curvature, smoothed noise and occasional corners, spanning tens to a few hundred units like a
  Quick Draw stroke. The analogue of a category is a *style family* (typical length, curvature, waviness,
  corner rate); train and test draw their families from different sub-streams of `category_seed`, so test
  strokes come from families never seen in training.

Both expose `sample_flat(rng, n) -> (points, counts)`, the only call the renderer makes, so either source goes
through exactly the same rendering path.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BOX = 255.0  # Quick Draw simplified drawings are scaled so that coordinates lie in [0, 255]
SPLITS = ("train", "test")


class StrokeSourceError(ValueError):
    """Bad stroke input; the message names the file (and line) and what was expected."""


def _split_id(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


# --------------------------------------------------------------------------------------------------------
# Quick Draw ndjson
# --------------------------------------------------------------------------------------------------------

def parse_ndjson_drawing(line: str, where: str) -> list[np.ndarray]:
    """The strokes of one simplified-format line: {"drawing": [[[x0, x1, ...], [y0, y1, ...]], ...], ...}.

    `where` ("file:line") prefixes every error message.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise StrokeSourceError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict) or "drawing" not in obj:
        raise StrokeSourceError(f"{where}: expected a JSON object with a 'drawing' key")
    drawing = obj["drawing"]
    if not isinstance(drawing, list) or not drawing:
        raise StrokeSourceError(f"{where}: 'drawing' must be a non-empty list of strokes [[xs], [ys]]")
    strokes = []
    for s, stroke in enumerate(drawing):
        if not (isinstance(stroke, list) and len(stroke) >= 2 and isinstance(stroke[0], list)
                and isinstance(stroke[1], list)):
            raise StrokeSourceError(f"{where}: stroke {s} must be [[x0, x1, ...], [y0, y1, ...]]")
        xs, ys = stroke[0], stroke[1]
        if len(xs) != len(ys) or not xs:
            raise StrokeSourceError(
                f"{where}: stroke {s} has {len(xs)} x and {len(ys)} y coordinates (expected equal, at least 1)")
        try:
            pts = np.asarray([xs, ys], dtype=np.float32).T
        except (TypeError, ValueError):
            raise StrokeSourceError(f"{where}: stroke {s} holds non-numeric coordinates") from None
        if not np.isfinite(pts).all() or pts.min() < 0 or pts.max() > 256:
            raise StrokeSourceError(
                f"{where}: stroke {s} has coordinates outside the simplified format's 0..255 box")
        strokes.append(pts)
    return strokes


def quickdraw_categories(directory: Path, category_seed: int) -> dict[str, list[Path]]:
    """{'train': files, 'test': files}: the sorted *.ndjson files, shuffled with `category_seed`, halved."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StrokeSourceError(f"masks.quickdraw_dir: {directory} is not a directory (expected a folder of "
                                f"Quick Draw simplified .ndjson files, one per category)")
    files = sorted(directory.glob("*.ndjson"))
    if len(files) < 2:
        raise StrokeSourceError(f"masks.quickdraw_dir: {directory} holds {len(files)} .ndjson file(s); at least "
                                f"2 categories are needed to split them into train and test categories")
    order = np.random.default_rng(category_seed).permutation(len(files))
    half = len(files) // 2
    return {"train": [files[i] for i in order[:half]], "test": [files[i] for i in order[half:]]}


class StrokePool:
    """Strokes stored flat: points (P, 2) float32 and offsets (S + 1,); cheap to pickle to workers."""

    def __init__(self, strokes: list[np.ndarray], origin: str):
        if not strokes:
            raise StrokeSourceError(f"{origin}: no strokes found")
        # a one-point stroke (a dot) is drawn as a zero-length segment: cv2 draws nothing for a single point
        strokes = [s if len(s) > 1 else np.repeat(s, 2, axis=0) for s in strokes]
        lengths = np.array([len(s) for s in strokes], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.points = np.concatenate(strokes).astype(np.float32)
        self.origin = origin

    @classmethod
    def from_flat(cls, points: np.ndarray, counts: np.ndarray, origin: str) -> "StrokePool":
        pool = cls.__new__(cls)
        pool.points = np.ascontiguousarray(points, dtype=np.float32)
        pool.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        pool.origin = origin
        return pool

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def stroke(self, j: int) -> np.ndarray:
        return self.points[self.offsets[j]:self.offsets[j + 1]]

    def sample_flat(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n strokes drawn uniformly with replacement: (points (P, 2), points per stroke (n,))."""
        idx = rng.integers(len(self), size=n)
        a, b = self.offsets[idx], self.offsets[idx + 1]
        points = self.points
        return np.concatenate([points[i:j] for i, j in zip(a.tolist(), b.tolist())]), b - a


class QuickDrawStrokes:
    """One split's stroke pool from Quick Draw category files."""

    kind = "quickdraw"

    def __init__(self, directory: Path, split: str, category_seed: int = 0, drawings_per_category: int = 1000):
        sid = _split_id(split)
        halves = quickdraw_categories(directory, category_seed)
        cats = halves[split]
        all_sorted = sorted(halves["train"] + halves["test"])
        strokes: list[np.ndarray] = []
        for path in cats:
            drawings = []
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if len(drawings) >= drawings_per_category:
                        break
                    if not line.strip():
                        continue
                    drawings.append(parse_ndjson_drawing(line, f"{path}:{lineno}"))
            if not drawings:
                raise StrokeSourceError(f"{path}: no drawings (expected one JSON object per line)")
            # one stroke per drawing, chosen from (category_seed, position of the file in the sorted list)
            pick = np.random.default_rng([category_seed, sid, all_sorted.index(path)])
            for d in drawings:
                strokes.append(d[int(pick.integers(len(d)))])
        self.pool = StrokePool(strokes, f"{directory} ({split} categories)")
        self.categories = [p.stem for p in cats]

    def sample_flat(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pool.sample_flat(rng, n)


# --------------------------------------------------------------------------------------------------------
# Procedural strokes
# --------------------------------------------------------------------------------------------------------

STEP = 6.0  # units of the 256 box between consecutive points before simplification
KEEP = 2  # keep every KEEP-th point (and the last): Quick Draw's simplified strokes have sparse points


class ProceduralStrokes:
    """Smooth human-like random curves in a pool shaped like Quick Draw's: `families` style families (the
    analogue of categories) x `per_family` strokes; the split chooses a disjoint set of families.

    A family fixes a median length (units of the 256 box), a curvature scale, a waviness and a corner rate.
    A stroke's heading drifts by a constant curvature plus smoothed noise plus occasional corners; a stroke
    larger than the box is scaled down to fit (as Quick Draw scales whole drawings) and placed at random.
    """

    kind = "procedural"

    def __init__(self, split: str, category_seed: int = 0, families: int = 64, per_family: int = 1000):
        sid = _split_id(split)
        fam = np.random.default_rng([category_seed, 0x5EED, sid])
        length_median = np.exp(fam.normal(np.log(110.0), 0.45, families))
        curvature = np.abs(fam.normal(0.0, 0.015, families))
        waviness = fam.uniform(0.03, 0.30, families)
        corner_rate = fam.uniform(0.0, 0.12, families) * (fam.random(families) < 0.6)
        rng = np.random.default_rng([category_seed, 0x5EED, sid, 1])
        f = np.repeat(np.arange(families), per_family)
        points, counts = _strokes(rng, length_median[f], curvature[f], waviness[f], corner_rate[f])
        self.pool = StrokePool.from_flat(points, counts,
                                         f"procedural ({split} families, category_seed {category_seed})")
        self.families = families

    def sample_flat(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pool.sample_flat(rng, n)


def _segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """cumsum restarting at every index in `starts` (ragged rows stored flat)."""
    cs = np.cumsum(values)
    before = np.concatenate([[0.0], cs])[starts]
    counts = np.diff(np.concatenate([starts, [len(values)]]))
    return cs - np.repeat(before, counts)


def _strokes(rng: np.random.Generator, length_median, curvature, waviness, corner_rate):
    """One stroke per entry of the family-parameter arrays, flat: points (P, 2) and points per stroke."""
    n = len(length_median)
    length = np.clip(length_median * np.exp(rng.normal(0.0, 0.5, n)), 12.0, 700.0)
    steps = np.maximum(2, np.ceil(length / STEP).astype(np.int64))
    kappa = rng.normal(curvature, curvature * 0.5 + 1e-3) * rng.choice((-1.0, 1.0), n)
    total = int(steps.sum())
    sid = np.repeat(np.arange(n), steps)  # stroke of each step
    noise = rng.normal(0.0, 1.0, total + 2)
    noise = (0.25 * noise[:-2] + 0.5 * noise[1:-1] + 0.25 * noise[2:]) * waviness[sid]  # smooth wobble
    corners = (rng.random(total) < corner_rate[sid]) * rng.uniform(0.6, 2.6, total) * \
        rng.choice((-1.0, 1.0), total)
    starts = np.concatenate([[0], np.cumsum(steps)[:-1]])
    heading = rng.uniform(-np.pi, np.pi, n)[sid] + _segment_cumsum(kappa[sid] * STEP + noise + corners, starts)
    x = _segment_cumsum(np.cos(heading) * STEP, starts)
    y = _segment_cumsum(np.sin(heading) * STEP, starts)
    # points: the origin then one point per step; keep every KEEP-th point and the last one
    j = np.arange(total) - np.repeat(starts, steps) + 1  # index of the step's end point within its stroke
    keep_step = (j % KEEP == 0) | (j == steps[sid])
    kept = keep_step.reshape(-1).copy()
    counts = 1 + np.bincount(sid[kept], minlength=n)
    xy = np.zeros((int(counts.sum()), 2))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rest = np.ones(len(xy), bool)
    rest[first] = False
    xy[rest, 0] = x[kept]
    xy[rest, 1] = y[kept]
    lo = np.stack([np.minimum.reduceat(xy[:, 0], first), np.minimum.reduceat(xy[:, 1], first)], 1)
    hi = np.stack([np.maximum.reduceat(xy[:, 0], first), np.maximum.reduceat(xy[:, 1], first)], 1)
    # a drawing is scaled to fit the box, so a single stroke never exceeds it; then placed at random
    shrink = np.minimum(1.0, BOX / np.maximum((hi - lo).max(1), 1e-9))[:, None]
    place = rng.uniform(0.0, 1.0, (n, 2)) * (BOX - (hi - lo) * shrink)
    pid = np.repeat(np.arange(n), counts)
    xy = (xy - lo[pid]) * shrink[pid] + place[pid]
    return np.clip(xy, 0.0, BOX).astype(np.float32), counts


def make_source(kind: str, split: str, *, quickdraw_dir: Path | None = None, category_seed: int = 0,
                drawings_per_category: int = 1000):
    if kind == "procedural":
        return ProceduralStrokes(split, category_seed)
    if kind == "quickdraw":
        if quickdraw_dir is None:
            raise StrokeSourceError("masks.quickdraw_dir: stroke_source 'quickdraw' needs a folder of Quick Draw "
                                    "simplified .ndjson files (one per category)")
        return QuickDrawStrokes(quickdraw_dir, split, category_seed, drawings_per_category)
    raise ValueError(f"masks.stroke_source: unknown source {kind!r}; allowed: procedural, quickdraw")
