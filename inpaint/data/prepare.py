"""The prepare stage: images -> one uint8 array per split at the working resolution + a manifest.

Which files and which split come from the dataset's preset (inpaint/data/presets.py). Output
(`data/prepared/`): `train.npy` and `test.npy` (N x S x S x 3, uint8, memory-mappable so every Ray worker reads
only what it needs), `manifest.csv` (split, index, source relative to data.folder, content hash; plus category
for Places2) and `summary.json` (counts, skipped files with their reasons, warnings, Places2 categories).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from inpaint.config import DataConfig
from inpaint.data.presets import LAYOUTS, PRESETS, SPLITS
from inpaint.data.sources import content_hash, load_rgb
from inpaint.io import atomic_dir, write_json


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))


def centre_square(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return _resize(rgb[top:top + s, left:left + s], size)


def random_crops(rgb: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Square crops of random side in [size, min(H, W)] at random places, resized to `size`."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    crops = []
    for _ in range(count):
        side = int(rng.integers(min(size, short), short + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crops.append(_resize(rgb[top:top + side, left:left + side], size))
    return crops


def _source(cfg: DataConfig, path: Path) -> str:
    """The manifest's `source`: relative to data.folder, so a manifest checks out on another machine."""
    return f"{path.parent.name}/{path.name}" if cfg.dataset == "sample" else path.relative_to(cfg.folder).as_posix()


def _crops(cfg: DataConfig, path: Path, i: int) -> tuple[list[np.ndarray], list[str]]:
    """The working-size images of one file and a warning per change the user did not ask for (16-bit or
    transparency converted, upscaled: an upscaled image is softer than the rest of the set)."""
    notes: list[str] = []
    rgb = load_rgb(path, cfg.min_size, notes)
    h, w = rgb.shape[:2]
    if min(h, w) < cfg.image_size:
        notes.append(f"{w}x{h} upscaled to data.image_size={cfg.image_size}")
    warnings = [f"{_source(cfg, path)}: {note}" for note in notes]
    if cfg.dataset == "sample":
        return random_crops(rgb, cfg.image_size, cfg.crops_per_photo, np.random.default_rng([cfg.seed, i])), warnings
    return [centre_square(rgb, cfg.image_size)], warnings


def prepare(cfg: DataConfig, out_dir: Path) -> dict:
    """Build the prepared dataset in `out_dir` (replaced atomically); returns the summary.

    Pass 1 (the dataset's preset) lists and validates the files, so each split's size is known up front;
    pass 2 writes the images straight into memory-mapped .npy files and never holds a split in RAM
    (27,000 CelebA-HQ images at 256 px are 5.3 GB).
    """
    start = time.perf_counter()
    plan = PRESETS[cfg.dataset](cfg)
    skipped = [str(b) for b in plan.bad]
    for line in skipped:
        print(f"skipped {line}")
    for line in plan.warnings:
        print(f"warning: {line}")
    per_file = cfg.crops_per_photo if cfg.dataset == "sample" else 1
    sizes = {s: per_file * sum(item.split == s for item in plan.items) for s in SPLITS}
    for split, n in sizes.items():
        if not n:
            raise ValueError(f"data.folder: no usable {split} image ({len(skipped)} bad files); "
                             f"data.dataset={cfg.dataset} expects {LAYOUTS[cfg.dataset]}")
    rows = []
    filled = dict.fromkeys(SPLITS, 0)
    with atomic_dir(out_dir) as tmp:
        arrays = {s: np.lib.format.open_memmap(tmp / f"{s}.npy", mode="w+", dtype=np.uint8,
                                               shape=(n, cfg.image_size, cfg.image_size, 3))
                  for s, n in sizes.items()}
        warnings = list(plan.warnings)
        for i, item in enumerate(tqdm(plan.items, desc="prepare", unit="file")):
            crops, notes = _crops(cfg, item.path, i)
            for line in notes:
                tqdm.write(f"warning: {line}")
            warnings += notes
            for crop in crops:
                index = filled[item.split]
                arrays[item.split][index] = crop
                filled[item.split] += 1
                row = {"split": item.split, "index": index, "source": _source(cfg, item.path),
                       "hash": content_hash(crop)}
                if plan.categories:
                    row["category"] = item.category
                rows.append(row)
        for array in arrays.values():
            array.flush()
        del arrays  # release the maps before the folder is moved into place
        manifest = pd.DataFrame(rows)
        _check_disjoint(manifest)
        manifest.to_csv(tmp / "manifest.csv", index=False)
        summary = {"dataset": cfg.dataset, "image_size": cfg.image_size, "train": sizes["train"],
                   "test": sizes["test"], "skipped": len(skipped), "skipped_files": skipped,
                   "warnings": warnings, "seconds": round(time.perf_counter() - start, 2)}
        if plan.categories:
            summary["categories"] = plan.categories
            summary["per_category"] = {c: {s: int(((manifest.category == c) & (manifest.split == s)).sum())
                                           for s in SPLITS} for c in plan.categories}
        write_json(tmp / "summary.json", summary)
    if plan.categories:
        print(f"prepare: categories {plan.categories}")
    print(f"prepare: {summary['train']} train / {summary['test']} test images at {cfg.image_size}px, "
          f"{len(skipped)} files skipped, {summary['seconds']} s")
    return summary


def _check_disjoint(manifest: pd.DataFrame) -> None:
    """No image in both splits, by content: a leak a file-level split cannot see (a photo saved twice)."""
    train, test = (manifest[manifest.split == s].drop_duplicates("hash").set_index("hash").source for s in SPLITS)
    both = train.index.intersection(test.index)
    if len(both):
        pairs = [f"{train[h]} = {test[h]}" for h in both[:5]]
        raise ValueError(f"prepare: {len(both)} images appear in both splits (train = test: {pairs}); "
                         "remove the duplicates from data.folder")


def load_split(prepared: Path, split: str) -> np.ndarray:
    path = prepared / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the prepare stage (`dvc repro prepare`)")
    return np.load(path, mmap_mode="r")
