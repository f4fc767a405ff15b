"""Mask generation throughput: `build_mask_sets` against a straightforward baseline, in the same run.

    python bench/masks.py                       # 256 px, 1,500 masks per bin, 2 workers (about a minute)
    python bench/masks.py --size 64 --count 500 --workers 2 --baseline-count 100
    python bench/masks.py --calibrate           # landing rates of each target bin (for STEER_MEAN)

The baseline is what a direct transcription of the recipe looks like: one process, candidates made for the
bins still short in turn, each processed the way GDN's `mask_processing.py` does it (a 512 raw canvas, resize,
warpAffine, erode, crop, threshold) and written as one PNG per mask with cv2.imwrite. It uses the same draws
(`draw_candidate`) as the pipeline, so both make the same kind of masks; the pipeline renders them through
the composed affine map (inpaint/masks/process.py), in worker processes, into packed-bit shards.
`--decompose` adds the middle step (the fast renderer, one process, PNG files) to split the gain.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint.bins import BINS, bin_of  # noqa: E402
from inpaint.masks import MaskSettings, build_mask_sets  # noqa: E402
from inpaint.masks.process import draw_candidate, render_mask  # noqa: E402
from inpaint.masks.strokes import ProceduralStrokes  # noqa: E402

MARGIN_BINS = (0, 1)


def literal_mask(c, size: int) -> np.ndarray:
    """GDN's processing step by step on a QD-IMD raw canvas (white = valid), 1 = hole."""
    canvas = np.full((512, 512), 255, np.uint8)
    for stroke, width in zip(c.strokes, c.widths):
        pts = np.rint(stroke * 2.0).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, 0, max(1, int(round(width)) - 1))
    big = int(round(512 * c.upscale))
    up = cv2.resize(canvas, (big, big), interpolation=cv2.INTER_LINEAR)
    o = (big - 512) // 2
    raw = np.where(up[o:o + 512, o:o + 512] > 127, 255, 0).astype(np.uint8)
    rot = cv2.warpAffine(raw, cv2.getRotationMatrix2D((256, 256), c.angle, 1.5), (512, 512))
    ero = cv2.erode(rot, np.ones((c.kernel, c.kernel), np.uint8))
    mask = ((255 - ero[c.y:c.y + 256, c.x:c.x + 256]) > 127.5).astype(np.uint8)
    if c.margin:
        out = np.zeros_like(mask)
        out[23:233, 23:233] = mask[23:233, 23:233]
        mask = out
    if size != 256:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        m = round(23 * size / 256)
        if c.margin and m:
            mask[:m], mask[-m:], mask[:, :m], mask[:, -m:] = 0, 0, 0, 0
    return mask


def baseline(per_bin: int, size: int, out: Path, fast: bool = False) -> tuple[int, float, int]:
    """One process, one PNG per mask. Returns (masks, seconds, candidates)."""
    t0 = time.perf_counter()
    source = ProceduralStrokes("train")
    for b in range(len(BINS)):
        (out / f"bin{b}").mkdir(parents=True, exist_ok=True)
    filled = [0] * len(BINS)
    i = 0
    while min(filled) < per_bin:
        short = [b for b in range(len(BINS)) if filled[b] < per_bin]
        target = short[i % len(short)]
        c = draw_candidate(np.random.default_rng([0, 0, i]), source, target=target, margin_bins=MARGIN_BINS,
                           steer=True, erosion="code")
        mask = render_mask(c, size) if fast else literal_mask(c, size)
        b = bin_of(mask.sum() / mask.size)
        i += 1
        if b is None or (b in MARGIN_BINS) != c.margin or filled[b] >= per_bin:
            continue
        cv2.imwrite(str(out / f"bin{b}" / f"{i:07d}.png"), mask * 255)
        filled[b] += 1
    return per_bin * len(BINS), time.perf_counter() - t0, i


def calibrate(n: int, size: int) -> None:
    from inpaint.masks.worker import Job, run_candidates
    job = Job(ProceduralStrokes("train"), "train", 0, size, MARGIN_BINS, True, "code", "nearest")
    print(f"landing rates per target bin ({n} candidates each, {size}px): target -> bins 0..5")
    for t in range(len(BINS)):
        _, bins, _, _ = run_candidates(job, 10_000_000 * (t + 1), np.full(n, t))
        print(t, np.round(np.bincount(bins, minlength=len(BINS)) / n, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--count", type=int, default=1500, help="training masks per bin for build_mask_sets")
    ap.add_argument("--baseline-count", type=int, default=100, help="masks per bin for the baseline")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--decompose", action="store_true", help="also time the fast renderer in the baseline loop")
    ap.add_argument("--calibrate", type=int, nargs="?", const=600, default=None, metavar="N")
    args = ap.parse_args()
    if args.calibrate:
        calibrate(args.calibrate, args.size)
        return
    with tempfile.TemporaryDirectory(prefix="bench-masks-") as tmp:
        tmp = Path(tmp)
        settings = MaskSettings(train_per_bin=args.count, test_per_bin=max(1, args.count // 10),
                                workers=args.workers)
        summary = build_mask_sets(settings, args.size, tmp / "sets")
        n_pipe = summary["train"]["masks"] + summary["test"]["masks"]
        pipe = n_pipe / summary["seconds"]
        rows = [("build_mask_sets", args.workers, n_pipe, summary["seconds"],
                 summary["train"]["candidates"] + summary["test"]["candidates"], pipe)]
        n, sec, cand = baseline(args.baseline_count, args.size, tmp / "png")
        base = n / sec
        rows.append(("baseline: literal, 1 process, PNG files", 1, n, sec, cand, base))
        if args.decompose:
            n2, sec2, cand2 = baseline(args.baseline_count, args.size, tmp / "png_fast", fast=True)
            rows.append(("fast renderer, 1 process, PNG files", 1, n2, sec2, cand2, n2 / sec2))
    print(f"\nmask generation at {args.size}px (procedural strokes, erosion code, steer on)")
    print(f"{'':42s} {'procs':>5s} {'masks':>7s} {'seconds':>8s} {'candidates':>10s} {'masks/s':>8s}")
    for name, procs, n, sec, cand, rate in rows:
        print(f"{name:42s} {procs:5d} {n:7d} {sec:8.1f} {cand:10d} {rate:8.0f}")
    train_rate = summary["train"]["masks_per_s"]
    print(f"\nspeed-up of build_mask_sets over the baseline: {pipe / base:.1f}x")
    print(f"projected time for the paper's 180,000 training masks at this size: {180_000 / train_rate:.0f} s "
          f"({train_rate:.0f} training masks/s; bar: 600 s)")


if __name__ == "__main__":
    main()
