"""The paper table of a tune study: the trials that trained all their steps, each scored on the pipeline's test
pairs by the evaluate stage's code (inpaint/evaluation/record.py), are our rows, beside the paper's published rows
where inpaint/results/paper_tables.py has them, in the report's layout (inpaint/results/report.py builds the notes
and renders).

A trial stopped early by ASHA, failed, interrupted or never run is not a row: its model, if any, is from an
earlier step than the others', so its numbers would not compare; a note names those trials.
"""
from __future__ import annotations

import pandas as pd

from inpaint.results import report as rp

# study -> (file name, title, the paper's side). GDN Fig. 3 is a figure: no published numbers, GDN Table 1's
# metrics. Any other study gets every metric and no published rows.
TABLES = {
    "exp_base": ("gdn_fig3", "GDN Fig. 3 (tune exp_base): linear against exponential weight mapping",
                 rp.Published("GDN Fig. 3", ("psnr", "ssim", "l1", "fid"), {}, "celeba_hq")),
    "detector_loss": ("gdn_table2", "GDN Table 2 (tune detector_loss): detector loss ablation", rp.GDN_TABLE2),
    "lgnet_loss_weights": ("lgnet_table7", "LGNet Table VII (tune lgnet_loss_weights): loss weights",
                           rp.LGNET_TABLE7),
}
ALL_METRICS = ("psnr", "ssim", "l1", "lpips", "fid", "kid")


def paper_side(study: str) -> tuple[str, str, rp.Published]:
    return TABLES.get(study, (study, f"tune {study}: trials on the test pairs",
                              rp.Published(f"tune {study}", ALL_METRICS, {}, "celeba_hq")))


def row_labels(scored: pd.DataFrame) -> list[str]:
    """`<setting> (<steps> steps, ours)`; the trial id too when two trials share a setting (random draws of a
    `choice` space, or a repeated grid)."""
    repeated = scored.setting.duplicated(keep=False)
    return [f"{r.setting} ({r.trial_id + ', ' if twice else ''}{int(r.step):,} steps, ours)"
            for r, twice in zip(scored.itertuples(), repeated)]


def build(params, study: str, results: pd.DataFrame, records: dict[str, dict], pairs: pd.DataFrame | None,
          steps: int) -> rp.Table:
    """The study's table. `results`: one row per trial (inpaint/training/tune.py results_table: trial_id, setting,
    step, status), in trial order (a grid's order); `records`: trial id -> evaluation record of each scored
    trial; `pairs`: the test pairs (their count per bin is the sample size)."""
    name, title, paper = paper_side(study)
    scored = results[results.trial_id.isin(records)]
    runs = pd.DataFrame([{"variant": r.trial_id, "kind": "ours", "dataset": params.data.dataset, "steps": int(r.step),
                          **rp.result_row(records[r.trial_id], pairs)} for r in scored.itertuples()])
    frame, notes = paper.table(list(zip(row_labels(scored), (run for _, run in runs.iterrows()))),
                               params.data.dataset, None)
    notes = [*rp.table_notes(frame, runs, params), *notes]
    left = results[~results.trial_id.isin(records)]
    if len(left):
        notes.append(rp.Note(f"trials that did not train all {steps:,} steps are not rows: " + "; ".join(
            f"{r.setting} ({r.trial_id + ', ' if r.trial_id else ''}{r.status}"  # no id: a point Tune did not create
            + (f" at step {int(r.step)})" if pd.notna(r.step) else ")")
            for r in left.itertuples())))
    if not paper.rows:
        notes.append(rp.Note(f"{paper.paper}: no published numbers in inpaint/results/paper_tables.py, "
                             "so every row is ours"))
    return rp.Table(name, title, frame, tuple(notes), rp.sample_sizes(frame, runs))
