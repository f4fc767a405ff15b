"""Where images come from: photographs shipped inside installed packages (`sample`, the offline default)
or a folder the user names, listed and validated file by file (pass 1 of the prepare stage)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


# The photographs that scikit-image, scikit-learn and matplotlib ship (no download), by package folder. Scenes
# are colour photographs of everyday subjects (people, animals, objects, landscapes): the test split is drawn
# among them, so that test images look like the papers' test sets and none is near-constant. The others train
# only: grey photographs, textures, microscopy, retinal images and the Hubble deep field (a star field, near
# black almost everywhere, where a mean-colour fill is nearly perfect). Left out: synthetic images (colour
# charts, logos, phantoms, chessboards), the silhouette `horse`, a cut-out product shot on a transparent
# background (matplotlib's Minduka_Present_Blue_Pack), and `motorcycle_right`, the second view of
# `motorcycle_left`'s scene, so that no scene can sit in both splits.
SAMPLE_SCENES = {"skimage": ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"),
                 "sklearn": ("china.jpg", "flower.jpg"), "matplotlib": ("grace_hopper.jpg",)}
SAMPLE_TRAIN_ONLY = {"skimage": ("hubble_deep_field.jpg", "camera.png", "moon.png", "coins.png", "text.png",
                                 "page.png", "clock_motion.png", "brick.png", "grass.png", "gravel.png", "cell.png",
                                 "ihc.png", "retina.jpg", "microaneurysms.png")}


def _package_dirs() -> dict[str, Path]:
    import matplotlib
    import skimage.data
    import sklearn.datasets

    return {"skimage": Path(skimage.data.__file__).parent, "sklearn": Path(sklearn.datasets.__file__).parent / "images",
            "matplotlib": Path(matplotlib.get_data_path()) / "sample_data"}


def sample_photos() -> list[tuple[Path, bool]]:
    """Every photograph the installed packages ship, as (path, is a scene): scenes first, in a fixed order."""
    dirs = _package_dirs()
    photos = [(dirs[package] / name, scene) for scene, listing in ((True, SAMPLE_SCENES), (False, SAMPLE_TRAIN_ONLY))
              for package, names in listing.items() for name in names]
    missing = [str(p) for p, _ in photos if not p.is_file()]
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


def decode(path: Path) -> tuple[np.ndarray, list[str]]:
    """An image file as uint8 H x W x 3 in its displayed orientation (EXIF applied, as viewers show it),
    plus notes on what the conversion changed. 16-bit samples are scaled to 8 bit (Pillow's own conversion
    clips them, which turns most of a 16-bit photo white); transparent pixels are composited on white
    (what an editor shows behind them). Raises BadImage naming the file when it cannot be used."""
    notes: list[str] = []
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                wide = np.asarray(im, dtype=np.int64)
                if wide.min() < 0 or wide.max() > 65535:
                    raise BadImage(path, f"{im.mode} samples outside 0..65535; expected 8- or 16-bit")
                im = Image.fromarray(np.round(wide / 257).astype(np.uint8), mode="L")
                notes.append("16-bit samples scaled to 8 bit")
            elif im.mode == "F":
                raise BadImage(path, "floating-point samples (mode F); expected an 8- or 16-bit image")
            if im.mode == "P" and "transparency" in im.info or im.mode == "PA":
                im = im.convert("RGBA")
            if im.mode in ("RGBA", "LA", "RGBa", "La"):
                rgba = im.convert("RGBA")
                if rgba.getextrema()[3][0] < 255:
                    notes.append("transparent pixels composited on white")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, rgba)
            return np.asarray(im.convert("RGB")), notes
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        if isinstance(e, BadImage):
            raise
        raise BadImage(path, f"not a decodable image ({e})") from None


def load_rgb(path: Path, min_size: int = 1, notes: list[str] | None = None) -> np.ndarray:
    """Decode an image file to uint8 H x W x 3 (see `decode`, whose notes go to `notes`); raise BadImage
    naming the file when it cannot be used."""
    rgb, changed = decode(path)
    if notes is not None:
        notes += changed
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
