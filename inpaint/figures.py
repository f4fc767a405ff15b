"""The report's pictures (matplotlib, Agg): the qualitative comparison of the papers' Fig. 4, the detector
heat maps of GDN's Fig. 7, and each metric against the hole ratio.

The comparisons use a few fixed test pairs, the first recorded pair of four bins from small to large holes,
so that every report shows the same inputs whatever variants exist.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from inpaint import bins  # noqa: E402
from inpaint.data.pairs import mask_tensor, to_tensor  # noqa: E402
from inpaint.evaluate import composites  # noqa: E402
from inpaint.frameworks.base import masked_input  # noqa: E402
from inpaint.io import atomic_path  # noqa: E402
from inpaint.metrics import to_uint8  # noqa: E402
from inpaint.models.gdn import hole_probability  # noqa: E402

FIGURE_BINS = (0, 2, 4, 5)  # rows of the comparisons: small to large holes
PLOTTED = {"l1": "l1 (%)", "psnr": "PSNR (dB)", "ssim": "SSIM", "fid": "FID", "kid": "KID", "lpips": "LPIPS"}


def figure_pairs(pairs: pd.DataFrame) -> list[tuple[int, int, int]]:
    """(bin, image, mask) of the first recorded test pair of each bin in FIGURE_BINS."""
    rows = []
    for b in FIGURE_BINS:
        first = pairs[pairs.bin == b].head(1)
        if first.empty:
            raise ValueError(f"no test pair in bin {bins.label(b)} for the comparison figures")
        rows.append((b, int(first.image.iloc[0]), int(first["mask"].iloc[0])))
    return rows


def load_batch(images: np.ndarray, masks, chosen: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.stack([to_tensor(images[i]) for _, i, _ in chosen]),
            torch.stack([mask_tensor(masks[m]) for _, _, m in chosen]))


def image_grid(cells: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str], path: Path) -> Path:
    """A grid of pictures: H x W x 3 uint8 shown as is, H x W in [0, 1] as a heat map (jet, 0 to 1)."""
    rows, cols = len(cells), len(col_labels)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.8 * rows), squeeze=False)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            ax = axes[r][c]
            ax.imshow(cell, cmap="jet", vmin=0, vmax=1) if cell.ndim == 2 else ax.imshow(cell)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


@torch.no_grad()
def comparison(generators: dict[str, torch.nn.Module], image: torch.Tensor, mask: torch.Tensor,
               row_labels: list[str], path: Path) -> Path:
    """Fig. 4: masked input, each variant's composite, ground truth."""
    columns = [to_uint8(masked_input(image, mask))] + [to_uint8(composites(g, image, mask))
                                                       for g in generators.values()] + [to_uint8(image)]
    cells = [[col[r] for col in columns] for r in range(len(image))]
    return image_grid(cells, row_labels, ["input", *generators, "ground truth"], path)


@torch.no_grad()
def detector_heat_maps(generator: torch.nn.Module, detector: torch.nn.Module, image: torch.Tensor,
                       mask: torch.Tensor, row_labels: list[str], path: Path) -> Path:
    """GDN Fig. 7: the detector's hole probability on the generator's raw output (what it is trained on)
    and on the ground truth (where a good detector finds nothing)."""
    output = generator(masked_input(image, mask), mask)["output"]
    heat_out, heat_gt = (hole_probability(detector(x))[:, 0].numpy() for x in (output, image))
    columns = [to_uint8(masked_input(image, mask)), to_uint8(output), heat_out, to_uint8(image), heat_gt]
    cells = [[col[r] for col in columns] for r in range(len(image))]
    return image_grid(cells, row_labels, ["input", "output", "detector on output", "ground truth",
                                          "detector on ground truth"], path)


def metric_vs_ratio(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows (variant, bin) with every metric and its interval bounds: the CSV behind the line plots."""
    rows = []
    for _, run in runs.iterrows():
        for b, (lo, hi) in enumerate(bins.BINS):
            row = {"variant": run.variant, "bin": b, "hole_ratio_bin": bins.label(b), "hole_ratio": (lo + hi) / 2}
            for m in PLOTTED:
                for suffix in ("", "_ci_low", "_ci_high"):
                    row[f"{m}{suffix}"] = run.get(f"{m}{suffix}/{bins.key(b)}", np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def metric_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per metric: one line per variant, the bootstrap 95% interval as error bars where it exists."""
    written = []
    for m, label in PLOTTED.items():
        if frame[m].isna().all():
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for variant, rows in frame.groupby("variant", sort=True):
            err = np.abs(np.stack([rows[m] - rows[f"{m}_ci_low"], rows[f"{m}_ci_high"] - rows[m]]))
            ax.errorbar(rows.hole_ratio, rows[m], yerr=None if np.isnan(err).all() else err, marker="o",
                        capsize=2, label=variant)
        ax.set_xticks([(lo + hi) / 2 for lo, hi in bins.BINS], [bins.percent_label(b) for b in range(len(bins.BINS))])
        ax.set_xlabel("hole ratio")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out_dir / f"{m}_vs_ratio.png"))
    return written


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
