"""The `masks:` section of params.yaml (docs/protocol.md section 2), validated once at the edge."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inpaint.bins import BINS


class MaskSettings(BaseModel):
    """How the training and test mask sets are made. The defaults suit the `smoke` profile (image_size 64).

    Recommended per profile (masks: section of profiles/<profile>.yaml):
        ci     (image_size 64):  train_per_bin 32,    test_per_bin 8,    workers 1   (stage ~4 s)
        smoke  (image_size 64):  train_per_bin 1000,  test_per_bin 50,   workers 2   (stage ~12 s)
        paper  (image_size 256): train_per_bin 30000, test_per_bin 2000, workers 2   (~3-4 min on 2 cores),
               test_source liu + liu_dir when Liu et al.'s masks are on disk

    seed / test_seed: the generators of training and test candidates (mask i's draws come only from
        (seed, split, i)). category_seed: the train/test split of stroke categories (QD-IMD used 0).
    train_per_bin / test_per_bin: masks per hole-ratio bin (GDN: 30,000 train; Liu et al.: 2,000 test).
    stroke_source: "procedural" (offline default) or "quickdraw" (quickdraw_dir = folder of simplified
        .ndjson files, one per category; drawings_per_category first lines are read from each, QD-IMD: 1000).
    erosion: "code" = k uniform in 14..27 as the authors' code behaves; "ratio" = the ratio-dependent range the
        code meant (inpaint/masks/process.py).
    margin_bins: the bins whose masks get GDN's 23 px hole-free border (scaled to the working size).
    steer: candidates made for a short bin draw their stroke count from N(mean of that bin, 2) instead of
        QD-IMD's N(4, 2), so the sparse high-ratio bins fill in bounded time; False keeps the recipe's
        distribution for every bin (slow for (0.5, 0.6]: about 1.6 % of plain candidates land there).
    resize: below 256, "nearest" runs the 256 recipe and resizes with nearest neighbour; "scale" draws at the
        working size with every length scaled by size / 256.
    test_source: "generated" (test categories, test_seed) or "liu" (liu_dir = Liu et al.'s irregular mask
        PNGs, hole = white, resized with nearest, binned by the recomputed ratio, first test_per_bin per bin
        in sorted path order).
    workers: generation processes (spawn); 1 runs in the calling process, and so does any run of fewer than
        6,000 masks (starting workers costs 1-3 s). The files written do not depend on it.
    shard_size: masks per shard file.
    max_candidates_factor: give up (with an error naming the short bins) after this many candidates per
        requested mask, so a setting that cannot fill a bin fails in bounded time instead of running forever.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    test_seed: int = 1
    category_seed: int = 0
    train_per_bin: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    test_per_bin: Annotated[int, Field(ge=1, le=100_000)] = 50
    stroke_source: Literal["procedural", "quickdraw"] = "procedural"
    quickdraw_dir: Path | None = None
    drawings_per_category: Annotated[int, Field(ge=1)] = 1000
    erosion: Literal["code", "ratio"] = "code"
    margin_bins: tuple[int, ...] = (0, 1)
    steer: bool = True
    resize: Literal["nearest", "scale"] = "nearest"
    test_source: Literal["generated", "liu"] = "generated"
    liu_dir: Path | None = None
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    shard_size: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    max_candidates_factor: Annotated[float, Field(gt=1, le=10_000)] = 40.0

    @field_validator("margin_bins")
    @classmethod
    def _valid_bins(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [b for b in v if not 0 <= b < len(BINS)]
        if bad:
            raise ValueError(f"bin indices must be in 0..{len(BINS) - 1} (inpaint/bins.py), got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"bin indices must not repeat, got {list(v)}")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _dirs_given(self):
        if self.stroke_source == "quickdraw" and self.quickdraw_dir is None:
            raise ValueError("masks.quickdraw_dir: stroke_source 'quickdraw' needs quickdraw_dir, a folder of "
                             "Quick Draw simplified .ndjson files (one per category)")
        if self.test_source == "liu" and self.liu_dir is None:
            raise ValueError("masks.liu_dir: test_source 'liu' needs liu_dir, the folder of Liu et al.'s "
                             "irregular mask PNGs (hole = white)")
        return self
