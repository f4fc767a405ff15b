"""One mask from one seeded generator: QD-IMD's raw canvas recipe followed by GDN's `mask_processing.py`.

The recipe (docs/protocol.md section 2; docs/authors_code.md sections 1.8 and 4), with the draws in this order:

1. strokes: n = round(N(4, 2)), at least 1, taken from the stroke source (256-unit box, scaled x2 to 512).
   With bin steering (settings.steer, the default) a candidate made for target bin t uses N(STEER_MEAN[t], 2)
   instead, so the sparse high-ratio bins fill in bounded time (see "Deviations" below);
2. widths U(5, 15) px on the 512 canvas, drawn with round joints and caps (cv2 only draws odd widths, so a
   width is drawn as the nearest odd one: `thickness_for`);
3. the canvas upscaled by U(1.0, 1.5) about its centre and centre-cropped back to 512 (the raw canvas);
4. rotation: an integer angle uniform in [-180, 180] degrees about (256, 256), scale 1.5;
5. erosion of the valid region by a k x k square (= dilation of the strokes). `erosion="code"`: k uniform
   in 14..27, which is what the authors' code does for every raw mask (docs/authors_code.md 1.8: its `hr` is a
   fraction compared with 14 and 28). `erosion="ratio"`: the range the code evidently meant, with p the raw
   canvas' hole percentage: low = int(15 - p) if p < 14 else 1, high = int(28 - p) if p < 28 else 1
   (p >= 28: no erosion). The uniform draw for k is taken before p is known, so both modes draw alike;
6. a 256 x 256 crop, top-left (x, y) uniform integers in [0, 256];
7. binarise (1 = hole) and, when the candidate is made for a margin bin, clear a 23 px border;
8. hole ratio = sum / area, exactly, at the final size.

Two implementations of steps 2-7 are kept:

* `render_literal`: the steps as written (raw 512 canvas, resize, warpAffine, erode, crop). The reference.
* `render_mask`: the same geometry composed into one affine map applied to the stroke *points*; the strokes
  are drawn straight into a window of (256 + k + 2)^2 px around the crop and dilated there. Nothing outside
  the crop is rasterised and nothing is resampled twice: about 10x less work per mask than the literal path
  at 256. Differences are sub-pixel (the literal path thresholds two bilinear resamples);
  `tests/test_masks.py` checks that the two agree (IoU > 0.9) on the same draws. Where the crop touches the
  canvas edge the literal path erodes against cv2's neutral border while this one sees the strokes beyond
  it; the literal path is the one with the artefact there.

Working sizes below 256: `resize="nearest"` (default) runs the 256 recipe and resizes with nearest
neighbour, as Liu et al.'s test masks are; `resize="scale"` draws at the final size with every length
(canvas, widths, dilation, margin) multiplied by size / 256 and rounded (above 256 this is always done). Measured on 3,000 candidates
against their own 256 px masks: "nearest" keeps each mask's ratio within 0.005 (32 px) / 0.0025 (64 px) on
average, "scale" within 0.020 / 0.010 (rounding widths of 1-4 px), for a render about 1.5-1.8x faster; the
per-candidate Python work dominates below 256, so the faithful option costs little. Either way the margin is
applied at the final size, round(23 * size / 256) px on all four sides, and the ratio is recomputed there.

Deviations. Steering shifts the stroke count of candidates made for high bins up (mean 13 for (0.5, 0.6]
instead of 4): with the plain recipe only 1.6 % of candidates land in (0.5, 0.6] (measured, procedural
strokes, 256 px), which would make the paper's 30,000 masks there take ~1.9M candidates. A bin's masks are
therefore made of more strokes than the plain recipe's masks of the same ratio; steer=False
keeps the recipe's own conditional distribution at that cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

RAW = 512  # QD-IMD canvas
CROP = 256  # GDN crop, the papers' working size
ROT_SCALE = 1.5
WIDTH = (5.0, 15.0)
UPSCALE = (1.0, 1.5)
KERNEL_CODE = (14, 27)  # inclusive
MARGIN = 23
STROKES_MEAN, STROKES_STD = 4.0, 2.0

# Bin steering: the mean of the stroke-count normal for a candidate made for each target bin (the standard
# deviation stays 2). Calibrated on the procedural source at 256 with erosion="code" (see
# bench/masks.py --calibrate); with steer=False every target uses QD-IMD's N(4, 2).
STEER_MEAN = (3.0, 6.0, 7.0, 9.0, 11.0, 13.0)


def margin_px(size: int) -> int:
    return int(round(MARGIN * size / CROP))


@dataclass
class Candidate:
    """Every random draw of one candidate mask."""

    points: np.ndarray  # (P, 2) float32, the strokes' points in the 256 box, stroke after stroke
    counts: np.ndarray  # (n,) points per stroke
    widths: np.ndarray  # (n,) stroke widths on the 512 canvas, px (float)
    upscale: float
    angle: int
    kernel_u: float  # U(0, 1), turned into k once the range is known (it depends on the canvas for "ratio")
    x: int
    y: int
    margin: bool
    kernel: int = 0
    raw_hole_pct: float = field(default=float("nan"))

    @property
    def strokes(self) -> list[np.ndarray]:
        return np.split(self.points, np.cumsum(self.counts)[:-1])


def draw_candidate(rng: np.random.Generator, source, *, target: int, margin_bins, steer: bool,
                   erosion: str) -> Candidate:
    mean = STEER_MEAN[target] if steer else STROKES_MEAN
    n = max(1, int(round(rng.normal(mean, STROKES_STD))))
    points, counts = source.sample_flat(rng, n)
    widths = rng.uniform(*WIDTH, n)
    c = Candidate(points=points, counts=counts, widths=widths, upscale=float(rng.uniform(*UPSCALE)),
                  angle=int(rng.integers(-180, 181)), kernel_u=float(rng.random()),
                  x=int(rng.integers(0, RAW - CROP + 1)), y=int(rng.integers(0, RAW - CROP + 1)),
                  margin=target in margin_bins)
    if erosion == "code":
        lo, hi = KERNEL_CODE
    elif erosion == "ratio":
        raw = render_raw(c)
        c.raw_hole_pct = 100.0 * (1.0 - cv2.countNonZero(raw) / raw.size)
        p = c.raw_hole_pct
        lo = int(15 - p) if p < 14 else 1
        hi = int(28 - p) if p < 28 else 1
        hi = max(lo, hi)
    else:
        raise ValueError(f"masks.erosion: unknown mode {erosion!r}; allowed: code, ratio")
    c.kernel = lo + min(hi - lo, int(c.kernel_u * (hi - lo + 1)))
    return c


# --------------------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------------------

_SHIFT = 4  # sub-pixel bits for cv2.polylines
_ONE = 1 << _SHIFT
_KERNELS: dict[int, np.ndarray] = {}


def _kernel(k: int) -> np.ndarray:
    if k not in _KERNELS:
        _KERNELS[k] = np.ones((k, k), np.uint8)
    return _KERNELS[k]


def thickness_for(width):
    """cv2's `thickness` whose drawn line is closest to `width` px wide (scalar or array).

    A thick cv2 line (round caps and joints) of thickness t covers 2 * ceil(t / 2) + 1 px across (t = 1: 1 px),
    so only odd widths exist; t = w - 1 draws w px for odd w.
    """
    w = np.asarray(width, dtype=np.float64)
    t = np.where(w < 2.0, 1, np.maximum(2, 2 * np.rint((w - 1.0) / 2.0))).astype(np.int64)
    return int(t) if t.ndim == 0 else t


def _upscale_matrix(upscale: float) -> np.ndarray:
    """3x3: 256-box point -> raw 512 canvas (x2), then the centre upscale + centre crop."""
    c = (RAW - 1) / 2.0
    return np.array([[2.0 * upscale, 0.0, c * (1.0 - upscale)], [0.0, 2.0 * upscale, c * (1.0 - upscale)],
                     [0.0, 0.0, 1.0]])


def _polylines(canvas: np.ndarray, points: np.ndarray, counts: np.ndarray, affine: np.ndarray,
               thickness: np.ndarray, value: int) -> int:
    """Draw the strokes mapped by `affine` (2x3); strokes entirely off the canvas are skipped.

    Returns the number of strokes drawn."""
    pts = np.rint((points @ affine[:, :2].T + affine[:, 2]) * _ONE).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = np.minimum.reduceat(pts, starts, axis=0)
    hi = np.maximum.reduceat(pts, starts, axis=0)
    reach = (thickness[:, None] + 2) * (_ONE // 2)
    h, w = canvas.shape
    size = np.array([w, h]) * _ONE
    visible = ((hi + reach) >= 0).all(1) & ((lo - reach) < size).all(1)
    drawn = 0
    for j in np.flatnonzero(visible).tolist():
        a = starts[j]
        cv2.polylines(canvas, [pts[a:a + counts[j]].reshape(-1, 1, 2)], False, value, int(thickness[j]),
                      cv2.LINE_8, _SHIFT)
        drawn += 1
    return drawn


def _processing_affine(c: Candidate, s: float, pad: int) -> np.ndarray:
    """2x3: 256-box point -> pixel of the crop window: x2 to the raw canvas, upscale about its centre, rotate
    by c.angle with scale 1.5 about (256, 256) (cv2.getRotationMatrix2D's convention), shift by the crop
    corner, scale by s, shift by pad. Composed in Python floats (it runs once per candidate)."""
    u = c.upscale
    cu = (RAW - 1) / 2.0 * (1.0 - u)  # upscale: p -> 2u p + cu
    t = np.deg2rad(c.angle)
    a, b = ROT_SCALE * np.cos(t), ROT_SCALE * np.sin(t)
    cx = cy = RAW / 2.0
    rx, ry = (1.0 - a) * cx - b * cy, b * cx + (1.0 - a) * cy  # rotation: q -> [[a, b], [-b, a]] q + r
    # crop: r -> s (r - (x, y)) + pad
    return np.array([[s * a * 2.0 * u, s * b * 2.0 * u, s * (a * cu + b * cu + rx - c.x) + pad],
                     [-s * b * 2.0 * u, s * a * 2.0 * u, s * (-b * cu + a * cu + ry - c.y) + pad]])


def render_raw(c: Candidate) -> np.ndarray:
    """The QD-IMD raw canvas (512 x 512, 255 = valid, 0 = stroke), drawn directly at the upscaled size."""
    canvas = np.full((RAW, RAW), 255, np.uint8)
    _polylines(canvas, c.points, c.counts, _upscale_matrix(c.upscale)[:2], thickness_for(c.widths * c.upscale), 0)
    return canvas


def render_mask(c: Candidate, size: int = CROP, resize: str = "nearest") -> np.ndarray:
    """The processed mask, uint8 {0, 1} (1 = hole), size x size. Fast path (module docstring)."""
    s = size / CROP if (resize == "scale" or size > CROP) else 1.0  # above 256 always draw at full size
    out = int(round(CROP * s))
    k = int(round((c.kernel - 1) * s)) + 1  # a k x k dilation widens a stroke by k - 1 px: scale that
    pad = k // 2 + 1  # the k x k kernel (anchor k // 2) reaches k // 2 px up/left, k - 1 - k // 2 down/right
    affine = _processing_affine(c, s, pad)
    win = np.zeros((out + 2 * pad, out + 2 * pad), np.uint8)
    if _polylines(win, c.points, c.counts, affine, thickness_for(c.widths * (c.upscale * ROT_SCALE * s)), 1):
        if k > 1:
            win = cv2.dilate(win, _kernel(k))
        mask = win[pad:pad + out, pad:pad + out]
    else:
        mask = win[:out, :out]  # nothing near the crop: an empty mask
    if out != size:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    else:
        mask = np.ascontiguousarray(mask)
    if c.margin:
        _clear_margin(mask, margin_px(size))
    return mask


def _clear_margin(mask: np.ndarray, mp: int) -> None:
    if mp > 0:
        mask[:mp] = 0
        mask[-mp:] = 0
        mask[:, :mp] = 0
        mask[:, -mp:] = 0


def render_literal(c: Candidate, size: int = CROP) -> np.ndarray:
    """Steps 2-7 as the authors wrote them: raw canvas, upscale + centre crop, warpAffine, erode, crop."""
    canvas = np.full((RAW, RAW), 255, np.uint8)
    two = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    _polylines(canvas, c.points, c.counts, two, thickness_for(c.widths), 0)
    big = int(round(RAW * c.upscale))
    up = cv2.resize(canvas, (big, big), interpolation=cv2.INTER_LINEAR)
    o = (big - RAW) // 2
    raw = np.where(up[o:o + RAW, o:o + RAW] > 127, 255, 0).astype(np.uint8)
    m = cv2.getRotationMatrix2D((RAW / 2.0, RAW / 2.0), c.angle, ROT_SCALE)
    rot = cv2.warpAffine(raw, m, (RAW, RAW))
    ero = cv2.erode(rot, _kernel(c.kernel))
    crop = ero[c.y:c.y + CROP, c.x:c.x + CROP]
    mask = ((255 - crop) > 127.5).astype(np.uint8)
    if c.margin:
        _clear_margin(mask, MARGIN)
    if size != CROP:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        if c.margin:
            _clear_margin(mask, margin_px(size))
    return mask


def hole_ratio(mask: np.ndarray) -> float:
    return cv2.countNonZero(mask) / mask.size
