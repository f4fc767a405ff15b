"""One mask from one seeded generator: QD-IMD's raw canvas recipe followed by GDN's `mask_processing.py`.

The recipe (protocol.md section 2; reference.md sections 1.8 and 4), with the draws in this order:

1. strokes: n = round(N(4, 2)), at least 1, taken from the stroke source (256-unit box, scaled x2 to 512);
2. widths U(5, 15) px on the 512 canvas (an integer line thickness, round joints and caps);
3. the canvas upscaled by U(1.0, 1.5) about its centre and centre-cropped back to 512 (the raw canvas);
4. rotation: an integer angle uniform in [-180, 180] degrees about (256, 256), scale 1.5;
5. erosion of the valid region by a k x k square (= dilation of the strokes). `erosion="code"`: k uniform
   in 14..27, which is what the authors' code does for every raw mask (reference.md 1.8: its `hr` is a
   fraction compared with 14 and 28). `erosion="ratio"`: the range the code evidently meant, with p the raw
   canvas' hole percentage: low = int(15 - p) if p < 14 else 1, high = int(28 - p) if p < 28 else 1;
6. a 256 x 256 crop, top-left (x, y) uniform integers in [0, 256];
7. binarise (1 = hole) and, when the candidate is made for a margin bin, clear a 23 px border;
8. hole ratio = sum / area, exactly, at the final size.

Two implementations of steps 2-7 are kept:

* `render_literal`: the steps as written (raw 512 canvas, resize, warpAffine, erode, crop). The reference.
* `render_mask`: the same geometry composed into one affine map applied to the stroke *points*; the strokes
  are drawn straight into the (256 + 2k)^2 window around the crop and dilated there. Nothing outside the
  crop is rasterised, nothing is resampled twice, so it is about 10x faster. Differences to the literal
  path are sub-pixel (the literal path thresholds bilinear resamples); `tests/test_masks.py` checks the two
  agree (IoU) on the same draws. Near the crop edge the literal path erodes with cv2's neutral border
  while this one sees the real strokes beyond the crop; that is only where the crop touches the canvas
  edge, and there the literal path is the one with an artefact.

Working sizes below 256: `resize="nearest"` (default) runs the 256 recipe and resizes with nearest
neighbour, as the test masks of Liu et al. are; `resize="scale"` draws at the final size with every length
(canvas, widths, kernel, margin) multiplied by size/256 and rounded. The margin is applied again at the final
size, round(23 * size / 256) px, so it holds on all four sides either way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from inpaint.bins import BINS

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
STEER_MEAN = (1.0, 2.0, 3.5, 5.0, 6.5, 8.0)

EDGES = np.array([lo for lo, _ in BINS] + [BINS[-1][1]])


def bins_of(ratios: np.ndarray) -> np.ndarray:
    """Vectorised `inpaint.bins.bin_of`: bin index per ratio, -1 outside (0.01, 0.6]."""
    r = np.asarray(ratios, dtype=np.float64)
    b = np.searchsorted(EDGES, r, side="left") - 1  # lo < r <= hi
    return np.where((r > EDGES[0]) & (r <= EDGES[-1]), b, -1).astype(np.int64)


def margin_px(size: int) -> int:
    return int(round(MARGIN * size / CROP))


@dataclass
class Candidate:
    """Every random draw of one candidate mask."""

    strokes: list[np.ndarray]  # points in the 256 box
    widths: np.ndarray  # stroke widths on the 512 canvas, px (float)
    upscale: float
    angle: int
    kernel_u: float  # U(0, 1), turned into k once the range is known (it depends on the canvas for "ratio")
    x: int
    y: int
    margin: bool
    kernel: int = 0
    raw_hole_pct: float = field(default=float("nan"))


def draw_candidate(rng: np.random.Generator, source, *, target: int, margin_bins, steer: bool,
                   erosion: str) -> Candidate:
    mean = STEER_MEAN[target] if steer else STROKES_MEAN
    n = max(1, int(round(rng.normal(mean, STROKES_STD))))
    strokes = source.sample(rng, n)
    widths = rng.uniform(*WIDTH, n)
    c = Candidate(strokes=strokes, widths=widths, upscale=float(rng.uniform(*UPSCALE)),
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
_KERNELS: dict[int, np.ndarray] = {}


def _kernel(k: int) -> np.ndarray:
    if k not in _KERNELS:
        _KERNELS[k] = np.ones((k, k), np.uint8)
    return _KERNELS[k]


def _raw_points(stroke: np.ndarray, upscale: float) -> np.ndarray:
    """256-box points -> raw 512 canvas after the centre upscale and centre crop."""
    c = (RAW - 1) / 2.0
    return (stroke.astype(np.float64) * 2.0 - c) * upscale + c


def thickness_for(width: float) -> int:
    """cv2's `thickness` whose drawn line is closest to `width` px wide.

    A thick cv2 line (round caps and joints) of thickness t covers 2 * ceil(t / 2) + 1 px across (t = 1: 1 px),
    so only odd widths exist; t = w - 1 draws w px for odd w.
    """
    if width < 2.0:
        return 1
    return max(2, 2 * int(round((width - 1.0) / 2.0)))


def _draw(canvas: np.ndarray, pts: np.ndarray, width: float, value: int) -> None:
    fixed = np.rint(pts * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [fixed], False, value, thickness_for(width), cv2.LINE_8, _SHIFT)


def render_raw(c: Candidate) -> np.ndarray:
    """The QD-IMD raw canvas (512 x 512, 255 = valid, 0 = stroke), drawn directly at the upscaled size."""
    canvas = np.full((RAW, RAW), 255, np.uint8)
    for s, w in zip(c.strokes, c.widths):
        _draw(canvas, _raw_points(s, c.upscale), w * c.upscale, 0)
    return canvas


def render_mask(c: Candidate, size: int = CROP, resize: str = "nearest") -> np.ndarray:
    """The processed mask, uint8 {0, 1} (1 = hole), size x size. Fast path (module docstring)."""
    s = 1.0 if (resize == "nearest" or size == CROP) else size / CROP
    out = int(round(CROP * s))
    k = max(1, int(round(c.kernel * s)))
    pad = k
    m = cv2.getRotationMatrix2D((RAW / 2.0, RAW / 2.0), c.angle, ROT_SCALE)
    offset = np.array([c.x, c.y], dtype=np.float64)
    win = np.zeros((out + 2 * pad, out + 2 * pad), np.uint8)
    for stroke, w in zip(c.strokes, c.widths):
        q = _raw_points(stroke, c.upscale)
        r = q @ m[:, :2].T + m[:, 2]
        _draw(win, (r - offset) * s + pad, w * c.upscale * ROT_SCALE * s, 1)
    if k > 1:
        win = cv2.dilate(win, _kernel(k))
    mask = win[pad:pad + out, pad:pad + out]
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
    for s, w in zip(c.strokes, c.widths):
        _draw(canvas, s.astype(np.float64) * 2.0, w, 0)
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
