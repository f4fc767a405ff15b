"""Test masks from the irregular mask set of Liu et al. (PConv, 12,000 PNGs, hole = white).

Every *.png under the folder (recursively, sorted by relative path: the fixed order) is read as grey,
resized to the working size with nearest neighbour, binarised (> 127 = hole) and binned by the ratio
recomputed at that size; each bin takes the first `per_bin` masks in that order. Reading stops once every
bin is full. A bin the folder cannot fill is reported (warning and summary), not padded.
"""
from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from inpaint.bins import BINS, bin_of, label
from inpaint.masks.store import StoreWriter, mask_hash

BATCH = 256


class LiuMaskError(ValueError):
    """A missing folder or an unreadable mask file; the message names it."""


def _load(path: Path, size: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise LiuMaskError(f"{path}: not a readable image (expected a PNG mask, hole = white)")
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
    return (img > 127).astype(np.uint8)


def import_liu(directory: Path, image_size: int, per_bin: int, out_dir: Path, *, shard_size: int,
               workers: int = 2) -> dict:
    t0 = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise LiuMaskError(f"masks.liu_dir: {directory} is not a directory (expected Liu et al.'s irregular "
                           f"mask PNGs, hole = white)")
    files = sorted((p for p in directory.rglob("*") if p.suffix.lower() == ".png" and p.is_file()),
                   key=lambda p: p.relative_to(directory).as_posix())
    if not files:
        raise LiuMaskError(f"masks.liu_dir: {directory} holds no .png files")
    chosen: list[list[tuple[np.ndarray, float, str, str]]] = [[] for _ in BINS]
    read = 0
    bar = tqdm(total=per_bin * len(BINS), desc="masks test (Liu et al.)", unit="mask", mininterval=0.5)
    with ThreadPoolExecutor(max(1, workers)) as ex, bar:  # cv2 releases the GIL while decoding
        for s in range(0, len(files), BATCH):
            batch = files[s:s + BATCH]
            for path, m in zip(batch, ex.map(lambda p: _load(p, image_size), batch)):
                read += 1
                ratio = cv2.countNonZero(m) / m.size
                b = bin_of(ratio)
                if b is None or len(chosen[b]) >= per_bin:
                    continue
                row = np.packbits(m)
                chosen[b].append((row, ratio, mask_hash(row), f"liu:{path.relative_to(directory).as_posix()}"))
                bar.update(1)
            if all(len(c) >= per_bin for c in chosen):
                break
    counts = [len(c) for c in chosen]
    short = {label(b): counts[b] for b in range(len(BINS)) if counts[b] < per_bin}
    if short:
        warnings.warn(f"masks.liu_dir: {directory} has fewer than {per_bin} masks in bins {short} at "
                      f"{image_size}px; those bins are tested with fewer masks", stacklevel=2)
    if not any(counts):
        raise LiuMaskError(f"masks.liu_dir: no mask in {directory} has a hole ratio in (0.01, 0.6]")
    writer = StoreWriter(out_dir, image_size, counts, shard_size)
    for b, items in enumerate(chosen):
        for j, (row, ratio, h, source) in enumerate(items):
            writer.put(b, j, row, ratio, h, source)
    writer.finish()
    seconds = time.perf_counter() - t0
    n = sum(counts)
    return {"masks": n, "per_bin": counts, "files_read": read, "short_bins": short,
            "seconds": round(seconds, 3), "masks_per_s": round(n / max(seconds, 1e-9), 1),
            "hashes": {h for items in chosen for _, _, h, _ in items}}
