"""The papers' datasets on tiny fake layouts: seeded and fixed splits, Places2 categories and val lists,
bad files reported and skipped, layout errors naming data.folder."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from inpaint.config import DataConfig, ParamsError, resolve
from inpaint.data.prepare import prepare, resize_tf1_bilinear, to_square
from inpaint.data.presets import places_category

CATEGORIES = ["a/airfield", "a/apartment_building/outdoor", "b/bedroom", "c/canyon"]  # Places365's own spelling
PAPER_CATEGORIES = 30  # places2_gdn's default count


def _images(folder: Path, names: list[str], seed: int) -> None:
    """Small random pictures, non-square so the centre crop matters; content differs per file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / name)


def _celeba(root: Path, n: int = 20) -> Path:
    _images(root / "part1", [f"{i}.jpg" for i in range(n // 2)], seed=1)
    _images(root / "part2" / "deeper", [f"{i}.png" for i in range(n // 2, n)], seed=2)
    return root


def _places_folders(root: Path, train: int = 5, val: int = 2) -> Path:
    """train/<category>/ and val/<category>/, categories without their initial-letter folder."""
    for k, c in enumerate(CATEGORIES):
        name = places_category(c)
        _images(root / "train" / name, [f"{i:08d}.jpg" for i in range(train)], seed=10 + k)
        _images(root / "val" / name, [f"{i:08d}.jpg" for i in range(val)], seed=20 + k)
    return root


def _places_official(root: Path, train: int = 5, val: int = 2) -> Path:
    """Places365-Standard as downloaded: data_256/<letter>/<category>/, flat val_256/ and the two lists."""
    for k, c in enumerate(CATEGORIES):
        _images(root / "data_256" / c, [f"{i:08d}.jpg" for i in range(train)], seed=10 + k)
    (root / "categories_places365.txt").write_text("".join(f"/{c} {k}\n" for k, c in enumerate(CATEGORIES)))
    names = [f"Places365_val_{i + 1:08d}.jpg" for i in range(val * len(CATEGORIES))]
    _images(root / "val_256", names, seed=30)
    (root / "places365_val.txt").write_text("".join(f"{n} {i % len(CATEGORIES)}\n" for i, n in enumerate(names)))
    return root


def _places(dataset: str, folder: Path, **kw) -> DataConfig:
    return DataConfig(**{"dataset": dataset, "folder": folder, "image_size": 64, "train_per_category": 3, **kw})


def _manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv")


def _disjoint(m: pd.DataFrame) -> bool:
    train, test = m[m.split == "train"], m[m.split == "test"]
    return set(train.source).isdisjoint(test.source) and set(train.hash).isdisjoint(test.hash)


# -- CelebA-HQ --------------------------------------------------------------------------------------------

def test_celeba_split_is_seeded_disjoint_and_flags_the_count(tmp_path, capsys):
    root = _celeba(tmp_path / "celeba")
    cfg = DataConfig(dataset="celeba_hq", folder=root, image_size=64)
    summary = prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    prepare(cfg.model_copy(update={"seed": 1}), tmp_path / "c")
    a, b, c = (_manifest(tmp_path / x) for x in "abc")
    assert a.equals(b) and not a.equals(c)
    assert (summary["train"], summary["test"]) == (18, 2)  # test_fraction 0.1, as 3,000 of 30,000
    assert _disjoint(a) and not a.source.str.startswith("/").any()
    assert "part2/deeper/19.png" in set(a.source)  # searched recursively, relative to data.folder
    assert np.load(tmp_path / "a" / "train.npy").shape == (18, 64, 64, 3)
    assert "20 usable images, not the papers' 30,000" in summary["warnings"][0]
    assert "warning: celeba_hq: 20 usable" in capsys.readouterr().out


def test_celeba_skips_bad_files_and_prints_their_paths(tmp_path, capsys):
    root = _celeba(tmp_path / "celeba", n=10)
    (root / "part1" / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "part1" / "tiny.png")
    cfg = DataConfig(dataset="celeba_hq", folder=root, image_size=64, min_size=40)
    summary = prepare(cfg, tmp_path / "out")
    out = capsys.readouterr().out
    assert summary["skipped"] == 2 and summary["train"] + summary["test"] == 10
    assert f"skipped {root / 'part1' / 'broken.jpg'}: not a decodable image" in out
    assert f"skipped {root / 'part1' / 'tiny.png'}: 8x8 is smaller than data.min_size=40" in out
    assert "2 files skipped" in out
    assert not {"part1/broken.jpg", "part1/tiny.png"} & set(_manifest(tmp_path / "out").source)


def test_celeba_with_no_usable_image_fails_clearly(tmp_path):
    root = tmp_path / "celeba"
    root.mkdir()
    (root / "broken.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="data.folder: .* holds no usable image .1 bad files"):
        prepare(DataConfig(dataset="celeba_hq", folder=root, image_size=64), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- Places2 ----------------------------------------------------------------------------------------------

def test_places_categories_are_drawn_with_the_seed_and_recorded(tmp_path):
    root = _places_folders(tmp_path / "places")
    cfg = _places("places2_gdn", root, categories_count=2)
    summary = prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    a = _manifest(tmp_path / "a")
    assert a.equals(_manifest(tmp_path / "b"))
    assert len(summary["categories"]) == 2 and set(a.category) == set(summary["categories"])
    assert summary["per_category"] == {c: {"train": 3, "test": 2} for c in summary["categories"]}
    assert _disjoint(a) and set(a.source[a.split == "test"].str.split("/").str[0]) == {"val"}
    draws = {tuple(prepare(cfg.model_copy(update={"seed": s}), tmp_path / f"s{s}")["categories"]) for s in range(6)}
    assert len(draws) > 1  # the draw follows data.seed


def test_places_train_draw_is_seeded_per_category(tmp_path):
    root = _places_folders(tmp_path / "places", train=8)

    def run(name: str, categories: list[str], seed: int = 0) -> pd.DataFrame:
        prepare(_places("places2_lgnet", root, categories=categories, seed=seed), tmp_path / name)
        return _manifest(tmp_path / name)

    def airfield_train(m: pd.DataFrame) -> set[str]:
        return set(m.source[(m.split == "train") & (m.category == "airfield")])

    both, reseeded, alone = run("both", ["airfield", "bedroom"]), run("re", ["airfield", "bedroom"], 5), \
        run("alone", ["airfield"])
    assert set(both.source[both.split == "train"]) != set(reseeded.source[reseeded.split == "train"])
    assert both.source[both.split == "test"].tolist() == reseeded.source[reseeded.split == "test"].tolist()
    assert airfield_train(alone) == airfield_train(both)  # a category's draw ignores the other categories


def test_places_official_layout_parses_the_val_list(tmp_path):
    root = _places_official(tmp_path / "places365")
    cfg = _places("places2_lgnet", root, categories=["/a/apartment_building/outdoor", "bedroom"])
    summary = prepare(cfg, tmp_path / "out")
    m = _manifest(tmp_path / "out")
    assert summary["categories"] == ["apartment_building/outdoor", "bedroom"]
    test = m[m.split == "test"]
    # the list gives file i category i % 4: category 1 holds files 2 and 6, category 2 files 3 and 7
    assert sorted(test.source) == [f"val_256/Places365_val_{i:08d}.jpg" for i in (2, 3, 6, 7)]
    assert set(test.category[test.source.str.endswith(("2.jpg", "6.jpg"))]) == {"apartment_building/outdoor"}
    assert set(m.source[m.split == "train"].str.rsplit("/", n=1).str[0]) == {
        "data_256/a/apartment_building/outdoor", "data_256/b/bedroom"}


def test_places_short_category_warns_and_bad_files_are_replaced(tmp_path, capsys):
    root = _places_folders(tmp_path / "places")
    (root / "train" / "canyon" / "00000004.jpg").unlink()
    (root / "train" / "canyon" / "00000003.jpg").unlink()
    for i in range(2):  # bad files in airfield: the draw moves on to the next usable ones
        (root / "train" / "airfield" / f"bad{i}.jpg").write_bytes(b"junk")
    cfg = _places("places2_gdn", root, categories=["airfield", "canyon"], train_per_category=4)
    summary = prepare(cfg, tmp_path / "out")
    out = capsys.readouterr().out
    assert summary["skipped"] >= 1 and summary["per_category"]["airfield"]["train"] == 4  # topped up
    assert summary["per_category"]["canyon"]["train"] == 3
    assert "warning: places2 category canyon: only 3 usable train images" in out
    m = _manifest(tmp_path / "out")
    assert not m.source.str.contains("bad").any()


def test_places_preset_counts_and_category_errors(tmp_path):
    root = _places_folders(tmp_path / "places")
    with pytest.raises(ValueError, match=f"data.categories_count: places2_gdn uses {PAPER_CATEGORIES} categories"):
        prepare(_places("places2_gdn", root), tmp_path / "out")
    with pytest.raises(ValueError, match="data.categories_count: places2_lgnet uses 20"):
        prepare(_places("places2_lgnet", root), tmp_path / "out")
    with pytest.raises(ValueError, match=r"data.categories: \['volcano'\] have no train images"):
        prepare(_places("places2_gdn", root, categories=["volcano", "airfield"]), tmp_path / "out")
    with pytest.raises(ValueError, match="data.categories: .* names a category twice"):
        prepare(_places("places2_gdn", root, categories=["a/airfield", "airfield"]), tmp_path / "out")


def test_places_malformed_val_list_names_the_file_and_line(tmp_path):
    root = _places_official(tmp_path / "places365")
    (root / "places365_val.txt").write_text("Places365_val_00000001.jpg 0\nPlaces365_val_00000002.jpg airfield\n")
    with pytest.raises(ValueError, match="places365_val.txt line 2"):
        prepare(_places("places2_gdn", root, categories_count=1), tmp_path / "out")
    (root / "categories_places365.txt").unlink()
    with pytest.raises(FileNotFoundError, match="data.folder: .*categories_places365.txt is missing"):
        prepare(_places("places2_gdn", root, categories_count=1), tmp_path / "out")


@pytest.mark.parametrize("path, expected", [
    ("/a/airfield", "airfield"), ("a/apartment_building/outdoor", "apartment_building/outdoor"),
    ("airfield", "airfield"), ("apartment_building/outdoor", "apartment_building/outdoor"),
])
def test_places_category_names_agree(path, expected):
    assert places_category(path) == expected


# -- Paris StreetView -------------------------------------------------------------------------------------

@pytest.mark.parametrize("train_dir, test_dir", [("paris_train_original", "paris_eval_gt"), ("train", "test")])
def test_paris_uses_the_fixed_split(tmp_path, train_dir, test_dir):
    root = tmp_path / "paris"
    _images(root / train_dir, [f"{i:03d}.png" for i in range(6)], seed=4)
    _images(root / test_dir, [f"{i:03d}_im.png" for i in range(3)], seed=5)
    summary = prepare(DataConfig(dataset="paris", folder=root, image_size=64), tmp_path / "a")
    prepare(DataConfig(dataset="paris", folder=root, image_size=64, seed=7), tmp_path / "b")
    m = _manifest(tmp_path / "a")
    assert m.equals(_manifest(tmp_path / "b"))  # no seed in a fixed split
    assert sorted(m.source[m.split == "test"]) == [f"{test_dir}/{i:03d}_im.png" for i in range(3)]
    assert (summary["train"], summary["test"]) == (6, 3) and _disjoint(m)
    assert any("paris train: 6 usable images, not the papers' 14,900" in w for w in summary["warnings"])


# -- layout errors and params -----------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, make, expected", [
    ("celeba_hq", None, "is not a directory; data.dataset=celeba_hq expects a directory of the 30,000"),
    ("paris", "train", "has none of paris_eval_gt/, test/; data.dataset=paris expects"),
    ("places2_gdn", "val", "has none of train/, data_256/, data_large/; data.dataset=places2_gdn expects"),
    ("places2_lgnet", "train/airfield", "has none of val/, val_256/, val_large/"),
])
def test_missing_folder_or_wrong_layout_names_data_folder(tmp_path, dataset, make, expected):
    root = tmp_path / "data"
    if make:
        _images(root / make, ["x.png"], seed=0)
    with pytest.raises(FileNotFoundError, match="data.folder: ") as err:
        prepare(DataConfig(dataset=dataset, folder=root, image_size=64), tmp_path / "out")
    assert expected in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data, key", [
    ({"dataset": "celeba_hq"}, "data.folder"),
    ({"dataset": "places2_gdn"}, "data.folder"),
    ({"dataset": "celeba_hq", "folder": "/x", "categories": ["airfield"]}, "data.categories"),
    ({"dataset": "places2_gdn", "folder": "/x", "categories": ["airfield", "airfield"]}, "data.categories"),
    ({"dataset": "places2_gdn", "folder": "/x", "categories": ["a"], "categories_count": 2}, "data.categories_count"),
    ({"dataset": "places2_gdn", "folder": "/x", "categories_count": 0}, "data.categories_count"),
    ({"dataset": "places2_gdn", "folder": "/x", "train_per_category": 0}, "data.train_per_category"),
])
def test_dataset_params_name_the_key(data, key):
    with pytest.raises(ParamsError, match=key):
        resolve({"profile": "smoke", "data": data, "variants": {"v": {"framework": "det"}}})


def test_default_resize_is_the_authors_squash_bicubic():
    """LGNet's Resize([S, S], BICUBIC) and PEN-Net's img.resize((w, h)) (BICUBIC since Pillow 7): the whole
    image, aspect ratio not kept; centre_crop is the switch."""
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    cfg = DataConfig()
    assert (cfg.resize, cfg.resample) == ("squash", "bicubic")
    want = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.BICUBIC))
    assert np.array_equal(to_square(rgb, 32, cfg.resize, cfg.resample), want)
    crop = np.asarray(Image.fromarray(rgb[:, 8:48]).resize((32, 32), Image.BICUBIC))
    assert np.array_equal(to_square(rgb, 32, "centre_crop", "bicubic"), crop)


def test_tf1_bilinear_is_gdn_legacy_resize():
    """TF 1.x resize_images (align_corners False, no half-pixel centres): halving takes every other pixel
    from the top-left, with no antialiasing; doubling interpolates between neighbours and repeats the edge."""
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.array_equal(resize_tf1_bilinear(rgb, 8), rgb[::2, ::2])
    up = resize_tf1_bilinear(rgb, 32).astype(int)
    assert np.array_equal(up[::2, ::2], rgb)
    mid = np.round((rgb[0, 0].astype(float) + rgb[0, 1]) / 2)
    assert np.array_equal(up[0, 1], mid) and np.array_equal(up[0, -1], rgb[0, -1])


def test_resize_switch_reaches_prepare(tmp_path):
    src = tmp_path / "photos"
    _images(src, [f"{i}.png" for i in range(10)], seed=3)
    out = {}
    for resize in ("squash", "centre_crop"):
        prepare(DataConfig(dataset="folder", folder=src, image_size=64, resize=resize), tmp_path / resize)
        out[resize] = np.load(tmp_path / resize / "train.npy")
    assert not np.array_equal(out["squash"], out["centre_crop"])
