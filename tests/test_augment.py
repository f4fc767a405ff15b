"""Augmentation: each framework's default is its authors' data loader, on a seeded batch."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from inpaint.config import resolve
from inpaint.variants.base import Augment
from inpaint.data.augment import augment_image, augment_mask
from inpaint.data.pairs import TrainPairs

VARIANTS = {"gdn": {"framework": "det"}, "lgnet": {"framework": "lgnet"}, "pen": {"framework": "pen"}}


def defaults() -> dict[str, Augment]:
    params = resolve({"profile": "smoke", "variants": VARIANTS})
    return {name: v.augment for name, v in params.variants.items()}


def _asymmetric(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """An image and a mask that a horizontal flip changes."""
    rgb = np.zeros((n, n, 3), np.uint8)
    rgb[:, : n // 4] = 200
    mask = np.zeros((n, n), np.uint8)
    mask[4:8, 1:5] = 1
    return rgb, mask


def _flips(cfg: Augment, draws: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rgb, mask = _asymmetric()
    img_flip, mask_flip = [], []
    for k in range(draws):
        rng = np.random.default_rng([3, k])
        img_flip.append(augment_image(rgb, cfg, rng)[0, -1, 0] == 200)
        mask_flip.append(augment_mask(mask, cfg, rng)[4:8, -5:-1].all())
    return np.array(img_flip), np.array(mask_flip)


def test_gdn_default_leaves_pairs_untouched():
    rgb, mask = _asymmetric()
    cfg = defaults()["gdn"]
    for k in range(20):
        rng = np.random.default_rng(k)
        assert np.array_equal(augment_image(rgb, cfg, rng), rgb)
        assert np.array_equal(augment_mask(mask, cfg, rng), mask)


@pytest.mark.parametrize("family", ["lgnet", "pen"])
def test_flip_probability_is_one_half_for_image_and_mask_independently(family):
    cfg = defaults()[family]
    if family == "pen":  # the flip alone: rotation and dilation would move the test's hole
        cfg = cfg.model_copy(update={"mask_rotate": 0, "mask_dilate": 0, "color_jitter": 0.0})
    img, mask = _flips(cfg)
    assert abs(img.mean() - 0.5) < 0.04 and abs(mask.mean() - 0.5) < 0.04
    assert abs((img & mask).mean() - 0.25) < 0.04  # two independent RandomHorizontalFlip calls


def test_lgnet_default_is_flip_only():
    cfg = defaults()["lgnet"]
    rgb, mask = _asymmetric()
    for k in range(20):
        rng = np.random.default_rng(k)
        out = augment_image(rgb, cfg, rng)
        assert np.array_equal(out, rgb) or np.array_equal(out, rgb[:, ::-1])
        m = augment_mask(mask, cfg, rng)
        assert np.array_equal(m, mask) or np.array_equal(m, mask[:, ::-1])


def test_pen_mask_transform_is_the_authors_pil_pipeline():
    """flip (p 0.5), rotate(randint(0, 45), expand=True), MaxFilter(3), NEAREST resize back: replayed by hand
    with the same draws."""
    cfg = defaults()["pen"]
    assert (cfg.mask_rotate, cfg.mask_dilate, cfg.mask_flip) == (45, 3, 0.5)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 10:14] = 1
    angles = set()
    for k in range(30):
        rng, replay = np.random.default_rng([5, k]), np.random.default_rng([5, k])
        got = augment_mask(mask, cfg, rng)
        pil = Image.fromarray(mask * 255)
        if replay.random() < 0.5:
            pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        angle = int(replay.integers(0, 46))
        angles.add(angle)
        pil = pil.rotate(angle, expand=True).filter(ImageFilter.MaxFilter(3)).resize((32, 32), Image.NEAREST)
        assert np.array_equal(got, (np.asarray(pil) > 127).astype(np.uint8))
        assert set(np.unique(got)) <= {0, 1}
    assert min(angles) >= 0 and max(angles) <= 45 and len(angles) > 10
    unrotated = cfg.model_copy(update={"mask_rotate": 0, "mask_flip": 0.0})
    assert augment_mask(mask, unrotated, np.random.default_rng(0)).sum() == 14 * 6  # 12x4 hole dilated by 1 px


def test_pen_colour_jitter_stays_within_five_percent():
    cfg = defaults()["pen"].model_copy(update={"image_flip": 0.0})
    rgb = np.random.default_rng(0).integers(60, 200, (16, 16, 3), dtype=np.uint8)
    ratios = []
    for k in range(50):
        out = augment_image(rgb, cfg, np.random.default_rng(k)).astype(float)
        ratios.append(out.mean() / rgb.mean())
    ratios = np.array(ratios)
    assert ratios.std() > 0.005  # it does jitter
    assert np.all(np.abs(ratios - 1) < 0.12)  # brightness x [0.95, 1.05], contrast / saturation / hue 5 %


def test_train_pairs_are_seeded_and_augmented():
    images = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    masks = [np.eye(16, dtype=np.uint8)[:, ::-1].copy()] * 4
    pen = defaults()["pen"]
    a, b = TrainPairs(images, masks, 10, pen), TrainPairs(images, masks, 10, pen)
    for i in range(6):
        torch.testing.assert_close(a[i][0], b[i][0])
        torch.testing.assert_close(a[i][1], b[i][1])
    plain = TrainPairs(images, masks, 10)
    assert any(not torch.equal(a[i][1], plain[i][1]) for i in range(6))
    assert all(torch.equal(plain[i][0], torch.from_numpy(images[i]).permute(2, 0, 1).float() / 255) for i in range(6))
