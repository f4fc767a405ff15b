"""The report's tables from a fixed evals fixture (the DVC outputs the report reads): layout (rows, columns,
units, intervals, best marks), one note per cause naming its rows, variants outside params.yaml ignored,
skipped tables, refusal of mixed settings; and the pictures."""
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from inpaint import bins, plotting
from inpaint.config import resolve
from inpaint.results import figures, paper_tables as pt, report as rp

VARIANTS = {  # variant: params.yaml entry
    "gdn_weight": {"framework": "weight"},
    "gdn_adv": {"framework": "adv"},
    "gdn_det": {"framework": "det"},
    "gdn_det_ce": {"framework": "det", "detector_loss": "ce"},
    "pennet": {"framework": "pen"},
    "lgnet_c": {"framework": "lgnet", "generator": "lgnet_c"},
    "lgnet_c_l_g_att": {"framework": "lgnet", "generator": "lgnet_c_l_g_att"},
    "lgnet_hole1": {"framework": "lgnet", "generator": "lgnet_c_l_g_att", "hole_weight": 1},
    "lgnet_light": {"framework": "lgnet", "generator": "lgnet_light"},
}
N_PER_BIN = 4
FID_MISSING = ("not computed: FID needs pt_inception-2015-12-05.pth, expected at /root/.cache/torch/hub/checkpoints/"
               "pt_inception-2015-12-05.pth (the torch cache, TORCH_HOME). Download https://github.com/x/y.pth")
SPREAD = (-1.0, 1.0, -0.5, 0.5)  # our rows' per-pair PSNR around the bin mean; the fills' the opposite
TELEA = 3  # the best fill's seed: as good as gdn_det_ce (the 4th variant), better than the first three


def _pair_scores(seed: int, sign: float = 1.0) -> pd.DataFrame:
    """evals/<variant>_pairs.csv with the bin means of `_record`: PSNR 20 + seed + bin + sign x SPREAD[k] on the
    k-th pair of each bin. Two rows of ours differ by the same amount on every pair; a row of ours and a fill
    (sign -1) by seed difference + 2 x SPREAD: an interval about ±0.6 dB wide around it."""
    return pd.DataFrame([{"bin": b, "image": k, "mask": 10 * b + k, "l1": 1.0 + b,
                          "psnr": 20.0 + seed + b + sign * SPREAD[k],
                          "ssim": 0.9 - 0.01 * b, "lpips": 0.1 + b / 100} for b in range(6) for k in range(N_PER_BIN)])


def _record(variant: str, seed: int, pretrained: bool = False, fid: bool = True) -> dict:
    """An evals/<variant>.json as the evaluate stage writes it, with known values: PSNR 20 + seed + bin."""
    metrics = {}
    for b in range(len(bins.BINS)):
        k = bins.key(b)
        for m, v in (("psnr", 20.0 + seed + b), ("ssim", 0.9 - 0.01 * b), ("l1", 1.0 + b), ("lpips", 0.1 + b / 100)):
            metrics |= {f"{m}/{k}": v, f"{m}_ci_low/{k}": v - 0.2, f"{m}_ci_high/{k}": v + 0.2}
        if fid:
            metrics |= {f"fid/{k}": 50.0 + b, f"kid/{k}": 0.01 * b}
    return {"variant": variant, "metrics": metrics, "pretrained": pretrained,
            "set_metrics": {"fid": "random weights (uncalibrated)" if fid else FID_MISSING,
                            "lpips": "random weights (uncalibrated)"},
            "complexity": {"params_m": 10.0 + seed, "gflops_256": 50.0, "gmacs_table_iv_256": 40.0, "infer_ms_cpu": 5.0, "infer_size": 64},
            "pairs": N_PER_BIN * 6, "settings": {"pairs_per_bin": N_PER_BIN}}


@pytest.fixture
def fixture(tmp_path):
    """evals/, runs/ and the test pairs of a ci-profile run of VARIANTS, plus one stale evaluation of a
    variant no longer in params.yaml and the three baselines."""
    evals, runs = tmp_path / "evals", tmp_path / "runs"
    (evals / "baselines").mkdir(parents=True)
    for i, variant in enumerate([*VARIANTS, "removed_variant"]):
        record = _record(variant, i)
        if variant == "gdn_adv":  # one variant whose FID network was missing, one with a loss term off
            record = _record(variant, i, fid=False)
        if variant == "lgnet_c":
            record["provenance"] = {"switched_off": [{"term": "perceptual", "reason": "vgg16 weights missing"}]}
        if variant == "lgnet_hole1":  # as the train stage records it: term -> reason, with the cache path and URL
            record["provenance"] = {"switched_off": {"perceptual_style": "off: LGNet's perceptual loss needs vgg16.pth, "
                                                     "expected at /root/.cache/torch/vgg16.pth. Download https://x/y"}}
        (evals / f"{variant}.json").write_text(json.dumps(record))
        _pair_scores(i).to_csv(evals / f"{variant}_pairs.csv", index=False)
        (runs / variant).mkdir(parents=True)
        (runs / variant / "train_metrics.json").write_text(json.dumps({"steps": 2}))
    for name, label, seed in (("telea", "OpenCV Telea", TELEA), ("mean_colour", "Mean colour", -6)):
        (evals / "baselines" / f"{name}.json").write_text(json.dumps({**_record(name, seed), "label": label}))
        _pair_scores(seed, sign=-1).to_csv(evals / "baselines" / f"{name}_pairs.csv", index=False)
    pd.DataFrame([{"bin": b, "image": k, "mask": k} for b in range(6) for k in range(10)]).to_csv(
        tmp_path / "pairs.csv", index=False)
    params = resolve({"profile": "ci", "variants": VARIANTS}, profiles_dir=None)
    results, missing = rp.load_results(params, evals, runs, tmp_path / "pairs.csv")
    baselines = rp.load_baselines(evals / "baselines", tmp_path / "pairs.csv")
    return params, results, baselines, missing


@pytest.fixture
def paired(fixture, tmp_path):
    """The per-pair scores of the fixture's rows, resampled as the report does."""
    params, results, baselines, _ = fixture
    return rp.load_pair_scores(results, baselines, tmp_path / "evals", params)


def _tables(fixture, paired=None):
    params, results, baselines, _ = fixture
    tables, skipped = rp.build_tables(results, baselines, params, paired)
    return {t.name: t for t in tables}, skipped


def test_only_the_variants_of_params_yaml_are_read(fixture):
    _, results, baselines, missing = fixture
    assert list(results.variant) == list(VARIANTS) and missing == []
    assert list(baselines.label) == ["Mean colour", "OpenCV Telea"]
    tables, skipped = _tables(fixture)
    assert skipped == [] and set(tables) == {s.name for s in rp.SPECS}
    for t in tables.values():
        assert "removed_variant" not in set(t.rows.variant.dropna())


def test_paper_layout_one_block_per_metric_rows_methods_columns_bins(fixture, paired):
    t1 = _tables(fixture, paired)[0]["gdn_table1"]
    psnr = t1.block("psnr")
    assert list(psnr.columns) == ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    ours = [m for m in psnr.index if m.endswith("ours)")]
    assert ours == ["PEN-Net (pennet, ours)", "Det (gdn_det, ours)", "Det (gdn_det_ce, ours)"]  # the table's order
    assert {"Mean colour (baseline)", "OpenCV Telea (baseline)", "PConv (published)", "GDN (Det) (published)"} <= set(psnr.index)
    assert psnr.loc["PConv (published)", "20-30%"] == pt.GDN_TABLE1["celeba_hq"]["psnr"]["PConv"][2]
    assert psnr.loc["Det (gdn_det, ours)", "50-60%"] == 20.0 + 2 + 5  # gdn_det is the fixture's 3rd variant

    md = rp.to_markdown(t1)
    blocks = [line for line in md.splitlines() if line.startswith("**")]
    assert blocks == ["**PSNR (dB) (higher is better)**", "**SSIM (higher is better)**", "**l1 (%) (lower is better)**",
                      "**FID (lower is better)**", f"**{rp.COMPARISON_HEADING}**"]
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert header == "| method | 1-10% | 10-20% | 20-30% | 30-40% | 40-50% | 50-60% |"
    rows = md.split("**PSNR (dB) (higher is better)**")[1].split("**SSIM")[0]
    det = next(line for line in rows.splitlines() if line.startswith("| Det (gdn_det, ours)"))
    assert "| 22.00 ±0.20 |" in det  # value and the half-width of its 95% interval
    published = next(line for line in rows.splitlines() if line.startswith("| PConv (published)"))
    assert "±" not in published and "| 34.88 |" in published
    # bold: the best of ours per column (PEN-Net, 24.00 at 1-10%), never a published row (GConv's 37.14 is higher)
    gconv = next(line for line in rows.splitlines() if line.startswith("| GConv (published)"))
    assert gconv.split("|")[2].strip() == "37.14"
    pennet = next(line for line in rows.splitlines() if line.startswith("| PEN-Net (pennet, ours)"))
    assert pennet.split("|")[2].strip() == "**24.00** ±0.20"
    assert not any("**" in line for line in md.splitlines() if "(published)" in line or "(baseline)" in line)
    assert f"n = {N_PER_BIN} test pairs per hole-ratio bin" in md


def test_one_note_per_cause_naming_the_rows(fixture):
    t = _tables(fixture)[0]["weight_adv_det"]
    texts = [n.text for n in t.notes]
    assert len(texts) == len(set(texts))
    random_fid = next(n for n in t.notes if n.text.startswith("FID and KID computed with random weights"))
    assert set(random_fid.rows) == {"Weight (gdn_weight, ours)", "Det (gdn_det, ours)", "Det (gdn_det_ce, ours)",
                                    "Mean colour (baseline)", "OpenCV Telea (baseline)"}  # not Adv: its FID was missing
    random_lpips = next(n for n in t.notes if n.text.startswith("LPIPS computed with random weights"))
    assert len(random_lpips.rows) == 6 and random_lpips.metrics == ("lpips",)
    missing = next(n for n in t.notes if "not computed" in n.text)
    assert missing.rows == ("Adv (gdn_adv, ours)",) and "pretrained file is missing" in missing.text
    assert not any("/" in n.text or "http" in n.text for n in t.notes)  # no cache paths or URLs
    steps = next(n for n in t.notes if n.text.startswith("trained 2 steps"))
    assert len(steps.rows) == 4 and all("ours" in r for r in steps.rows)  # baselines are not trained
    size = next(n for n in t.notes if "images at 64 px" in n.text)
    few = next(n for n in t.notes if "fewer than 2,048 samples" in n.text)
    assert few.metrics == ("fid", "kid") and "Adv (gdn_adv, ours)" not in few.rows
    assert any("data.dataset = sample" in n.text for n in t.notes)
    assert any("masks.test_source = generated" in n.text for n in t.notes)
    assert len(size.rows) == 6  # a run-wide setting: every row of ours and every baseline
    published = next(n for n in t.notes if "not a like-for-like" in n.text)
    assert published.rows == ("Det (GDN Table 1, published)",)
    # the notes are numbered once each and their markers follow the rows they name, in the blocks they concern
    md = rp.to_markdown(t)
    for i, note in enumerate(t.notes, 1):
        assert md.count(f"\n{i}. ") == 1
    fid_block = md.split("**FID")[1].split("**KID")[0]
    psnr_block = md.split("**PSNR")[1].split("**SSIM")[0]
    marker = f"[{t.notes.index(few) + 1}]"
    assert marker in fid_block and marker not in psnr_block
    size_number = t.notes.index(size) + 1  # on every measured row: said once, not marked on each row
    assert f"{size_number}. Images at 64 px, the papers' at 256 px. Rows: all of ours and the baselines." in md
    steps_number = t.notes.index(steps) + 1  # on every row of ours (not the baselines)
    assert f"{steps_number}. Trained 2 steps, the papers 337,500. Rows: all of ours." in md
    assert f"[{size_number}]" not in md.split("Notes:")[0]
    switched = next(n for n in _tables(fixture)[0]["lgnet_table6"].notes if "switched off" in n.text)
    assert switched.rows == ("C (lgnet_c, ours)",) and "vgg16 weights missing" in switched.text


def test_html_and_long_csv(fixture, tmp_path):
    t = _tables(fixture)[0]["gdn_table2"]
    page = rp.to_html(t)
    assert page.count("<table>") == 2 and "<h3>PSNR (dB) (higher is better)</h3>" in page
    assert page.count("<li>") == len(t.notes) and "<script" not in page
    assert "<th>1-10%</th>" in page and "±0.20" in page
    long = rp.to_long(t)
    n_rows = long.method.nunique()
    assert len(long) == n_rows * 2 * len(bins.BINS)  # method x metric x bin
    assert set(long.metric_label) == {"PSNR (dB)", "SSIM"} and set(long.hole_ratio_bin) == set(rp.BIN_LABELS)
    assert long[long.kind == "published"].ci_low.isna().all() and long[long.kind == "ours"].ci_low.notna().all()


def test_lgnet_tables_and_complexity(fixture):
    tables = _tables(fixture)[0]
    t6 = tables["lgnet_table6"].block("fid")
    assert [m for m in t6.index if "ours" in m] == ["C (lgnet_c, ours)", "C+L+G_att (lgnet_c_l_g_att, ours)",
                                                    "C+L+G_att (lgnet_hole1, ours)"]
    assert t6.loc["C (published)", "30-40%"] == pt.LGNET_TABLE6["celeba_hq"]["C"][3]
    t7 = tables["lgnet_table7"].block("l1")
    assert "λh=1, λper and λsty off (lgnet_hole1, ours)" in t7.index  # its perceptual and style terms were off
    assert t7.loc["λh=1, λper=0.05, λsty=120 (published)", "1-10%"] == 0.63
    t5 = tables["lgnet_table5"].block("psnr")
    assert {"LGNet (lgnet_c_l_g_att, ours)", "LGNet_light (lgnet_light, ours)", "LGNet_share (published)"} <= set(t5.index)
    comp = tables["complexity"]
    assert not comp.by_bin and "OpenCV Telea (baseline)" not in set(comp.rows.method)
    md = rp.to_markdown(comp)
    assert ("| method | #Parameters (M) | GFLOPs @256 (Table IV's count) | GFLOPs @256, all matmuls x 2 | "
            "CPU ms / image |") in md
    published = comp.rows.set_index("method")
    assert published.query("metric == 'gmacs_table_iv_256'").loc["LGNet_light (published)", "value"] == 53.73
    assert math.isnan(published.query("metric == 'gflops_256'").loc["LGNet_light (published)", "value"])


def _cell(block: str, method: str, column: int) -> str:
    """The `column`-th cell (1 = the first after the method) of the row of `method` in a markdown block."""
    line = next(line for line in block.splitlines() if line.startswith(f"| {method}"))
    return line.split("|")[column + 1].strip()


def test_headline_ranks_with_paired_intervals_and_a_verdict(fixture, paired):
    """The ranked headline of the fixed evals fixture: means with their bootstrap intervals, each variant's
    paired difference from the best fill (OpenCV Telea, seed 3) with its interval and significance mark, the
    ranking, the verdict and the few summary numbers."""
    params, results, baselines, _ = fixture
    head = rp.headline(results, baselines, params, paired)
    psnr = head.rows[head.rows.metric == "psnr"]
    assert list(psnr.method[:3]) == ["#1 lgnet_light", "#2 lgnet_hole1", "#3 lgnet_c_l_g_att"]  # best PSNR first
    assert list(psnr.method[5:7]) == ["#6 gdn_det_ce", "#7 OpenCV Telea (baseline)"]  # a tie keeps params order
    det = psnr.set_index("variant").loc["gdn_det"]
    assert det.value == pytest.approx(20.0 + 2 + 2.5) and det.ci_low < det.value < det.ci_high
    fill = head.comparison.query("metric == 'psnr' and against == 'best fill'").set_index("method")
    assert set(fill.against_label) == {"OpenCV Telea"} and len(fill) == len(VARIANTS)
    assert fill.loc["#5 pennet"].value == pytest.approx(1.0) and fill.loc["#8 gdn_det"].value == pytest.approx(-1.0)
    assert 0 < fill.loc["#5 pennet"].low < 1 < fill.loc["#5 pennet"].high  # paired: about ±0.6 dB
    assert fill.loc["#6 gdn_det_ce"].low < 0 < fill.loc["#6 gdn_det_ce"].high  # the tie: not told apart

    md = rp.to_markdown(head)
    assert "| method | PSNR (dB) ↑ | SSIM ↑ | l1 (%) ↓ | LPIPS ↓ | FID ↓ | KID ↓ |" in md
    metrics, differences = md.split(f"**{rp.COMPARISON_HEADING}**")
    assert _cell(metrics, "#1 lgnet_light", 1).startswith("**30.50** ±")  # the best of ours in bold
    assert not any("**" in line for line in metrics.splitlines() if "(baseline)" in line)
    assert "Best classical fill: OpenCV Telea (PSNR" in differences
    assert re.fullmatch(r"\+1\.00 ±0\.[5-7]\d\*", _cell(differences, "#5 pennet", 1))  # significant: marked
    assert re.fullmatch(r"-1\.00 ±0\.[5-7]\d\*", _cell(differences, "#8 gdn_det", 1))
    assert re.fullmatch(r"\+0\.00 ±0\.[5-7]\d", _cell(differences, "#6 gdn_det_ce", 1))  # interval holds 0: no mark
    assert head.verdict.startswith("5 of 9 variants beat the best classical fill on PSNR (OpenCV Telea, 25.50 dB): "
                                   "3 significantly worse, 1 not told apart; on SSIM 0 of 9")
    assert f"**Verdict: {head.verdict}**" in md
    assert rp.summary_metrics(head) == {"variants": 9, "beat_fill_psnr": 5, "best_psnr": 30.5, "fill_psnr": 25.5,
                                        "best_minus_fill_psnr": 5.0}
    text = rp.terminal_text(head, 120)
    assert max(map(len, text.splitlines())) <= 120 and "Verdict: 5 of 9" in text


def test_paper_tables_compare_with_their_reference_row_and_number_notes_once(fixture, paired):
    tables, _ = _tables(fixture, paired)
    wad = tables["weight_adv_det"]
    c = wad.comparison.query("metric == 'psnr'")
    reference = c[c.against == "reference"].set_index("method")
    assert set(reference.against_label) == {"Weight (gdn_weight, ours)"}  # GDN Sec. 4.3's reference row
    assert "Weight (gdn_weight, ours)" not in reference.index  # not against itself
    assert reference.loc["Adv (gdn_adv, ours)"].value == pytest.approx(1.0)
    md = rp.to_markdown(wad)
    differences = md.split(f"**{rp.COMPARISON_HEADING}**")[1]
    assert "Reference: Weight (gdn_weight, ours)." in differences
    assert "| method | PSNR vs reference | PSNR vs best fill |" in differences
    assert _cell(differences, "Adv (gdn_adv, ours)", 1) == "+1.00 ±0.00*"  # the same difference on every pair
    assert _cell(differences, "Weight (gdn_weight, ours)", 1) == "-"
    t6 = tables["lgnet_table6"].comparison  # FID alone has no pairs: compared on the per-pair metrics
    assert set(t6.against_label) >= {"C (lgnet_c, ours)"} and set(t6.metric) == {"psnr", "ssim", "l1", "lpips"}
    assert set(tables["gdn_table2"].comparison.against_label) >= {"CE (gdn_det_ce, ours)"}
    assert all("**" not in line for t in tables.values() for line in rp.to_markdown(t).splitlines()
               if "(published)" in line)  # a published row is never bold
    # one number per note text in every table of a report
    numbered = rp.number_notes(list(tables.values()))
    meaning = {}
    for t in numbered:
        for i, note in enumerate(t.notes):
            assert meaning.setdefault(t.number(i), note.text) == note.text
            assert f"\n{t.number(i)}. {note.text[:1].upper()}" in rp.to_markdown(t)


def test_tables_without_variants_are_skipped_with_a_note(fixture):
    params, results, baselines, _ = fixture
    tables, skipped = rp.build_tables(results[results.variant == "gdn_weight"], baselines, params)
    assert {t.name for t in tables} == {"weight_adv_det", "complexity"}
    assert len(skipped) == len(rp.SPECS) - 2 and all("skipped" in s for s in skipped)


@pytest.mark.parametrize("column, value", [("pretrained", "true"), ("dataset", "paris")])
def test_mixed_settings_in_one_table_are_refused(fixture, column, value):
    params, results, baselines, _ = fixture
    results.loc[results.variant == "gdn_adv", column] = value
    with pytest.raises(rp.MixedSettingsError, match="Weight / Adv / Det"):
        rp.build_tables(results, baselines, params)


def test_metric_plots_loss_curves_and_run_figure(fixture, tmp_path):
    _, results, baselines, _ = fixture
    frame = figures.metric_vs_ratio(pd.concat([results, baselines], ignore_index=True))
    assert len(frame) == (len(VARIANTS) + 2) * len(bins.BINS)
    assert (frame.psnr_ci_low < frame.psnr).all() and "OpenCV Telea (baseline)" in set(frame.variant)
    written = figures.metric_plots(frame, tmp_path)
    assert {p.name for p in written} == {f"{m}_vs_ratio.png" for m in plotting.PLOTTED}
    curves = pd.DataFrame([{"step": s, "loss_g": 1 / s, "variant": v} for v in VARIANTS for s in (1, 2, 3)])
    written.append(figures.loss_curves(curves, tmp_path / "loss.png"))
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    fig = plotting.run_curves(results.iloc[2].to_dict())
    assert [ax.get_title() for ax in fig.axes] == ["PSNR (dB)", "SSIM", "l1 (%)"]
    looks = {tuple(sorted(plotting.style(i).items())) for i in range(24)}
    assert len(looks) == 24  # distinct colour / line style / marker for 12+ variants


def test_comparison_and_detector_pictures(tmp_path):
    from inpaint.evaluation.baselines import build as baseline
    from inpaint.models.registry import build

    from PIL import Image

    torch.manual_seed(0)
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    masks = (np.random.default_rng(2).random((5, 32, 32)) < 0.3).astype(np.uint8)
    pairs = pd.DataFrame([{"bin": b, "image": b % 3, "mask": b % 5} for b in range(6)])
    chosen = figures.figure_pairs(pairs)
    assert [c[0] for c in chosen] == list(figures.FIGURE_BINS)
    image, mask = figures.load_batch(images, masks, chosen)
    gen, det = build("gdn_generator", base_channels=8, res_blocks=1).eval(), build("gdn_detector", base_channels=4)
    labels = [bins.percent_label(b) for b, _, _ in chosen]
    methods = {f"variant_{i}": gen for i in range(14)} | {"Telea": baseline("telea")}
    grid = figures.comparison(methods, image, mask, labels, tmp_path / "comparison.png")
    heat = figures.detector_heat_maps(gen, det.eval(), image, mask, labels, tmp_path / "detector.png")
    for p in (grid, heat):
        assert p.read_bytes()[:4] == b"\x89PNG"
    width, height = Image.open(grid).size  # 17 columns (input, 15 methods, truth) x 4 rows, fit for 1600 px
    assert 1400 <= width <= 1600 and height < width / 2
    # with the images, each bin's pair is the most textured image not shown yet: never a flat one
    flat = images.copy()
    flat[0] = 128
    textured = figures.figure_pairs(pd.DataFrame([{"bin": b, "image": k, "mask": k} for b in range(6) for k in range(3)]),
                                    flat)
    assert sorted(c[1] for c in textured[:2]) == [1, 2]  # the two textured images first, distinct
    by_photo = figures.figure_pairs(pd.DataFrame([{"bin": b, "image": k, "mask": k} for b in range(6) for k in range(3)]),
                                    flat, pd.Series(["a", "a", "b"]))
    assert len({"aab"[c[1]] for c in by_photo[:2]}) == 2  # one crop of each photo before a second of either


@pytest.mark.parametrize("name", ["telea", "navier_stokes", "mean_colour"])
def test_baselines_fill_only_the_hole(name):
    from inpaint.evaluation.baselines import build
    from inpaint.evaluation.evaluate import composites

    image = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:10, 4:10] = 1
    out = build(name)(image * (1 - mask) + mask, mask)["output"]
    assert out.shape == image.shape and math.isfinite(out.sum().item())
    inside = out[:, :, 4:10, 4:10]
    assert (inside < 0.99).any()  # the white hole is filled, not passed through
    comp = composites(build(name), image, mask)
    assert torch.allclose(comp * (1 - mask), (image * 255).round() / 255 * (1 - mask), atol=1 / 255)


def test_training_grid_labels_its_columns():
    from inpaint.training.train import _grid

    visuals = {name: torch.rand(4, 3, 32, 32) for name in ("masked", "output", "composite", "ground truth")}
    grid = _grid(visuals)
    tile = 32 * 4 + 2  # enlarged to at least 128 px, plus padding
    header, body = grid[:20], grid[20:]
    assert body.shape[:2] == (4 * tile + 2, 4 * tile + 2)
    for c in range(4):  # dark text in the white header above every column
        column = header[:, 2 + c * tile: (c + 1) * tile]
        assert (column.min(axis=2) < 100).sum() > 20, c


def test_ranking_figure(fixture, paired, tmp_path):
    params, results, baselines, _ = fixture
    head = rp.headline(results, baselines, params, paired)
    path = figures.ranking(head.rows, tmp_path / "all_ranked.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
