"""The report's tables from evaluated runs (as `evaluated_runs` returns them): layout, published rows
beside ours, skipped tables, refusal of mixed settings; and the pictures."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from inpaint import bins, figures, paper_tables as pt
from inpaint import report as rp

VARIANTS = {  # variant: (framework, generator, extra params)
    "gdn_weight": ("weight", "gdn_generator", {}),
    "gdn_adv": ("adv", "gdn_generator", {}),
    "gdn_det": ("det", "gdn_generator", {"detector_loss": "focal"}),
    "gdn_det_ce": ("det", "gdn_generator", {"detector_loss": "ce"}),
    "pennet": ("pen", "pennet", {}),
    "lgnet_c": ("lgnet", "lgnet_c", {}),
    "lgnet_c_l_g_att": ("lgnet", "lgnet_c_l_g_att", {}),
    "lgnet_hole1": ("lgnet", "lgnet_c_l_g_att", {"hole_weight": "1.0"}),
    "lgnet_light": ("lgnet", "lgnet_light", {}),
}


def fake_runs(variants=VARIANTS, dataset="sample", pretrained="false") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for k, (variant, (framework, generator, extra)) in enumerate(variants.items()):
        row = {"run_id": f"r{k}", "variant": variant, "framework": framework, "pretrained": pretrained,
               "start_time": k, "generator": generator, "dataset": dataset, "detector_loss": None,
               "hole_weight": None, "perceptual_weight": None, "style_weight": None,
               "complexity/params_m": 10.0 + k, "complexity/gflops_256": 50.0, "complexity/gmacs_table_iv_256": 40.0, "complexity/infer_ms_cpu": 5.0,
               "complexity/infer_size": 64.0}
        if framework == "lgnet":
            row |= {"hole_weight": "6.0", "perceptual_weight": "0.05", "style_weight": "120.0"}
        row |= extra
        for b in range(len(bins.BINS)):
            for m in ("l1", "psnr", "ssim", "fid", "kid", "lpips"):
                row[f"{m}/{bins.key(b)}"] = float(rng.random())
            row[f"psnr_ci_low/{bins.key(b)}"] = row[f"psnr/{bins.key(b)}"] - 0.1
            row[f"psnr_ci_high/{bins.key(b)}"] = row[f"psnr/{bins.key(b)}"] + 0.1
        rows.append(row)
    return pd.DataFrame(rows)


def test_every_table_is_built_with_ours_beside_the_published_rows():
    runs = fake_runs()
    tables, skipped = rp.build_tables(runs)
    assert skipped == []
    by_name = {t.name: t for t in tables}
    assert set(by_name) == {s.name for s in rp.SPECS}
    t1 = by_name["gdn_table1"].frame
    assert [i for i in t1.index if "ours" in i] == ["PEN-Net (pennet, ours)", "Det (gdn_det, ours)",
                                                    "Det (gdn_det_ce, ours)"]
    # sample data: CelebA-HQ's published rows, with a note saying so
    assert t1.loc["PConv (published)", ("(0.2, 0.3]", "PSNR")] == pt.GDN_TABLE1["celeba_hq"]["psnr"]["PConv"][2]
    assert any("CelebA-HQ" in n for n in by_name["gdn_table1"].notes)
    assert t1.loc["Det (gdn_det, ours)", ("(0.5, 0.6]", "FID")] == runs.set_index("variant").loc[
        "gdn_det", f"fid/{bins.key(5)}"]
    t2 = by_name["gdn_table2"].frame
    assert list(t2.index[:2]) == ["CE (gdn_det_ce, ours)", "Focal (gdn_det, ours)"]
    assert t2.loc["BCE (published)", ("(0.01, 0.1]", "SSIM")] == 0.990
    wad = by_name["weight_adv_det"].frame
    assert [i.split()[0] for i in wad.index if "ours" in i] == ["Weight", "Adv", "Det", "Det"]
    assert math.isnan(wad.loc["Det (GDN Table 1, published)", ("(0.01, 0.1]", "LPIPS")])


def test_lgnet_tables_match_variants_to_architectures_and_weights():
    tables = {t.name: t.frame for t in rp.build_tables(fake_runs(dataset="paris"))[0]}
    t6 = tables["lgnet_table6"]
    assert list(t6.columns[:4]) == ["C (lgnet_c, ours)", "C (published)", "C+L+G_att (lgnet_c_l_g_att, ours)",
                                    "C+L+G_att (published)"]
    assert t6.loc["30-40%", "C (published)"] == pt.LGNET_TABLE6["paris"]["C"][3]
    t7 = tables["lgnet_table7"]
    assert "λh=1, λper=0.05, λsty=120 (lgnet_hole1, ours)" in t7.index
    assert t7.loc["λh=1, λper=0.05, λsty=120 (published)", ("(0.01, 0.1]", "l1 (%)")] == 0.63
    t5 = tables["lgnet_table5"]
    assert {"LGNet (lgnet_c_l_g_att, ours)", "LGNet_light (lgnet_light, ours)", "LGNet_share (published)"} <= set(t5.index)
    assert tables["complexity"].loc["LGNet_light (published)", "GFLOPs @256"] == 53.73


def test_tables_without_runs_are_skipped_with_a_note():
    tables, skipped = rp.build_tables(fake_runs({"gdn_weight": VARIANTS["gdn_weight"]}))
    assert {t.name for t in tables} == {"weight_adv_det", "complexity"}
    assert len(skipped) == len(rp.SPECS) - 2 and all("skipped" in s for s in skipped)


@pytest.mark.parametrize("column, value", [("pretrained", "true"), ("dataset", "paris")])
def test_mixed_settings_in_one_table_are_refused(column, value):
    runs = fake_runs()
    runs.loc[runs.variant == "gdn_adv", column] = value
    with pytest.raises(rp.MixedSettingsError, match="Weight / Adv / Det"):
        rp.build_tables(runs)


def test_markdown_marks_missing_values_and_lists_notes():
    table = {t.name: t for t in rp.build_tables(fake_runs())[0]}["weight_adv_det"]
    md = rp.to_markdown(table.frame, ["a note"])
    assert md.count("\n|") == len(table.frame) + 1  # header, separator, one line per row
    assert md.splitlines()[-4].endswith(" - |")  # the published row has no LPIPS
    assert md.rstrip().endswith("1. a note")


def test_metric_plots_and_csv(tmp_path):
    frame = figures.metric_vs_ratio(fake_runs())
    assert len(frame) == len(VARIANTS) * len(bins.BINS)
    assert (frame.psnr_ci_low < frame.psnr).all() and frame.l1_ci_low.isna().all()
    written = figures.metric_plots(frame, tmp_path)
    assert {p.name for p in written} == {f"{m}_vs_ratio.png" for m in figures.PLOTTED}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_comparison_and_detector_pictures(tmp_path):
    from inpaint.models.registry import build

    torch.manual_seed(0)
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    masks = (np.random.default_rng(2).random((5, 32, 32)) < 0.3).astype(np.uint8)
    pairs = pd.DataFrame([{"bin": b, "image": b % 3, "mask": b % 5} for b in range(6)])
    chosen = figures.figure_pairs(pairs)
    assert [c[0] for c in chosen] == list(figures.FIGURE_BINS)
    image, mask = figures.load_batch(images, masks, chosen)
    gen, det = build("gdn_generator", base_channels=8, res_blocks=1).eval(), build("gdn_detector", base_channels=4)
    labels = [bins.percent_label(b) for b, _, _ in chosen]
    grid = figures.comparison({"a": gen, "b": gen}, image, mask, labels, tmp_path / "comparison.png")
    heat = figures.detector_heat_maps(gen, det.eval(), image, mask, labels, tmp_path / "detector.png")
    for p in (grid, heat):
        assert p.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"bin \(0.4, 0.5\]"):
        figures.figure_pairs(pairs[pairs.bin != 4])
