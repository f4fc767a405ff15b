"""Datasets: where each one's files sit under data.folder and how they split (docs/protocol.md section 1).

A preset is one function `(cfg) -> Plan`: it lists the files of its layout, validates them (pass 1 of the
prepare stage: decodable, RGB or convertible, at least data.min_size) and assigns each usable one to a split.
Adding a dataset: write its function, describe its layout in LAYOUTS, list it in PRESETS and in
`DataConfig.dataset` (inpaint/config.py).
"""
from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from inpaint.config import DataConfig
from inpaint.data.sources import IMAGE_SUFFIXES, BadFile, image_files, sample_photos, usable

SPLITS = ("train", "test")
CELEBA_HQ_IMAGES = 30_000  # both papers: 27,000 train / 3,000 test
PARIS_IMAGES = {"train": 14_900, "test": 100}  # Pathak et al.'s original split
PARIS_DIRS = {"train": ("paris_train_original", "train"), "test": ("paris_eval_gt", "test")}
PLACES_TRAIN_DIRS = ("train", "data_256", "data_large")  # generic name, then Places365-Standard's own
PLACES_FLAT_VAL_DIRS = ("val_256", "val_large")
PLACES_VAL_LIST, PLACES_CATEGORY_LIST = "places365_val.txt", "categories_places365.txt"

_PLACES_LAYOUT = (
    f"train images as <root>/train/<category>/*.jpg (or Places365's own data_256/a/airfield/*.jpg), and val "
    f"images either as <root>/val/<category>/*.jpg or flat in <root>/val_256/ with {PLACES_VAL_LIST} "
    f"(lines 'Places365_val_00000001.jpg 165') and {PLACES_CATEGORY_LIST} (lines '/a/airfield 0') in <root>")
LAYOUTS = {
    "sample": "nothing on disk: photographs shipped inside installed packages",
    "folder": f"a directory of image files ({', '.join(sorted(IMAGE_SUFFIXES))}), searched recursively",
    "celeba_hq": "a directory of the 30,000 CelebA-HQ images (any names, searched recursively)",
    "places2_gdn": _PLACES_LAYOUT,
    "places2_lgnet": _PLACES_LAYOUT,
    "paris": ("Paris StreetView's original split: <root>/paris_train_original/ (14,900 train images) and "
              "<root>/paris_eval_gt/ (100 test images), or <root>/train/ and <root>/test/"),
}


@dataclass(frozen=True)
class Item:
    split: str
    path: Path
    category: str = ""  # Places365 scene category, as `places_category` writes it


@dataclass
class Plan:
    """The files to prepare, in the order they are written, and what pass 1 found on the way."""

    items: list[Item]
    bad: list[BadFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # departures from the papers' numbers
    categories: list[str] = field(default_factory=list)  # Places: the categories used, in order


def layout_error(cfg: DataConfig, problem: str) -> FileNotFoundError:
    return FileNotFoundError(f"data.folder: {problem}; data.dataset={cfg.dataset} expects {LAYOUTS[cfg.dataset]}")


def _root(cfg: DataConfig) -> Path:
    root = Path(cfg.folder)
    if not root.is_dir():
        raise layout_error(cfg, f"{root} is not a directory")
    return root


def _subdir(cfg: DataConfig, root: Path, names: tuple[str, ...]) -> Path:
    """The first of `names` present under `root`: a dataset's own folder name is accepted beside ours."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise layout_error(cfg, f"{root} has none of {', '.join(n + '/' for n in names)}")


def _usable_under(cfg: DataConfig, folder: Path, desc: str = "validate") -> tuple[list[Path], list[BadFile]]:
    """Every usable image under `folder` (sorted) and the bad ones; no usable image at all is an error."""
    bad: list[BadFile] = []
    good = usable(tqdm(image_files(folder), desc=desc, unit="file"), cfg.min_size, bad)
    if not good:
        example = f", e.g. {bad[0]}" if bad else ""
        raise ValueError(f"data.folder: {folder} holds no usable image ({len(bad)} bad files{example}); "
                         f"data.dataset={cfg.dataset} expects {LAYOUTS[cfg.dataset]}")
    return good, bad


def _random_split(files: list[Path], test_fraction: float, seed: int) -> list[Item]:
    n_test = max(1, round(len(files) * test_fraction))
    if n_test >= len(files):
        raise ValueError(f"data.folder: {len(files)} usable images cannot give a test split of {n_test} "
                         "and a train split")
    test = set(np.random.default_rng(seed).permutation(len(files))[:n_test].tolist())
    return [Item("test" if i in test else "train", p) for i, p in enumerate(files)]


def _count_warning(what: str, found: int, expected: int, instead: str) -> list[str]:
    return [] if found == expected else [f"{what}: {found:,} usable images, not the papers' {expected:,}; {instead}"]


def sample(cfg: DataConfig) -> Plan:
    """The offline default: data.test_photos whole scene photographs (data.seed) are held out, so no scene sits
    in both splits and no test image is a near-constant one (inpaint/data/sources.py, SAMPLE_SCENES)."""
    photos = sample_photos()
    scenes = [i for i, (_, scene) in enumerate(photos) if scene]
    if cfg.test_photos > len(scenes):
        raise ValueError(f"data.test_photos={cfg.test_photos}: the sample set has only {len(scenes)} scene "
                         "photographs to hold out for test")
    test = {scenes[k] for k in np.random.default_rng(cfg.seed).permutation(len(scenes))[: cfg.test_photos]}
    return Plan([Item("test" if i in test else "train", p) for i, (p, _) in enumerate(photos)])


def folder(cfg: DataConfig) -> Plan:
    """Any directory of images, split at random (data.seed) with data.test_fraction."""
    good, bad = _usable_under(cfg, _root(cfg))
    return Plan(_random_split(good, cfg.test_fraction, cfg.seed), bad)


def celeba_hq(cfg: DataConfig) -> Plan:
    """CelebA-HQ as both papers use it: a seeded random 27,000 / 3,000 split (data.test_fraction 0.1)."""
    good, bad = _usable_under(cfg, _root(cfg))
    warnings = _count_warning("celeba_hq", len(good), CELEBA_HQ_IMAGES,
                              f"split with data.test_fraction={cfg.test_fraction} instead of 27,000 / 3,000")
    return Plan(_random_split(good, cfg.test_fraction, cfg.seed), bad, warnings)


def paris(cfg: DataConfig) -> Plan:
    """Paris StreetView's original split (14,900 train / 100 test); fixed, so data.seed plays no part."""
    root = _root(cfg)
    folders = {split: _subdir(cfg, root, PARIS_DIRS[split]) for split in SPLITS}  # the layout before any work
    plan = Plan([])
    for split, split_dir in folders.items():
        good, bad = _usable_under(cfg, split_dir, desc=f"validate {split}")
        plan.items += [Item(split, p) for p in good]
        plan.bad += bad
        plan.warnings += _count_warning(f"paris {split}", len(good), PARIS_IMAGES[split], "all are used")
    return plan


def places_category(name: str) -> str:
    """One spelling for a Places365 category wherever it comes from: the official names carry an
    initial-letter folder ('/a/airfield', 'a/apartment_building/outdoor'), which is dropped, leaving
    'airfield' and 'apartment_building/outdoor' for folders, the val lists and data.categories alike."""
    parts = [p for p in name.strip().replace("\\", "/").split("/") if p]
    if len(parts) > 1 and len(parts[0]) == 1:
        parts = parts[1:]
    return "/".join(parts)


def _by_category(cfg: DataConfig, split_dir: Path) -> dict[str, list[Path]]:
    """Image files under a split folder grouped by category: their folder below it, normalised."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in image_files(split_dir):
        if p.parent != split_dir:
            groups[places_category(p.parent.relative_to(split_dir).as_posix())].append(p)
    if not groups:
        raise layout_error(cfg, f"{split_dir} has no <category>/ folders of images")
    return dict(groups)


def _read_pairs(cfg: DataConfig, path: Path) -> list[tuple[str, int]]:
    """The '<name> <integer>' lines of one of Places365's list files."""
    if not path.is_file():
        raise layout_error(cfg, f"{path} is missing (it comes with Places365's filelist archive)")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(f"data.folder: {path} line {number}: expected '<name> <integer>', got {line!r}")
        pairs.append((fields[0], int(fields[1])))
    return pairs


def _places_val(cfg: DataConfig, root: Path) -> dict[str, list[Path]]:
    """Val images by category: from val/<category>/ folders, else from the official lists over val_256/."""
    if (root / "val").is_dir():
        return _by_category(cfg, root / "val")
    flat = _subdir(cfg, root, ("val", *PLACES_FLAT_VAL_DIRS))  # names val/ too when neither is there
    names = {index: places_category(name) for name, index in _read_pairs(cfg, root / PLACES_CATEGORY_LIST)}
    groups: dict[str, list[Path]] = defaultdict(list)
    for file, index in _read_pairs(cfg, root / PLACES_VAL_LIST):
        if index not in names:
            raise ValueError(f"data.folder: {root / PLACES_VAL_LIST}: {file} has category {index}, "
                             f"which {PLACES_CATEGORY_LIST} does not list")
        groups[names[index]].append(flat / file)
    return {c: sorted(files) for c, files in groups.items()}


def _choose_categories(cfg: DataConfig, count: int, train: dict[str, list[Path]],
                       val: dict[str, list[Path]]) -> list[str]:
    """data.categories when given (checked against the folders); otherwise `count` categories drawn with
    data.seed among those with both train and val images, since the papers did not publish theirs."""
    if cfg.categories:
        chosen = [places_category(c) for c in cfg.categories]
        if len(set(chosen)) < len(chosen):
            raise ValueError(f"data.categories: {cfg.categories} names a category twice "
                             f"(as {chosen}; the initial-letter folder is ignored)")
        for where, found in (("train", train), ("val", val)):
            missing = [c for c in chosen if c not in found]
            if missing:
                raise ValueError(f"data.categories: {missing} have no {where} images under data.folder={cfg.folder} "
                                 f"({len(found)} categories there, e.g. {sorted(found)[:5]})")
        return chosen
    present = sorted(set(train) & set(val))
    if count > len(present):
        raise ValueError(f"data.categories_count: {cfg.dataset} uses {count} categories but data.folder={cfg.folder} "
                         f"has {len(present)} with both train and val images")
    return sorted(np.random.default_rng(cfg.seed).choice(present, count, replace=False).tolist())


def places2(cfg: DataConfig, count: int) -> Plan:
    """Places2 as GDN and LGNet use it: `count` scene categories, data.train_per_category train images drawn
    from each (seeded by data.seed and the category's name, so a category's draw does not depend on the
    others), and all of the chosen categories' val images as the test split."""
    root = _root(cfg)
    train = _by_category(cfg, _subdir(cfg, root, PLACES_TRAIN_DIRS))
    val = _places_val(cfg, root)
    plan = Plan([], categories=_choose_categories(cfg, count, train, val))
    for category in tqdm(plan.categories, desc="validate train", unit="category"):
        files = train[category]
        order = np.random.default_rng([cfg.seed, zlib.crc32(category.encode())]).permutation(len(files))
        good = usable((files[i] for i in order), cfg.min_size, plan.bad, want=cfg.train_per_category)
        if len(good) < cfg.train_per_category:
            plan.warnings.append(f"places2 category {category}: only {len(good)} usable train images "
                                 f"(< data.train_per_category={cfg.train_per_category}); all are used")
        plan.items += [Item("train", p, category) for p in sorted(good)]
    for category in tqdm(plan.categories, desc="validate test", unit="category"):
        plan.items += [Item("test", p, category) for p in usable(val[category], cfg.min_size, plan.bad)]
    return plan


def places2_gdn(cfg: DataConfig) -> Plan:
    """GDN: 30 categories x 2,000 train images (60K); their val images (30 x 100 = 3K) as test."""
    return places2(cfg, cfg.categories_count or 30)


def places2_lgnet(cfg: DataConfig) -> Plan:
    """LGNet: 20 categories x 2,000 = 40K train images; their 2,000 val images as test."""
    return places2(cfg, cfg.categories_count or 20)


PRESETS: dict[str, Callable[[DataConfig], Plan]] = {
    "sample": sample, "folder": folder, "celeba_hq": celeba_hq,
    "places2_gdn": places2_gdn, "places2_lgnet": places2_lgnet, "paris": paris,
}
