"""The report stage's outputs, from the DVC outputs of the variants in params.yaml and of the baselines: the
ranked headline and the papers' tables (reports/tables/<name>.md/.html/.csv, all of them in index.html), the
pictures (reports/figures; the CSVs behind them in reports/plots), the summary numbers `dvc exp show` compares
(metrics/headline.json) and the MLflow `report` run that mirrors them."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from inpaint import bins, paths
from inpaint.config import Params
from inpaint.data.prepare import load_split
from inpaint.data.test_pairs import read_pairs, test_sources
from inpaint.evaluation import baselines as bl
from inpaint.evaluation.evaluate import load_networks
from inpaint.io import atomic_dir, atomic_path, write_json, write_text
from inpaint.masks import MaskStore
from inpaint.provenance import tracking
from inpaint.results import figures, report as rp


def publish_report(params: Params) -> dict:
    """The tables, pictures and summary numbers (see the module's docstring); an MLflow `report` run mirrors
    them: the headline table as its description, the summary numbers as metrics, tables and figures as
    artifacts. Returns what reports/report.json records."""
    runs, missing = rp.load_results(params, paths.EVALS, paths.RUNS, paths.TEST_PAIRS)
    for note in missing:
        print(f"report: {note}")
    if runs.empty:
        raise ValueError(f"no variant of params.yaml has an evaluation in {paths.EVALS} (evals/<variant>.json); "
                         "run `dvc repro` first")
    baselines = rp.load_baselines(paths.EVALS / "baselines", paths.TEST_PAIRS)
    paired = rp.load_pair_scores(runs, baselines, paths.EVALS, params)
    if paired is None:
        print("report: no per-pair scores in evals/ (evaluations older than them): no paired comparisons; "
              "re-run the evaluate and baselines stages")
    tables, skipped = rp.build_tables(runs, baselines, params, paired)
    head, *tables = rp.number_notes([rp.headline(runs, baselines, params, paired), *tables])
    for note in skipped:
        print(f"report: {note}")
    with atomic_dir(paths.REPORTS / "tables") as tmp:
        for table in (head, *tables):
            rp.write_table(table, tmp)
        write_text(tmp / "index.html", index_html([head, *tables], skipped))
    with atomic_dir(paths.REPORTS / "plots") as plots, atomic_dir(paths.REPORTS / "figures") as figures_dir:
        write_pictures(runs, baselines, head, plots, figures_dir)
    write_json(paths.METRICS / "headline.json", rp.summary_metrics(head))
    print(f"report: {head.verdict}")
    rid = log_report_run(params, head, tables, skipped)
    summary = {"report_run_id": rid, "tables": {t.name: int(t.rows.method.nunique()) for t in tables},
               "skipped": skipped + missing, "variants": list(runs.variant),
               "baselines": list(baselines.get("variant", []))}
    write_json(paths.REPORTS / "report.json", summary)
    return summary


def log_report_run(params: Params, head, tables: list, skipped: list[str]) -> str:
    """The MLflow mirror of the report: a new `report` run whose description (MLflow renders it as markdown
    on the run page) is the headline table."""
    client, experiment_id = tracking.open_experiment(params.tracking)
    tracking.set_headline_view(client, experiment_id)
    print(f"report: the ranked runs in MLflow: `inpaint ui` prints the address (the Views menu: "
          f"\"{tracking.HEADLINE_VIEW_NAME}\")")
    listing = "\n".join(f"- {t.title}: artifact `tables/{t.name}.md` (and .html, .csv)" for t in tables)
    note = f"{rp.description(head)}\n### Tables\n\n{listing}\n" + "".join(f"\n- {s}" for s in skipped)
    run = client.create_run(experiment_id, run_name="report", tags={
        tracking.TAG_KIND: "report", "mlflow.note.content": note, **tracking.provenance()})
    rid = run.info.run_id
    tracking.log_params(client, rid, {"profile": params.profile, "dataset": params.data.dataset,
                                      "image_size": params.data.image_size, "weights": params.weights,
                                      "variants": ",".join(params.variants)})
    tracking.log_metrics(client, rid, rp.summary_metrics(head))
    for folder in ("tables", "plots", "figures"):
        client.log_artifacts(rid, str(paths.REPORTS / folder), artifact_path=folder)
    for table in (head, *tables):
        client.log_table(rid, data=rp.to_long(table), artifact_file=f"tables/{table.name}.json")
    client.set_terminated(rid)
    return rid


def index_html(tables: list, skipped: list[str]) -> str:
    """Every table on one page, after the ranking figure (reports/figures/all_ranked.png, beside tables/)."""
    body = "\n<hr>\n".join(rp.to_html(t, standalone=False) for t in tables)
    notes = "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
    figure = "<img class=\"ranking\" src=\"../figures/all_ranked.png\" alt=\"ranking of every variant and fill\">"
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>inpaint report</title>{rp.HTML_STYLE}"
            f"</head><body>\n<h1>inpaint report</h1>\n{figure}\n{body}\n" + (f"<ul>{notes}</ul>" if notes else "")
            + "</body></html>\n")


def write_pictures(runs: pd.DataFrame, baselines: pd.DataFrame, head, plots: Path, figures_dir: Path) -> None:
    """The ranking of the headline table (all_ranked.png), metric-versus-hole-ratio plots (variants and
    baselines) and overlaid loss curves from the DVC outputs; the comparison grid and the detector heat maps
    from each variant's runs/<variant>/model.pt (and the baselines) on the fixed figure pairs."""
    figures.ranking(head.rows, figures_dir / "all_ranked.png")
    frame = figures.metric_vs_ratio(pd.concat([runs, baselines], ignore_index=True))
    with atomic_path(plots / "metric_vs_ratio.csv") as tmp:
        frame.to_csv(tmp, index=False)
    figures.metric_plots(frame, figures_dir)
    losses = {v: paths.RUNS / v / "loss.csv" for v in runs.variant if (paths.RUNS / v / "loss.csv").is_file()}
    if losses:
        curves = pd.concat([pd.read_csv(p).assign(variant=v) for v, p in losses.items()], ignore_index=True)
        with atomic_path(plots / "loss.csv") as tmp:
            curves.to_csv(tmp, index=False)
        figures.loss_curves(curves, figures_dir / "loss_curves.png")
    models = {v: paths.RUNS / v / "model.pt" for v in runs.variant}
    for v in [v for v, p in models.items() if not p.is_file()]:
        print(f"report: {models.pop(v)} missing: {v} is left out of the comparison pictures")
    if not models:
        return
    networks = {v: load_networks(p)[0] for v, p in models.items()}
    test_images = load_split(paths.PREPARED, "test")
    chosen = figures.figure_pairs(read_pairs(paths.TEST_PAIRS), test_images, test_sources(paths.PREPARED))
    image, mask = figures.load_batch(test_images, MaskStore(paths.MASKS / "test"), chosen)
    labels = [f"hole {bins.percent_label(b)}" for b, _, _ in chosen]
    fills = {v: n["generator"] for v, n in networks.items()} | {label: bl.build(name)
                                                               for name, (label, _) in bl.BASELINES.items()}
    figures.comparison(fills, image, mask, labels, figures_dir / "comparison.png")
    for v, n in networks.items():
        if "detector" in n:
            figures.detector_heat_maps(n["generator"], n["detector"], image, mask, labels,
                                       figures_dir / f"detector_{v}.png")
