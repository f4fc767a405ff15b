"""The look every picture shares (matplotlib on Agg: colours, line styles, markers, resolution, the hole-ratio
axis) and the one picture a single run carries, its metrics against the hole ratio. It sits below evaluation
and results: an evaluation run logs its own figure, and the report draws the rest (results/figures.py) in the
same look, without evaluation importing the report's code."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from inpaint import bins  # noqa: E402
from inpaint.io import atomic_path  # noqa: E402

PLOTTED = {"l1": "l1 (%)", "psnr": "PSNR (dB)", "ssim": "SSIM", "fid": "FID", "kid": "KID", "lpips": "LPIPS"}
# 20 colours x 4 line styles x 6 markers: every one of a dozen or more variants is told apart in print too
COLOURS = plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]
LINES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
HEAT = "viridis"  # perceptually uniform: 0.5 does not look like a plateau of green
DPI = 120


def style(i: int) -> dict:
    """The i-th line's colour, line style and marker: the first 20 differ in colour, and colour, style and
    marker together repeat only after 60 lines."""
    return {"color": COLOURS[i % len(COLOURS)], "linestyle": LINES[i % len(LINES)], "marker": MARKERS[i % len(MARKERS)]}


def ratio_axis(ax) -> None:
    """An x axis of the six hole-ratio bins, ticked at their centres."""
    ax.set_xticks([(lo + hi) / 2 for lo, hi in bins.BINS], [bins.percent_label(b) for b in range(len(bins.BINS))])
    ax.set_xlabel("hole ratio")
    ax.grid(alpha=0.3)


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
        ratio_axis(ax)
        ax.set_title(PLOTTED[m])
    fig.tight_layout()
    return fig


def log_figure(client, run_id: str, fig, artifact_file: str) -> None:
    """The figure as an artifact of the MLflow run, then closed."""
    client.log_figure(run_id, fig, artifact_file)
    plt.close(fig)


def save(fig, path: Path) -> Path:
    """The figure as a PNG at `path`, written whole or not at all, then closed."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path
