"""The recorded test pairs (data/test_pairs.csv): per hole-ratio bin, every test image once with one test
mask, in a seeded order fixed when the pairs stage runs, so that every model is scored on exactly the same
pairs. No torch here: the pairs stage needs only the prepared manifest and the test masks' bins."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inpaint import bins
from inpaint.io import atomic_path


def test_sources(prepared: Path) -> pd.Series:
    """The source photo of each prepared test image, by test image index (prepared/manifest.csv)."""
    manifest = pd.read_csv(prepared / "manifest.csv")
    return manifest[manifest.split == "test"].sort_values("index").source.reset_index(drop=True)


def stratified_order(sources: pd.Series, rng: np.random.Generator) -> list[int]:
    """Test image indices, one photo after another: photos in a seeded order, then each photo's next crop, so
    that the first n pairs of a bin (evaluate.pairs_per_bin) come from min(n, photos) different photos."""
    photos = [rng.permutation(np.flatnonzero((sources == p).to_numpy())).tolist()
              for p in rng.permutation(sources.unique())]
    return [crops[r] for r in range(max(map(len, photos))) for crops in photos if r < len(crops)]


def write_test_pairs(test_masks, sources: pd.Series, seed: int, path: Path) -> None:
    """Per bin, every test image once, in `stratified_order`, the k-th paired with the k-th of the bin's
    test masks in a seeded order (cycling when there are more images): fixed and recorded, so every model
    is scored on exactly the same pairs."""
    rows = []
    for b in range(len(bins.BINS)):
        ids = test_masks.indices_in_bin(b)
        if len(ids) == 0:
            raise ValueError(f"the test mask set has no mask in bin {bins.label(b)}")
        rng = np.random.default_rng([seed, b])
        ids = rng.permutation(ids)
        rows += [{"bin": b, "image": image, "mask": int(ids[k % len(ids)])}
                 for k, image in enumerate(stratified_order(sources, rng))]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def read_pairs(path: Path) -> pd.DataFrame:
    """The recorded test pairs (bin, image, mask), or one line saying which stage writes them."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the pairs stage writes the test pairs (`dvc repro pairs`)")
    pairs = pd.read_csv(path)
    missing = {"bin", "image", "mask"} - set(pairs.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing (expected bin, image, mask)")
    return pairs
