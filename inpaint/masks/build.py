"""`build_mask_sets`: the whole masks stage over a MaskSettings (train set, test set, leak check)."""
from __future__ import annotations

import time
from pathlib import Path

from inpaint.bins import BINS, key
from inpaint.io import atomic_dir
from inpaint.masks import generate
from inpaint.masks.generate import generate_set, worker_pool
from inpaint.masks.liu import LiuMaskError, import_liu
from inpaint.masks.settings import MaskSettings
from inpaint.masks.store import MaskStore, check_no_leak
from inpaint.masks.strokes import make_source
from inpaint.masks.worker import Job
from inpaint.paths import absolute


def _job(settings: MaskSettings, split: str, image_size: int) -> Job:
    source = make_source(settings.stroke_source, split,
                         quickdraw_dir=absolute(settings.quickdraw_dir) if settings.quickdraw_dir else None,
                         category_seed=settings.category_seed,
                         drawings_per_category=settings.drawings_per_category)
    return Job(source=source, split=split, seed=settings.seed if split == "train" else settings.test_seed,
               image_size=image_size, margin_bins=tuple(settings.margin_bins), steer=settings.steer,
               erosion=settings.erosion, resize=settings.resize)


def _public(stats: dict) -> dict:
    out = {k: v for k, v in stats.items() if k != "hashes"}
    out["per_bin"] = {key(b): n for b, n in enumerate(stats["per_bin"])}
    return out


def build_mask_sets(settings: MaskSettings, image_size: int, out_dir: Path) -> dict:
    """Write out_dir/train and out_dir/test (shards + store.json + manifest.csv) and return a summary.

    Both sets are built in temporary siblings and replace the old ones only after both are complete and
    the leak check has passed, so a failure leaves whatever was in out_dir untouched.
    """
    if not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be in 8..1024, got {image_size}")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    train_job = _job(settings, "train", image_size)  # bad stroke input fails here, before any work
    test_job = _job(settings, "test", image_size) if settings.test_source == "generated" else None
    if test_job is None and not absolute(settings.liu_dir).is_dir():
        raise LiuMaskError(f"masks.liu_dir: {absolute(settings.liu_dir)} is not a directory (expected Liu et "
                           f"al.'s irregular mask PNGs, hole = white)")
    jobs = {"train": train_job} | ({"test": test_job} if test_job else {})
    generated = len(BINS) * (settings.train_per_bin + (settings.test_per_bin if test_job else 0))
    workers = settings.workers if generated >= generate.PARALLEL_MIN else 1  # same files either way
    cap = settings.max_candidates_factor * len(BINS)
    with atomic_dir(out_dir / "train") as train_dir, atomic_dir(out_dir / "test") as test_dir, \
            worker_pool(jobs, workers) as pool:
        train = generate_set(train_job, settings.train_per_bin, train_dir, pool=pool,
                             shard_size=settings.shard_size, max_candidates=int(cap * settings.train_per_bin))
        if test_job is not None:
            test = generate_set(test_job, settings.test_per_bin, test_dir, pool=pool, shard_size=settings.shard_size,
                                max_candidates=int(cap * settings.test_per_bin), exclude=frozenset(train["hashes"]))
        else:
            test = import_liu(absolute(settings.liu_dir), image_size, settings.test_per_bin, test_dir,
                              shard_size=settings.shard_size, workers=settings.workers)
        check_no_leak(MaskStore(train_dir), MaskStore(test_dir))
    seconds = time.perf_counter() - t0
    n = train["masks"] + test["masks"]
    summary = {"image_size": image_size, "workers": workers, "stroke_source": settings.stroke_source,
               "test_source": settings.test_source, "train": _public(train), "test": _public(test),
               "seconds": round(seconds, 3), "masks_per_s": round(n / seconds, 1)}
    print(f"masks: {train['masks']} train in {train['seconds']:.1f} s ({train['masks_per_s']:.0f} masks/s, "
          f"{train['candidates']} candidates), {test['masks']} test in "
          f"{test['seconds']:.1f} s; {n} masks at {image_size}px in {seconds:.1f} s = {n / seconds:.0f} masks/s "
          f"with {workers} worker process(es)", flush=True)
    return summary
