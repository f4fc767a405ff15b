"""Where images come from: photographs shipped inside installed packages (`sample`, the offline default)
or a folder the user names, listed and validated file by file (pass 1 of the prepare stage)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def sample_photos() -> list[Path]:
    """Colour photographs that ship with scikit-image, scikit-learn and matplotlib (no download).

    The two motorcycle views of one scene are left out of the list but one, so that no scene can sit in
    both splits.
    """
    import matplotlib
    import skimage.data
    import sklearn.datasets

    skimage_dir = Path(skimage.data.__file__).parent
    sklearn_dir = Path(sklearn.datasets.__file__).parent / "images"
    mpl_dir = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [skimage_dir / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                                        "motorcycle_left.png", "hubble_deep_field.jpg")]
    photos += [sklearn_dir / "china.jpg", sklearn_dir / "flower.jpg", mpl_dir / "grace_hopper.jpg"]
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"sample dataset: photographs missing from the installed packages: {missing}")
    return photos


@dataclass(frozen=True)
class BadFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class BadImage(ValueError):
    """A file the prepare stage cannot use; `reason` says why, the message adds the path."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def load_rgb(path: Path, min_size: int = 1) -> np.ndarray:
    """Decode an image file to uint8 H x W x 3; raise BadImage naming the file when it cannot be used."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadImage(path, f"not a decodable image ({e})") from None
    if min(rgb.shape[:2]) < min_size:
        raise BadImage(path, f"{rgb.shape[1]}x{rgb.shape[0]} is smaller than data.min_size={min_size}")
    return rgb


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` with an image suffix, sorted; symlinked folders are followed, since large
    datasets are often linked in from another disk."""
    return sorted(Path(root) / name for root, _, names in os.walk(folder, followlinks=True)
                  for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES)


def usable(paths: Iterable[Path], min_size: int, bad: list[BadFile], want: int | None = None) -> list[Path]:
    """The files of `paths` that decode to an RGB image of at least `min_size`, in order; the others are
    appended to `bad`. With `want`, stop once that many are found, so a sample drawn in a seeded order is
    topped up past its bad files instead of coming out short."""
    good: list[Path] = []
    for p in paths:
        if want is not None and len(good) == want:
            break
        try:
            load_rgb(p, min_size)
            good.append(p)
        except BadImage as e:
            bad.append(BadFile(p, e.reason))
    return good


def content_hash(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
