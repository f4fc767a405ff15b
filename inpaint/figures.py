"""The report's pictures (matplotlib, Agg): the qualitative comparison of the papers' Fig. 4, the detector
heat maps of GDN's Fig. 7, and each metric against the hole ratio.

The comparisons use a few fixed test pairs, the first recorded pair of four bins from small to large holes,
so that every report shows the same inputs whatever variants exist.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

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
# 20 colours x 4 line styles x 6 markers: every one of a dozen or more variants is told apart in print too
COLOURS = plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]
LINES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
HEAT = "viridis"  # perceptually uniform: 0.5 does not look like a plateau of green
DPI = 120


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


def style(i: int) -> dict:
    """The i-th line's colour, line style and marker: the first 20 differ in colour, and colour, style and
    marker together repeat only after 60 lines."""
    return {"color": COLOURS[i % len(COLOURS)], "linestyle": LINES[i % len(LINES)], "marker": MARKERS[i % len(MARKERS)]}


def image_grid(cells: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str], path: Path) -> Path:
    """A grid of pictures: H x W x 3 uint8 shown as is, H x W in [0, 1] as a heat map on a fixed 0-1 scale
    with its colour bar (0 = the detector sees a real pixel, 1 = a hole)."""
    rows, cols = len(cells), len(col_labels)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols + 0.8, 2.4 * rows + 0.4), squeeze=False,
                             layout="constrained")
    heat = None
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            ax = axes[r][c]
            if cell.ndim == 2:
                heat = ax.imshow(cell, cmap=HEAT, vmin=0, vmax=1)
            else:
                ax.imshow(cell)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=11)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=11)
    if heat is not None:
        bar = fig.colorbar(heat, ax=axes, shrink=0.6, pad=0.01)
        bar.set_label("hole probability (0 = real, 1 = hole)", fontsize=10)
    return _save(fig, path)


@torch.no_grad()
def comparison(generators: dict[str, torch.nn.Module], image: torch.Tensor, mask: torch.Tensor,
               pair_labels: list[str], path: Path) -> Path:
    """Fig. 4, one row per method (masked input, each variant's or baseline's composite, ground truth) and one
    column per test pair (`pair_labels`): a dozen variants make the figure taller, never too wide to read."""
    rows = [to_uint8(masked_input(image, mask))] + [to_uint8(composites(g, image, mask))
                                                    for g in generators.values()] + [to_uint8(image)]
    return image_grid([list(row) for row in rows], ["input", *generators, "ground truth"], pair_labels, path)


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
    """Rows (variant, bin) with every metric and its interval bounds: the CSV behind the line plots.
    A baseline row (kind 'baseline') is named by its label."""
    rows = []
    for _, run in runs.iterrows():
        name = f"{run.label} (baseline)" if run.get("kind") == "baseline" else run.variant
        for b, (lo, hi) in enumerate(bins.BINS):
            row = {"variant": name, "kind": run.get("kind", "ours"), "bin": b, "hole_ratio_bin": bins.percent_label(b),
                   "hole_ratio": (lo + hi) / 2}
            for m in PLOTTED:
                for suffix in ("", "_ci_low", "_ci_high"):
                    row[f"{m}{suffix}"] = run.get(f"{m}{suffix}/{bins.key(b)}", np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def _ratio_axis(ax) -> None:
    ax.set_xticks([(lo + hi) / 2 for lo, hi in bins.BINS], [bins.percent_label(b) for b in range(len(bins.BINS))])
    ax.set_xlabel("hole ratio")
    ax.grid(alpha=0.3)


def metric_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per metric: one line per variant (baselines grey), the bootstrap 95% interval as error bars
    where it exists, the legend beside the axes."""
    written = []
    names = list(dict.fromkeys(frame.variant))
    baselines = list(dict.fromkeys(frame.variant[frame.kind == "baseline"]))
    for m, label in PLOTTED.items():
        if frame[m].isna().all():
            continue
        fig, ax = plt.subplots(figsize=(9, 5))
        for i, variant in enumerate(names):
            rows = frame[frame.variant == variant]
            err = np.abs(np.stack([rows[m] - rows[f"{m}_ci_low"], rows[f"{m}_ci_high"] - rows[m]]))
            if variant in baselines:  # greys, dotted: anchors, not competitors
                k = baselines.index(variant)
                look = {"color": str(0.2 + 0.25 * (k % 3)), "linestyle": ":", "marker": MARKERS[-1 - k % len(MARKERS)]}
            else:
                look = style(i)
            ax.errorbar(rows.hole_ratio, rows[m], yerr=None if np.isnan(err).all() else err, capsize=2,
                        label=variant, markersize=4, **look)
        _ratio_axis(ax)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per hole ratio" + (" (95% intervals)" if m in ("l1", "psnr", "ssim", "lpips") else ""))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        written.append(_save(fig, out_dir / f"{m}_vs_ratio.png"))
    return written


def loss_curves(curves: pd.DataFrame, path: Path) -> Path:
    """Every variant's generator loss against the step in one plot (columns step, loss_g, variant)."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (variant, rows) in enumerate(curves.groupby("variant", sort=False)):
        ax.plot(rows.step, rows.loss_g, label=variant, markersize=3, **style(i))
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("generator loss (loss_g)")
    ax.set_title("Training loss of every variant")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return _save(fig, path)


def run_curves(results: dict[str, float], title: str = ""):
    """One run's PSNR, SSIM and l1 against the hole ratio with their 95% intervals (a matplotlib Figure)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    if title:
        fig.suptitle(title)
    x = [(lo + hi) / 2 for lo, hi in bins.BINS]
    for ax, m in zip(axes, ("psnr", "ssim", "l1")):
        y = np.array([results.get(f"{m}/{bins.key(b)}", np.nan) for b in range(len(bins.BINS))])
        lo, hi = (np.array([results.get(f"{m}_ci_{s}/{bins.key(b)}", np.nan) for b in range(len(bins.BINS))])
                  for s in ("low", "high"))
        ax.plot(x, y, marker="o", color=COLOURS[0])
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            ax.fill_between(x, lo, hi, alpha=0.25, color=COLOURS[0], label="95% interval")
            ax.legend(fontsize=8)
        _ratio_axis(ax)
        ax.set_title(PLOTTED[m])
    fig.tight_layout()
    return fig


def log_figure(client, run_id: str, fig, artifact_file: str) -> None:
    client.log_figure(run_id, fig, artifact_file)
    plt.close(fig)


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path
