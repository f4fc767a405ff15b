"""The prepare stage: images -> one uint8 array per split at the working resolution + a manifest.

Output (`data/prepared/`): `train.npy` and `test.npy` (N x S x S x 3, uint8, memory-mappable so every
Ray worker reads only what it needs), `manifest.csv` (index, split, source, hash) and `summary.json`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from inpaint.config import DataConfig
from inpaint.data.sources import content_hash, load_rgb, sample_photos, scan_folder
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


def _plan(cfg: DataConfig) -> tuple[list[tuple[str, Path]], list[str]]:
    """(split, file) for every source file, and the reports of skipped files."""
    rng = np.random.default_rng(cfg.seed)
    if cfg.dataset == "sample":
        photos = sample_photos()
        if cfg.test_photos >= len(photos):
            raise ValueError(f"data.test_photos={cfg.test_photos}: the sample set has only {len(photos)} photos; "
                             "leave at least one for training")
        order = rng.permutation(len(photos))
        test = set(order[: cfg.test_photos].tolist())
        return [("test" if i in test else "train", p) for i, p in enumerate(photos)], []
    good, bad = scan_folder(Path(cfg.folder), cfg.min_size)
    n_test = max(1, round(len(good) * cfg.test_fraction))
    if n_test >= len(good):
        raise ValueError(f"data.folder: {len(good)} usable images cannot give a test split of {n_test} and a train split")
    test = set(rng.permutation(len(good))[:n_test].tolist())
    return [("test" if i in test else "train", p) for i, p in enumerate(good)], [f"{b.path}: {b.reason}" for b in bad]


def prepare(cfg: DataConfig, out_dir: Path) -> dict:
    """Build the prepared dataset in `out_dir` (replaced atomically); returns the summary."""
    start = time.perf_counter()
    plan, skipped = _plan(cfg)
    for line in skipped:
        print(f"skipped {line}")
    rows, images = [], {"train": [], "test": []}
    for i, (split, path) in enumerate(tqdm(plan, desc="prepare", unit="file")):
        rgb = load_rgb(path, cfg.min_size)
        if cfg.dataset == "sample":
            crops = random_crops(rgb, cfg.image_size, cfg.crops_per_photo, np.random.default_rng([cfg.seed, i]))
        else:
            crops = [centre_square(rgb, cfg.image_size)]
        for crop in crops:
            source = f"{path.parent.name}/{path.name}" if cfg.dataset == "sample" else str(path.relative_to(cfg.folder))
            rows.append({"split": split, "index": len(images[split]), "source": source, "hash": content_hash(crop)})
            images[split].append(crop)
    manifest = pd.DataFrame(rows)
    overlap = set(manifest.hash[manifest.split == "train"]) & set(manifest.hash[manifest.split == "test"])
    if overlap:
        raise ValueError(f"prepare: {len(overlap)} images appear in both splits (content hashes {sorted(overlap)[:5]})")
    with atomic_dir(out_dir) as tmp:
        for split, arrays in images.items():
            np.save(tmp / f"{split}.npy", np.stack(arrays))
        manifest.to_csv(tmp / "manifest.csv", index=False)
        summary = {"dataset": cfg.dataset, "image_size": cfg.image_size,
                   "train": len(images["train"]), "test": len(images["test"]),
                   "skipped": len(skipped), "skipped_files": skipped,
                   "seconds": round(time.perf_counter() - start, 2)}
        write_json(tmp / "summary.json", summary)
    print(f"prepare: {summary['train']} train / {summary['test']} test images at {cfg.image_size}px, "
          f"{len(skipped)} files skipped, {summary['seconds']} s")
    return summary


def load_split(prepared: Path, split: str) -> np.ndarray:
    path = prepared / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the prepare stage (`dvc repro prepare`)")
    return np.load(path, mmap_mode="r")
