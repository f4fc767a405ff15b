"""The mask subsystem (docs/protocol.md section 2): recipe, bins, margin, determinism, stores, leak check, Liu
import."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from inpaint.bins import BINS, bin_of
from inpaint.masks import MaskSettings, MaskStore, build_mask_sets, check_no_leak, write_mask_pictures
from inpaint.masks import generate
from inpaint.masks.process import (CROP, draw_candidate, margin_px, render_literal, render_mask,
                                   thickness_for)
from inpaint.masks.store import MaskStoreError, write_store
from inpaint.masks.strokes import ProceduralStrokes, QuickDrawStrokes, StrokeSourceError, quickdraw_categories

QUICKDRAW = Path(__file__).parent / "data" / "quickdraw"
SMALL = dict(train_per_bin=24, test_per_bin=6, workers=1)


def _files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("masks32")
    summary = build_mask_sets(MaskSettings(**SMALL, shard_size=50), 32, out)
    json.dumps(summary)  # the stage logs it
    assert summary["train"]["per_bin"] == {f"bin_{k}": 24 for k in
                                           ("0p01_0p1", "0p1_0p2", "0p2_0p3", "0p3_0p4", "0p4_0p5", "0p5_0p6")}
    return out


# -- the recipe ------------------------------------------------------------------------------------------

def test_every_ratio_lies_in_its_bin(built):
    for split, per_bin in (("train", 24), ("test", 6)):
        store = MaskStore(built / split)
        assert len(store) == per_bin * len(BINS)
        for b in range(len(BINS)):
            assert len(store.indices_in_bin(b)) == per_bin
        for i in range(len(store)):
            m = store[i]
            assert m.dtype == np.uint8 and m.shape == (32, 32) and set(np.unique(m)) <= {0, 1}
            ratio = m.sum() / m.size
            assert ratio == store.manifest.at[i, "ratio"]
            assert bin_of(ratio) == store.manifest.at[i, "bin"]
            lo, hi = BINS[store.manifest.at[i, "bin"]]
            assert lo < ratio <= hi


@pytest.mark.parametrize("size,resize", [(32, "nearest"), (64, "scale"), (256, "nearest")])
def test_margin_leaves_border_free(size, resize):
    src = ProceduralStrokes("train")
    mp = margin_px(size)
    assert mp == round(23 * size / 256)
    seen = 0
    for i in range(40):
        c = draw_candidate(np.random.default_rng([3, i]), src, target=0, margin_bins={0, 1}, steer=True,
                           erosion="code")
        assert c.margin
        m = render_mask(c, size, resize)
        seen += int(m.any())
        assert not m[:mp].any() and not m[-mp:].any() and not m[:, :mp].any() and not m[:, -mp:].any()
    assert seen > 10


def test_margin_bins_in_built_set(built):
    store = MaskStore(built / "train")
    mp = margin_px(32)
    for b in range(len(BINS)):
        border = [store[int(i)].copy() for i in store.indices_in_bin(b)]
        touched = sum(int(m[:mp].any() or m[-mp:].any() or m[:, :mp].any() or m[:, -mp:].any()) for m in border)
        if b in (0, 1):
            assert touched == 0
        else:
            assert touched > 0  # no margin outside margin_bins: strokes reach the border


def test_fast_path_matches_literal_processing():
    """The composed-affine renderer agrees with the authors' step-by-step processing on the same draws."""
    src = ProceduralStrokes("train")
    ious = []
    for i in range(30):
        c = draw_candidate(np.random.default_rng([11, i]), src, target=3, margin_bins=(), steer=True,
                           erosion="code")
        fast, literal = render_mask(c, CROP), render_literal(c, CROP)
        union = (fast | literal).sum()
        if union:
            ious.append((fast & literal).sum() / union)
            assert abs(fast.mean() - literal.mean()) < 0.03
    assert len(ious) > 15 and np.mean(ious) > 0.9 and min(ious) > 0.8


def test_stroke_widths_are_drawn_as_asked():
    for width in (5, 7, 9, 15, 23):
        img = np.zeros((64, 64), np.uint8)
        cv2.line(img, (8, 32), (56, 32), 1, thickness_for(width))
        assert img[:, 32].sum() == width


def test_erosion_modes():
    src = ProceduralStrokes("train")
    ks = [draw_candidate(np.random.default_rng([0, i]), src, target=2, margin_bins=(), steer=True,
                         erosion="code").kernel for i in range(200)]
    assert min(ks) == 14 and max(ks) == 27
    c = draw_candidate(np.random.default_rng([0, 1]), src, target=2, margin_bins=(), steer=True, erosion="ratio")
    p = c.raw_hole_pct
    lo = int(15 - p) if p < 14 else 1
    hi = max(lo, int(28 - p) if p < 28 else 1)
    assert 0 < p < 100 and lo <= c.kernel <= hi


# -- stroke sources --------------------------------------------------------------------------------------

def test_quickdraw_ndjson_parses_splits_and_renders():
    halves = quickdraw_categories(QUICKDRAW, 0)
    assert len(halves["train"]) == len(halves["test"]) == 2
    assert not set(halves["train"]) & set(halves["test"])
    train = QuickDrawStrokes(QUICKDRAW, "train")
    lines = sum(len(p.read_text().splitlines()) for p in halves["train"])
    assert len(train.pool) == lines  # one stroke per drawing
    assert train.pool.points.min() >= 0 and train.pool.points.max() <= 255
    c = draw_candidate(np.random.default_rng([0, 0]), train, target=3, margin_bins=(), steer=True, erosion="code")
    assert c.points.shape[0] == c.counts.sum() and len(c.widths) == len(c.counts)
    m = render_mask(c, 64)
    assert m.shape == (64, 64) and set(np.unique(m)) <= {0, 1}


def test_quickdraw_build(tmp_path):
    s = MaskSettings(**SMALL, stroke_source="quickdraw", quickdraw_dir=QUICKDRAW)
    build_mask_sets(s, 32, tmp_path)
    store = MaskStore(tmp_path / "train")
    assert store.manifest["source"].str.startswith("quickdraw:train:").all()
    assert MaskStore(tmp_path / "test").manifest["source"].str.startswith("quickdraw:test:").all()


def test_malformed_ndjson_names_file_and_line(tmp_path):
    for p in QUICKDRAW.glob("*.ndjson"):
        shutil.copy(p, tmp_path / p.name)
    bad = tmp_path / "aardvark.ndjson"
    bad.write_text('{"word": "a", "drawing": [[[1, 2], [3, 4]]]}\n{"word": "a", "drawing": [[[1, 2], [3, 4]]]}\n'
                   '{"word": "a", "drawing": [[[1, 2, 3], [3, 4]]}\n')
    with pytest.raises(StrokeSourceError, match=r"aardvark\.ndjson:3: not valid JSON"):
        for split in ("train", "test"):
            QuickDrawStrokes(tmp_path, split)
    bad.write_text('{"word": "a", "drawing": [[[1, 2, 3], [3, 4]]]}\n')
    with pytest.raises(StrokeSourceError, match=r"aardvark\.ndjson:1: stroke 0 has 3 x and 2 y"):
        for split in ("train", "test"):
            QuickDrawStrokes(tmp_path, split)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StrokeSourceError, match="holds 0 .ndjson"):
        QuickDrawStrokes(empty, "train")
    with pytest.raises(StrokeSourceError, match="is not a directory"):
        QuickDrawStrokes(tmp_path / "missing", "train")


def test_procedural_splits_differ():
    a, b = ProceduralStrokes("train"), ProceduralStrokes("test")
    assert len(a.pool) == len(b.pool) == 64_000
    assert not np.array_equal(a.pool.points[:100], b.pool.points[:100])
    assert np.array_equal(a.pool.points, ProceduralStrokes("train").pool.points)  # seeded


# -- determinism -----------------------------------------------------------------------------------------

def test_one_and_two_workers_write_identical_files(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "PARALLEL_MIN", 0)  # use the process pool even for a tiny set
    one = build_mask_sets(MaskSettings(**{**SMALL, "workers": 1}, shard_size=40), 32, tmp_path / "w1")
    two = build_mask_sets(MaskSettings(**{**SMALL, "workers": 2}, shard_size=40), 32, tmp_path / "w2")
    assert one["workers"] == 1 and two["workers"] == 2
    for split in ("train", "test"):
        a, b = _files(tmp_path / "w1" / split), _files(tmp_path / "w2" / split)
        assert a == b and "manifest.csv" in a and "shard_00000.npy" in a


def test_different_seeds_differ(tmp_path, built):
    build_mask_sets(MaskSettings(**SMALL, seed=5, test_seed=6), 32, tmp_path)
    for split in ("train", "test"):
        h0 = set(MaskStore(built / split).manifest["hash"])
        h5 = set(MaskStore(tmp_path / split).manifest["hash"])
        assert len(h0 & h5) < len(h0) // 4


def test_same_seed_same_masks_regardless_of_quota():
    """Candidate i depends only on (seed, split, i): a mask's content does not depend on the run around it."""
    from inpaint.masks.worker import Job, run_candidates
    job = Job(ProceduralStrokes("train"), "train", 0, 32, (0, 1), True, "code", "nearest")
    targets = np.arange(60) % 6
    full = run_candidates(job, 100, targets)
    part = run_candidates(job, 130, targets[30:])
    keep = full[0] >= 130
    assert np.array_equal(full[0][keep], part[0]) and np.array_equal(full[3][keep], part[3])


# -- store -----------------------------------------------------------------------------------------------

def test_random_access_equals_sequential_decode(built):
    store = MaskStore(built / "train")
    assert store.shard_size == 50 and len(store._paths) == 3
    sequential = []
    for path in sorted((built / "train").glob("shard_*.npy")):
        rows = np.load(path)
        sequential += [np.unpackbits(r, count=32 * 32).reshape(32, 32) for r in rows]
    assert len(sequential) == len(store)
    for i in np.random.default_rng(0).permutation(len(store)):
        assert np.array_equal(store[int(i)], sequential[i])
    assert np.array_equal(store[-1], sequential[-1])
    with pytest.raises(IndexError):
        store[len(store)]
    store.verify()


def test_store_pickles_for_dataloader_workers(built):
    import pickle
    store = MaskStore(built / "train")
    _ = store[0]
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone[5], store[5])


def test_truncated_shard_is_named_and_files_left_intact(built, tmp_path):
    copy = tmp_path / "train"
    shutil.copytree(built / "train", copy)
    shard = copy / "shard_00001.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    before = _files(copy)
    with pytest.raises(MaskStoreError, match=r"shard_00001\.npy: truncated"):
        MaskStore(copy)
    assert _files(copy) == before
    shard.write_bytes(b"garbage")
    with pytest.raises(MaskStoreError, match=r"shard_00001\.npy: not a readable \.npy"):
        MaskStore(copy)
    shard.unlink()
    with pytest.raises(MaskStoreError, match=r"shard_00001\.npy: shard missing"):
        MaskStore(copy)


@pytest.mark.parametrize("corrupt,message", [
    (lambda t: t.replace("index,bin,ratio,hash,source", "index,bin,ratio,source"), "columns"),
    (lambda t: "\n".join(t.splitlines()[:-3]) + "\n", "rows but store.json counts"),
    (lambda t: t.replace("\n5,0,", "\n5,3,", 1), "line 7: ratio .* does not lie in bin 3"),
    (lambda t: t.replace("\n2,0,", "\nxx,0,", 1), "non-numeric"),
    (lambda t: t[: len(t) // 2] + '"unterminated\n' + t[len(t) // 2:], "manifest.csv"),
])
def test_corrupt_manifest_is_named(built, tmp_path, corrupt, message):
    copy = tmp_path / "train"
    shutil.copytree(built / "train", copy)
    manifest = copy / "manifest.csv"
    manifest.write_text(corrupt(manifest.read_text()))
    before = _files(copy)
    with pytest.raises(MaskStoreError, match="manifest.csv") as e:
        MaskStore(copy)
    assert e.match(message)
    assert _files(copy) == before


def test_failed_build_leaves_existing_sets_intact(built, tmp_path):
    out = tmp_path / "masks"
    shutil.copytree(built, out)
    before = {s: _files(out / s) for s in ("train", "test")}
    broken = tmp_path / "qd"
    broken.mkdir()
    (broken / "a.ndjson").write_text('{"drawing": [[[1, 2], [3, 4]]]}\n')
    (broken / "b.ndjson").write_text("not json\n")
    s = MaskSettings(**SMALL, stroke_source="quickdraw", quickdraw_dir=broken)
    with pytest.raises(StrokeSourceError, match=r"b\.ndjson:1"):
        build_mask_sets(s, 32, out)
    assert {s: _files(out / s) for s in ("train", "test")} == before
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]  # no temporary directories left


# -- leak check ------------------------------------------------------------------------------------------

def test_leak_check_passes_on_built_sets_and_fails_on_a_planted_duplicate(built, tmp_path):
    train, test = MaskStore(built / "train"), MaskStore(built / "test")
    check_no_leak(train, test)
    masks = np.stack([test[i] for i in range(len(test))])
    planted = 7
    masks[planted] = train[40]
    bins = test.manifest["bin"].to_numpy().copy()
    bins[planted] = train.manifest.at[40, "bin"]
    write_store(tmp_path / "leaky", masks, bins, [f"x:{i}" for i in range(len(masks))])
    with pytest.raises(ValueError, match=train.manifest.at[40, "hash"]):
        check_no_leak(train, MaskStore(tmp_path / "leaky"))


# -- Liu et al. import -----------------------------------------------------------------------------------

def _liu_folder(directory: Path, ratios: list[float], size: int = 128) -> None:
    directory.mkdir(parents=True)
    for n, r in enumerate(ratios):
        img = np.zeros((size, size), np.uint8)
        rows = int(round(r * size))
        img[:rows, :] = 255  # hole = white
        cv2.imwrite(str(directory / f"{n:05d}.png"), img)


def test_liu_import(tmp_path):
    # 128px masks with hole ratios by construction; three per bin for bins 0-4, two for bin 5, and extras
    ratios = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55] * 2 + [0.07, 0.17, 0.27, 0.37, 0.47] + [0.0, 0.75, 0.09]
    _liu_folder(tmp_path / "liu" / "masks", ratios)
    s = MaskSettings(**{**SMALL, "test_per_bin": 3}, test_source="liu", liu_dir=tmp_path / "liu")
    with pytest.warns(UserWarning, match="fewer than 3"):
        summary = build_mask_sets(s, 32, tmp_path / "out")
    assert summary["test"]["per_bin"]["bin_0p5_0p6"] == 2
    store = MaskStore(tmp_path / "out" / "test")
    assert len(store) == 3 * 5 + 2
    m = store.manifest
    # fixed order: sorted file names, first three per bin; 00017.png (0.09) is a fourth bin-0 mask, left out
    assert list(m[m["bin"] == 0]["source"]) == ["liu:masks/00000.png", "liu:masks/00006.png", "liu:masks/00012.png"]
    for i in range(len(store)):
        mask = store[i]
        assert mask.shape == (32, 32)
        assert bin_of(mask.mean()) == m.at[i, "bin"]
        assert mask[0].all()  # the white rows of the PNG are holes
    (tmp_path / "liu" / "masks" / "00001.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"00001\.png: not a readable image"):
        build_mask_sets(s, 32, tmp_path / "out2")


# -- settings and pictures -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,field", [
    ({"margin_bins": [0, 6]}, "margin_bins"),
    ({"margin_bins": [1, 1]}, "margin_bins"),
    ({"train_per_bin": 0}, "train_per_bin"),
    ({"stroke_source": "quickdraw"}, "quickdraw_dir"),
    ({"test_source": "liu"}, "liu_dir"),
    ({"erosion": "paper"}, "erosion"),
    ({"workrs": 2}, "workrs"),
])
def test_settings_validation(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        MaskSettings(**kwargs)


def test_pictures(built, tmp_path):
    store = MaskStore(built / "train")
    paths = write_mask_pictures(store, tmp_path / "pics")
    assert len(paths) == len(BINS) + 2 and all(p.is_file() for p in paths)
    assert cv2.imread(str(paths[0])) is not None
    csv = (tmp_path / "pics" / "ratio_histogram.csv").read_text().splitlines()
    assert csv[0] == "ratio,count" and sum(int(line.split(",")[1]) for line in csv[1:]) == len(store)
