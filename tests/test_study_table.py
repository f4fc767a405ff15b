"""A tune study's paper table (inpaint/results/study_table.py) from a fixed fixture of trial evaluations: our rows are
the completed trials, labelled by their setting and steps, beside the paper's published rows, in the report's
layout (blocks per metric with units, bins as columns, intervals, best marked); the trials that are not rows
are named in a note. And how a trial's setting reads."""
import math

import pandas as pd
import pytest

from inpaint.config import resolve
from inpaint.results import report as rp, study_table
from inpaint.training import tune
from test_report import N_PER_BIN, _record

STEPS = 24


def _params():
    return resolve({"profile": "ci", "variants": {"gdn_det": {"framework": "det"}}})


def _results(configs: list[tuple[dict, str, int | None]]) -> pd.DataFrame:
    """results.csv of a study: one trial per (config, status, step), in trial order."""
    return pd.DataFrame([{"trial_id": f"t_{i:05d}", "setting": tune.setting(config), "status": status, "step": step}
                         for i, (config, status, step) in enumerate(configs)]).astype({"step": "Int64"})


@pytest.fixture
def detector_loss():
    """GDN Table 2's study: CE and focal γ=2 trained all their steps, focal γ=5 stopped early, BCE failed."""
    results = _results([({"variant": {"detector_loss": "ce"}}, "completed", STEPS),
                        ({"variant": {"detector_loss": "bce"}}, "failed", None),
                        ({"variant": {"detector_loss": "focal", "gamma": 2}}, "completed", STEPS),
                        ({"variant": {"detector_loss": "focal", "gamma": 5}}, "stopped early", 8)])
    records = {"t_00000": _record("t_00000", 0), "t_00002": _record("t_00002", 3)}
    pairs = pd.DataFrame({"bin": [b for b in range(6) for _ in range(N_PER_BIN)], "image": 0, "mask": 0})
    return study_table.build(_params(), "detector_loss", results, records, pairs, STEPS)


def test_the_completed_trials_are_our_rows_beside_the_published_rows(detector_loss):
    table = detector_loss
    assert (table.name, table.title) == ("gdn_table2", "GDN Table 2 (tune detector_loss): detector loss ablation")
    assert list(dict.fromkeys(table.rows.method)) == [
        "ce (24 steps, ours)", "focal γ=2 (24 steps, ours)", "CE (published)", "BCE (published)", "Focal (published)"]
    assert set(table.rows.metric) == {"psnr", "ssim"}
    block = table.block("psnr")
    assert list(block.columns) == list(rp.BIN_LABELS)
    assert block.loc["focal γ=2 (24 steps, ours)", "10-20%"] == 24.0  # the record's PSNR: 20 + seed + bin
    assert block.loc["CE (published)", "1-10%"] == 35.88
    assert table.sizes == f"Sample: n = {N_PER_BIN} test pairs per hole-ratio bin for every row of ours."


def test_trials_that_are_not_rows_are_named_in_a_note(detector_loss):
    notes = [rp.note_text(detector_loss, n) for n in detector_loss.notes]
    (left,) = [n for n in notes if "not rows" in n]
    assert "bce (t_00001, failed)" in left and "focal γ=5 (t_00003, stopped early at step 8)" in left
    assert any("Trained 24 steps, the papers 337,500" in n for n in notes)
    assert any("GDN Table 2's CelebA-HQ numbers" in n for n in notes)  # our sample data are not CelebA-HQ


def test_the_table_renders_like_the_reports(detector_loss):
    md = rp.to_markdown(detector_loss)
    assert "**PSNR (dB) (higher is better)**" in md and "**SSIM (higher is better)**" in md
    assert "| method | 1-10% | 10-20% | 20-30% | 30-40% | 40-50% | 50-60% |" in md
    # ± the 95% interval's half-width; bold: the best of ours, never a published row (Focal's 36.37 is higher)
    assert "| focal γ=2 (24 steps, ours) | **23.00** ±0.20 | **24.00** ±0.20 |" in md
    assert "| Focal (published) [5] | 36.37 |" in md
    html = rp.to_html(detector_loss)
    assert "<h3>PSNR (dB) (higher is better)</h3>" in html and "focal γ=2 (24 steps, ours)" in html
    long = rp.to_long(detector_loss)
    ours = long[long.method == "ce (24 steps, ours)"]
    assert set(ours.variant) == {"t_00000"} and set(ours.metric_label) == {"PSNR (dB)", "SSIM"}
    assert len(ours) == 2 * 6 and ours.ci_low.notna().all()
    assert long[long.kind == "published"].ci_low.isna().all()


def test_a_study_without_published_numbers_or_completed_trials_still_has_its_table():
    results = _results([({"variant": {"weight_mapping": "linear"}}, "stopped early", 8)])
    table = study_table.build(_params(), "exp_base", results, {}, None, STEPS)
    assert table.name == "gdn_fig3" and table.rows.empty
    md = rp.to_markdown(table)
    assert md.startswith("# GDN Fig. 3 (tune exp_base)") and "linear (t_00000, stopped early at step 8)" in md
    assert "no published numbers" in md
    other = study_table.build(_params(), "mine", _results([({"train.batch_size": 2}, "completed", STEPS)]),
                              {"t_00000": _record("t_00000", 0)}, None, STEPS)
    assert other.name == "mine" and list(dict.fromkeys(other.rows.method)) == ["batch_size=2 (24 steps, ours)"]
    assert set(other.rows.metric) == set(study_table.ALL_METRICS)


@pytest.mark.parametrize("config, text", [
    ({"variant": {"weight_mapping": "linear"}}, "linear"),
    ({"variant": {"weight_mapping": "exp", "exp_base": 5}}, "exp base 5"),
    ({"variant": {"weight_mapping": "exp", "exp_base": math.e}}, "exp base 2.72"),
    ({"variant": {"detector_loss": "focal", "gamma": 2}}, "focal γ=2"),
    ({"variant.hole_weight": 6, "variant.perceptual_weight": 0.0512345, "variant.style_weight": 120.0,
      "variant.tv_weight": 0.1}, "λh=6, λper=0.0512, λsty=120, λtv=0.1"),
    ({"variant": {"detector_loss": "focal"}, "train.batch_size": 4}, "focal batch_size=4"),
])
def test_a_trial_setting_reads_as_the_papers_name_it(config, text):
    assert tune.setting(config) == text


def test_repeated_settings_keep_their_rows_apart():
    results = _results([({"variant.gamma": 2}, "completed", STEPS), ({"variant.gamma": 2}, "completed", STEPS)])
    assert study_table.row_labels(results) == ["γ=2 (t_00000, 24 steps, ours)", "γ=2 (t_00001, 24 steps, ours)"]
