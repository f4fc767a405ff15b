"""The report's pictures (matplotlib, Agg): the qualitative comparison of the papers' Fig. 4, the detector
heat maps of GDN's Fig. 7, and each metric against the hole ratio.

The comparisons use a few fixed test pairs, one of each of four bins from small to large holes: the pair whose
ground truth has the most texture (mean gradient magnitude; a flat sky shows nothing of a fill), so that every
report shows the same inputs whatever variants exist.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import torch

from inpaint import bins
from inpaint.data.pairs import mask_tensor, to_tensor
from inpaint.evaluation import compare, metrics
from inpaint.evaluation.evaluate import composites
from inpaint.evaluation.metrics import to_uint8
from inpaint.frameworks.base import masked_input
from inpaint.models.gdn import hole_probability
from inpaint.plotting import COLOURS, DPI, HEAT, MARKERS, PLOTTED, ratio_axis, save, style

FIGURE_BINS = (0, 2, 4, 5)  # rows of the comparisons: small to large holes


def texture(image: np.ndarray) -> float:
    """Mean gradient magnitude of an H x W x 3 uint8 image: how much a fill has to reproduce."""
    grey = image.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def figure_pairs(pairs: pd.DataFrame, images: np.ndarray | None = None,
                 sources: pd.Series | None = None) -> list[tuple[int, int, int]]:
    """(bin, image, mask) of one recorded test pair of each bin in FIGURE_BINS: with `images`, the pair whose
    image has the most texture among the photos not shown yet in this round (`sources`: test image -> its
    photo; crops of one photo look alike; a new round once every photo is shown), never an image twice if
    avoidable; without `images`, the first recorded."""
    rows, used = [], set()
    photo = (lambda i: sources.iloc[i]) if sources is not None else (lambda i: i)
    for b in FIGURE_BINS:
        candidates = pairs[pairs.bin == b]
        if candidates.empty:
            raise ValueError(f"no test pair in bin {bins.label(b)} for the comparison figures")
        if images is not None:
            photos = candidates.image.map(photo)
            if photos.isin(used).all():
                used.clear()  # every photo shown: a new round
            fresh = candidates[~photos.isin(used) & ~candidates.image.isin([r[1] for r in rows])]
            candidates = fresh if not fresh.empty else candidates
            scores = candidates.image.map(lambda i: texture(images[i]))
            candidates = candidates.loc[[scores.idxmax()]]
        rows.append((b, int(candidates.image.iloc[0]), int(candidates["mask"].iloc[0])))
        used.add(photo(rows[-1][1]))
    return rows


def load_batch(images: np.ndarray, masks, chosen: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.stack([to_tensor(images[i]) for _, i, _ in chosen]),
            torch.stack([mask_tensor(masks[m]) for _, _, m in chosen]))


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
    return save(fig, path)


WIDTH_PX = 1600  # the comparison grid fits a 1600-px window


@torch.no_grad()
def comparison(generators: dict[str, torch.nn.Module], image: torch.Tensor, mask: torch.Tensor,
               pair_labels: list[str], path: Path) -> Path:
    """Fig. 4 as a compact grid, WIDTH_PX wide: one row per test pair (`pair_labels`), the masked input, each
    variant's or baseline's composite with its PSNR against the ground truth underneath, and the ground truth
    side by side."""
    truth = metrics.quantise(image)
    outputs = {name: composites(g, image, mask) for name, g in generators.items()}
    psnr = {name: metrics.psnr_batch(metrics.quantise(out), truth).tolist() for name, out in outputs.items()}
    columns = [("input", to_uint8(masked_input(image, mask)), None),
               *[(name, to_uint8(out), psnr[name]) for name, out in outputs.items()], ("ground truth", to_uint8(image), None)]
    rows, cols = len(image), len(columns)
    cell = WIDTH_PX / DPI / (cols + 0.6)  # inches a picture, the row labels beside them
    fig, axes = plt.subplots(rows, cols, figsize=(cell * (cols + 0.6), cell * 1.32 * rows + 1.1), squeeze=False)
    for c, (name, pictures, scores) in enumerate(columns):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(pictures[r])
            ax.set_xticks([]), ax.set_yticks([])
            if scores is not None:
                ax.set_xlabel(f"{scores[r]:.1f} dB", fontsize=8, labelpad=2)
            if c == 0:
                ax.set_ylabel(pair_labels[r], fontsize=9)
        axes[0][c].set_title(name, fontsize=8, rotation=35, ha="left", va="bottom", x=0.1)
    fig.subplots_adjust(left=0.6 / (cols + 0.6), right=0.995, bottom=0.04, top=1 - 1.0 / (cell * 1.32 * rows + 1.1),
                        wspace=0.06, hspace=0.3)
    return save(fig, path)


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
        ratio_axis(ax)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per hole ratio" + (" (95% intervals)" if m in ("l1", "psnr", "ssim", "lpips") else ""))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        written.append(save(fig, out_dir / f"{m}_vs_ratio.png"))
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
    return save(fig, path)


def ranking(rows: pd.DataFrame, path: Path) -> Path:
    """The headline at a glance: per metric, each variant's mean over the bins with its 95% interval, in the
    headline's order (best PSNR at the top), and the classical fills as grey bands (the best fill's interval
    shaded, each fill's mean a dashed line)."""
    metrics = [m for m in compare.METRICS if rows[rows.metric == m].value.notna().any()]  # those with intervals
    ours = rows[rows.kind == "ours"]
    fills = rows[rows.kind == "baseline"]
    names = list(dict.fromkeys(ours.method))
    fig, axes = plt.subplots(1, len(metrics), figsize=(13, 0.32 * len(names) + 1.6), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], metrics):
        block = ours[ours.metric == m].set_index("method").reindex(names)
        y = np.arange(len(names))[::-1]
        err = np.abs(np.stack([block.value - block.ci_low, block.ci_high - block.value]))
        ax.errorbar(block.value, y, xerr=None if np.isnan(err).all() else err, fmt="o", color=COLOURS[0],
                    capsize=3, markersize=5, label="ours (95% interval)")
        higher = m in compare.HIGHER_IS_BETTER
        fill_rows = fills[fills.metric == m].dropna(subset=["value"])
        if not fill_rows.empty:
            best = fill_rows.loc[fill_rows.value.idxmax() if higher else fill_rows.value.idxmin()]
            if np.isfinite(best.ci_low):
                ax.axvspan(best.ci_low, best.ci_high, color="0.85", zorder=0, label="best fill's 95% interval")
            for k, f in enumerate(fill_rows.itertuples()):
                ax.axvline(f.value, color=str(0.25 + 0.2 * k), linestyle="--", linewidth=1, zorder=1)
                ax.annotate(f.method.split(" ", 1)[-1].replace(" (baseline)", ""), (f.value, 1.0),
                            xycoords=("data", "axes fraction"), rotation=90, fontsize=7, va="top", ha="right",
                            color=str(0.25 + 0.2 * k))
        ax.set_title(f"{PLOTTED[m]} {'↑' if higher else '↓'}", fontsize=11)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(np.arange(len(names))[::-1], names, fontsize=9)
    axes[0][0].legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.06), ncol=2, frameon=False)
    fig.suptitle("Every variant against the classical fills (mean over the six hole-ratio bins)", fontsize=12, y=1.0)
    fig.tight_layout()
    return save(fig, path)
