"""Tables in the papers' layout from the MLflow runs that exist (protocol.md section 5).

The Weight / Adv / Det comparison (GDN Sec. 4.3): one row per trained GDN variant, one column group per
hole-ratio bin, with GDN Table 1's published Det row ("Ours", CelebA-HQ) beside ours, marked as such.
"""
from __future__ import annotations

import math

import pandas as pd

from inpaint import bins, tracking
from inpaint.paper_tables import GDN_TABLE1

METRICS = {"l1": "l1 (%)", "psnr": "PSNR", "ssim": "SSIM", "fid": "FID", "lpips": "LPIPS"}
GDN_FRAMEWORKS = ("weight", "adv", "det")


class MixedSettingsError(ValueError):
    pass


def evaluated_runs(client, experiment_id: str) -> pd.DataFrame:
    """One row per evaluated training run: variant, framework, pretrained flag and every test metric."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{tracking.TAG_KIND}` = 'train'")
    rows = []
    for run in runs:
        m = {k[len("test/"):]: v for k, v in run.data.metrics.items() if k.startswith("test/")}
        if not m:
            continue
        rows.append({"run_id": run.info.run_id, "variant": run.data.tags.get(tracking.TAG_VARIANT),
                     "framework": run.data.tags.get(tracking.TAG_FRAMEWORK),
                     "pretrained": run.data.tags.get("eval.pretrained", "unknown"),
                     "start_time": run.info.start_time, **m})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("start_time").drop_duplicates("variant", keep="last").reset_index(drop=True)


def framework_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: GDN Weight / Adv / Det variants (ours) + the paper's Det row; columns: (bin, metric)."""
    ours = runs[runs.framework.isin(GDN_FRAMEWORKS)]
    if ours.empty:
        raise ValueError("no evaluated Weight / Adv / Det runs in this MLflow experiment; run `dvc repro` first")
    settings = set(ours.pretrained)
    if len(settings) > 1:
        raise MixedSettingsError(
            f"runs evaluated with different weight settings (pretrained = {sorted(settings)}): "
            "they cannot share a table; re-evaluate them with the same evaluate.weights")
    columns = pd.MultiIndex.from_tuples([(bins.label(b), METRICS[m]) for b in range(len(bins.BINS)) for m in METRICS])
    table = []
    index = []
    for _, run in ours.sort_values("framework", key=lambda s: s.map(GDN_FRAMEWORKS.index)).iterrows():
        index.append(f"{run.framework.capitalize()} ({run.variant}, ours)")
        table.append([run.get(f"{m}/{bins.key(b)}", math.nan) for b in range(len(bins.BINS)) for m in METRICS])
    index.append("Det (GDN Table 1, CelebA-HQ, published)")
    table.append([GDN_TABLE1["celeba_hq"][m]["Ours"][b] if m in GDN_TABLE1["celeba_hq"] else math.nan
                  for b in range(len(bins.BINS)) for m in METRICS])
    return pd.DataFrame(table, index=pd.Index(index, name="framework"), columns=columns)


def to_markdown(table: pd.DataFrame, footnotes: list[str]) -> str:
    head = "| framework | " + " | ".join(f"{b} {m}" for b, m in table.columns) + " |"
    sep = "|---|" + "---|" * len(table.columns)
    lines = [head, sep]
    for name, row in table.iterrows():
        cells = ["-" if (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}" for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = "".join(f"\n{i + 1}. {n}" for i, n in enumerate(footnotes))
    return "\n".join(lines) + ("\n\nNotes:" + notes if footnotes else "") + "\n"
