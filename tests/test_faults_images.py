"""Unusual image files: 16-bit, palette, grayscale, transparent and EXIF-rotated photos decode as they
display, in prepare and in fill alike; upscaling is reported per file; fill refuses an all-white mask and
says in one line what is wrong with an unreadable photo or model.pt."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import untrained_model_file
from inpaint.config import DataConfig
from inpaint.data.prepare import prepare
from inpaint.data.sources import decode
from inpaint.evaluation.fill import FillError, fill

ORIENTATION = 0x0112


def test_a_16_bit_png_keeps_its_tones(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb, notes = decode(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    assert np.abs(rgb[..., 0].astype(int) - np.round(ramp / 257)).max() <= 1  # not clipped to white
    assert notes == ["16-bit samples scaled to 8 bit"]


def test_palette_grayscale_and_transparency(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :15] = (200, 30, 30)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert np.array_equal(decode(tmp_path / "p.png")[0][0, 0], (200, 30, 30))
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    assert np.array_equal(decode(tmp_path / "g.png")[0][0, 0], (200, 200, 200))
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    rgba[:, 15:, 3] = 0  # the right half transparent (its colour black, shown as white)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out, notes = decode(tmp_path / "a.png")
    assert np.array_equal(out[0, 0], (200, 30, 30)) and np.array_equal(out[0, 20], (255, 255, 255))
    assert notes == ["transparent pixels composited on white"]


def _rotated(path, rgb):
    """`rgb` stored sideways with an EXIF tag saying 'rotate 90 degrees clockwise to display'."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(np.rot90(rgb, 1)).save(path, exif=exif)


def test_exif_orientation_is_applied_by_prepare_and_upscaling_is_reported(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(src / f"ok{i}.png")
    tall = np.zeros((120, 60, 3), np.uint8)
    tall[:60] = 255  # displayed: white top half, black bottom half
    _rotated(src / "rotated.jpg", tall)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(src / "small.png")
    cfg = DataConfig(dataset="folder", folder=src, image_size=64, test_fraction=0.3, min_size=32)
    summary = prepare(cfg, tmp_path / "out")
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert "warning: small.png: 50x40 upscaled to data.image_size=64" in err
    assert "small.png: 50x40 upscaled to data.image_size=64" in summary["warnings"]
    assert "rotated.jpg: 60x120 upscaled" in err  # its displayed size, not the stored 120x60
    import pandas as pd

    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    row = manifest[manifest.source == "rotated.jpg"].iloc[0]
    image = np.load(tmp_path / "out" / f"{row.split}.npy")[row["index"]]
    assert image[:20].mean() > 200 and image[-20:].mean() < 50  # upright: white on top


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return untrained_model_file(tmp_path_factory.mktemp("model") / "model.pt")


def _photo_and_mask(tmp_path, hole_value=255, all_hole=False):
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    m = np.full((40, 50), 255 if all_hole else 0, np.uint8)
    m[10:20, 10:20] = hole_value
    Image.fromarray(m).save(tmp_path / "mask.png")
    return tmp_path / "photo.png", tmp_path / "mask.png"


def test_fill_refuses_an_all_white_mask(model, tmp_path):
    photo, mask = _photo_and_mask(tmp_path, all_hole=True)
    with pytest.raises(FillError, match="all white, nothing of the photo left"):
        fill(str(model), photo, mask, tmp_path / "r.png")


def test_fill_names_an_undecodable_photo_and_an_unusable_model(model, tmp_path):
    photo, mask = _photo_and_mask(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(FillError, match=rf"{broken}: not a decodable image"):
        fill(str(model), broken, mask, tmp_path / "r.png")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(FillError, match=rf"{truncated}: not a usable model.pt .*not a readable checkpoint"):
        fill(str(truncated), photo, mask, tmp_path / "r.png")
    wrong = tmp_path / "wrong.pt"
    state = torch.load(model, weights_only=True)
    state["meta"]["generator"] = "pennet"
    torch.save(state, wrong)
    with pytest.raises(FillError, match=rf"{wrong}: not a usable model.pt"):
        fill(str(wrong), photo, mask, tmp_path / "r.png")


def test_fill_reads_the_photo_as_displayed(model, tmp_path):
    """A sideways-stored photo with its EXIF tag: the mask drawn on the displayed photo fits."""
    tall = np.full((60, 30, 3), 90, np.uint8)
    _rotated(tmp_path / "photo.jpg", tall)
    m = np.zeros((60, 30), np.uint8)
    m[5:15, 5:15] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    info = fill(str(model), tmp_path / "photo.jpg", tmp_path / "mask.png", tmp_path / "r.png")
    assert info["size"] == [30, 60]
