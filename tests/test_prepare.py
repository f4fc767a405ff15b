"""The prepare stage: deterministic sample crops split by photo; a user folder validated file by file; splits
written straight to disk. The papers' datasets: tests/test_datasets.py."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from inpaint.config import DataConfig
from inpaint.data.prepare import load_split, prepare, to_square
from inpaint.data.presets import sample
from inpaint.data.sources import load_rgb, sample_photos


def test_sample_is_deterministic_and_split_by_photo(tmp_path):
    cfg = DataConfig(dataset="sample", image_size=64, crops_per_photo=3, test_photos=2)
    prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    for split in ("train", "test"):
        assert np.array_equal(np.load(tmp_path / "a" / f"{split}.npy"), np.load(tmp_path / "b" / f"{split}.npy"))
    m = pd.read_csv(tmp_path / "a" / "manifest.csv")
    assert set(m.source[m.split == "train"]).isdisjoint(m.source[m.split == "test"])
    assert (m.split == "test").sum() == 2 * 3
    assert np.load(tmp_path / "a" / "test.npy").shape == (6, 64, 64, 3)


def test_sample_test_split_holds_scene_photographs_only():
    """Whatever the seed, the test photographs are drawn among the colour scene photographs: never the Hubble
    deep field (near black: a mean-colour fill scores almost perfectly there) nor a texture or grey photo."""
    scenes = {p.name for p, scene in sample_photos() if scene}
    assert "hubble_deep_field.jpg" not in scenes and len(scenes) == 8
    for seed in range(20):
        plan = sample(DataConfig(dataset="sample", test_photos=3, seed=seed))
        test = [item.path.name for item in plan.items if item.split == "test"]
        assert len(test) == 3 and set(test) <= scenes
    with pytest.raises(ValueError, match="data.test_photos=9: the sample set has only 8 scene photographs"):
        sample(DataConfig(dataset="sample", test_photos=9))


def test_smoke_test_crops_are_not_near_constant(tmp_path):
    """The default (smoke) split's test crops: every one has visible structure (pixel std above 8 of 255)."""
    cfg = DataConfig(dataset="sample", image_size=64, crops_per_photo=48, test_photos=2)
    prepare(cfg, tmp_path)
    test = np.load(tmp_path / "test.npy").reshape(96, -1).astype(float)
    m = pd.read_csv(tmp_path / "manifest.csv")
    assert sorted(m.source[m.split == "test"].unique()) == ["data/coffee.png", "data/motorcycle_left.png"]
    assert test.std(axis=1).min() > 8


def _photos(folder, count: int, shape: tuple[int, int], seed: int, prefix: str = "") -> np.random.Generator:
    """`count` random RGB PNGs of `shape` in `folder`; returns the generator for further draws."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")
    return rng


def test_folder_reports_and_skips_bad_files(tmp_path, capsys):
    src = tmp_path / "photos"
    rng = _photos(src, 6, (80, 100), seed=0, prefix="ok")
    Image.fromarray(rng.integers(0, 256, (80, 100), dtype=np.uint8)).save(src / "gray.png")  # convertible
    (src / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(src / "tiny.png")
    cfg = DataConfig(dataset="folder", folder=src, image_size=64, test_fraction=0.3, min_size=32)
    summary = prepare(cfg, tmp_path / "out")
    out = capsys.readouterr().out
    assert summary["skipped"] == 2 and summary["train"] + summary["test"] == 7
    assert "broken.jpg" in out and "tiny.png" in out and "2 files skipped" in out
    assert f"skipped {src / 'broken.jpg'}: not a decodable image" in out
    assert summary["skipped_files"] == [line.removeprefix("skipped ") for line in out.splitlines()
                                        if line.startswith("skipped ")]


def test_missing_folder_names_the_param(tmp_path):
    cfg = DataConfig(dataset="folder", folder=tmp_path / "nowhere", image_size=64)
    with pytest.raises(FileNotFoundError, match="data.folder"):
        prepare(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_splits_are_memory_mapped_not_stacked(tmp_path, monkeypatch):
    """At paper scale a split does not fit in RAM (27,000 x 256 x 256 x 3 = 5.3 GB): it is written in place."""
    src = tmp_path / "photos"
    _photos(src, 10, (70, 90), seed=1)
    monkeypatch.setattr(np, "stack", lambda *a, **k: pytest.fail("a split was stacked in memory"))
    prepare(DataConfig(dataset="folder", folder=src, image_size=64), tmp_path / "out")
    train, test = load_split(tmp_path / "out", "train"), load_split(tmp_path / "out", "test")
    assert isinstance(train, np.memmap) and train.shape == (9, 64, 64, 3) and test.shape == (1, 64, 64, 3)
    m = pd.read_csv(tmp_path / "out" / "manifest.csv")
    first = m[(m.split == "train") & (m["index"] == 0)].source.item()
    assert np.array_equal(train[0], to_square(load_rgb(src / first), 64))  # rows match the manifest
