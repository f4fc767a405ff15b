"""Pictures of a mask set: one contact sheet per bin and a hole-ratio histogram (PNG + CSV for DVC plots)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inpaint.bins import BINS, key, label
from inpaint.io import atomic_path, write_text
from inpaint.masks.store import MaskStore

GRID = 8  # contact sheets are GRID x GRID masks
HIST_BINS = 60  # 0.01-wide histogram bins over [0, 0.6]


def contact_sheet(store: MaskStore, b: int, grid: int = GRID) -> np.ndarray:
    """Up to grid^2 masks of bin b, evenly spaced through the bin, hole = white, 2 px grey gaps."""
    idx = store.indices_in_bin(b)
    if len(idx):
        idx = idx[np.unique(np.linspace(0, len(idx) - 1, min(len(idx), grid * grid)).round().astype(int))]
    s = store.image_size
    tile = s * max(1, 64 // s)  # small masks are enlarged (nearest) so the sheet stays readable
    gap, head = 2, 20
    sheet = np.full((head + grid * (tile + gap), grid * (tile + gap)), 96, np.uint8)
    for n, i in enumerate(idx):
        r, c = divmod(n, grid)
        m = cv2.resize(store[int(i)] * 255, (tile, tile), interpolation=cv2.INTER_NEAREST)
        sheet[head + r * (tile + gap):head + r * (tile + gap) + tile, c * (tile + gap):c * (tile + gap) + tile] = m
    cv2.putText(sheet, f"bin {label(b)}: {len(store.indices_in_bin(b))} masks", (4, 14),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1, cv2.LINE_AA)
    return sheet


def write_mask_pictures(store: MaskStore, out_dir: Path) -> list[Path]:
    """Contact sheet per bin, `ratio_histogram.png` and `ratio_histogram.csv` (ratio, count) in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for b in range(len(BINS)):
        path = out_dir / f"contact_{key(b)}.png"
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), contact_sheet(store, b)):
                raise OSError(f"{path}: could not write PNG")
        paths.append(path)

    ratios = store.manifest["ratio"].to_numpy()
    edges = np.linspace(0.0, 0.6, HIST_BINS + 1)
    counts, _ = np.histogram(ratios, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    csv = out_dir / "ratio_histogram.csv"
    write_text(csv, "ratio,count\n" + "".join(f"{c:.3f},{n}\n" for c, n in zip(centres, counts)))

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.bar(centres, counts, width=edges[1] - edges[0], color="#4477aa", edgecolor="white", linewidth=0.3)
    for lo, _ in BINS[1:]:
        ax.axvline(lo, color="grey", linewidth=0.6, linestyle="--")
    ax.set_xlabel("hole ratio")
    ax.set_ylabel("masks")
    ax.set_title(f"{store.directory.name}: {len(store)} masks at {store.image_size}px")
    fig.tight_layout()
    png = out_dir / "ratio_histogram.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return paths + [png, csv]
