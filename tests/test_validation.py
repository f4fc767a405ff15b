"""Tune's validation split: held out of the training images by whole source photo, seeded."""
import numpy as np
import pandas as pd
import pytest

from inpaint.training.validation import Validation, held_out


def _manifest(photos: list[str], crops: int) -> pd.DataFrame:
    sources = [p for p in photos for _ in range(crops)]
    return pd.DataFrame({"split": "train", "index": range(len(sources)), "source": sources})


def test_no_validation_image_shares_a_source_photo_with_a_training_image():
    manifest = _manifest([f"cat{i % 3}/photo{i}.jpg" for i in range(8)], crops=4)  # 32 crops of 8 photos
    images = np.arange(32, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    masks = np.zeros((5, 4, 4), np.uint8)
    v = Validation.from_config(images, manifest, masks, {"images": 6, "seed": 7, "every": 2})
    held = sorted(set(range(32)) - set(v.train_index))
    assert len(held) == 8  # 6 asked for: two whole photos of 4 crops
    assert set(manifest.source[held]).isdisjoint(set(manifest.source[v.train_index]))
    assert [int(v.pairs[k][0][0, 0, 0] * 255) for k in range(len(held))] == held  # the held-out images themselves
    again = Validation.from_config(images, manifest, masks, {"images": 6, "seed": 7, "every": 2})
    assert list(again.train_index) == list(v.train_index)  # seeded
    other = Validation.from_config(images, manifest, masks, {"images": 6, "seed": 8, "every": 2})
    assert list(other.train_index) != list(v.train_index)


def test_the_held_out_photos_are_drawn_not_the_last_ones():
    sources = pd.Series([f"cat{i // 10}/p{i}.jpg" for i in range(40)])  # 4 categories in order, one image each
    chosen = held_out(sources, images=8, seed=0)
    assert chosen.sum() == 8
    assert len({s.split("/")[0] for s in sources[chosen]}) > 1  # not the last category alone


def test_holding_out_every_photo_is_refused():
    sources = pd.Series(["a.jpg"] * 3 + ["b.jpg"] * 3)
    with pytest.raises(ValueError, match="tune.validation.images=4 leaves no training image"):
        held_out(sources, images=4, seed=1)
