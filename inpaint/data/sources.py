"""Where images come from: photographs shipped inside installed packages (`sample`, the offline default)
or a folder the user names, validated file by file."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

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


def load_rgb(path: Path, min_size: int = 1) -> np.ndarray:
    """Decode an image file to uint8 H x W x 3; raise ValueError naming the file when it cannot be used."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a decodable image ({e})") from None
    if min(rgb.shape[:2]) < min_size:
        raise ValueError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is smaller than data.min_size={min_size}")
    return rgb


def scan_folder(folder: Path, min_size: int) -> tuple[list[Path], list[BadFile]]:
    """Every image file under `folder` (sorted), split into usable ones and bad ones with the reason."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data.folder: {folder} is not a directory; expected a folder of image files "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}), searched recursively")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    good, bad = [], []
    for p in files:
        try:
            load_rgb(p, min_size)
            good.append(p)
        except ValueError as e:
            bad.append(BadFile(p, str(e)))
    if not good:
        raise ValueError(f"data.folder: {folder} holds no usable image ({len(bad)} bad files)")
    return good, bad


def content_hash(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
