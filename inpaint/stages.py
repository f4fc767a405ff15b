"""What each DVC stage does, from resolved params to files on disk. `pipelines/*.py` and `inpaint <stage>`
call these; nothing here parses a command line."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from inpaint import bins, codegraph, compare, io, lifetime, paths, tracking, weights
from inpaint.config import Params, ParamsError, load_params
from inpaint.io import atomic_dir, atomic_path, write_json, write_text

ARGUMENT = {"train": "VARIANT", "evaluate": "VARIANT", "tune": "STUDY"}  # the stages that take one


class StageFailed(RuntimeError):
    """A stage's work failed; the message says which and why in one line."""


def main(name: str, argv: list[str]) -> int:
    """The entry point of DVC stage `name` (pipelines/<name>.py): params validated before any work, then the
    stage; bad input ends in one `error:` line and exit code 2. Goes straight here, not through the CLI, so
    that a stage's code (inpaint/codegraph.py) is what it runs, not every command's."""
    argument = ARGUMENT.get(name)
    if len(argv) != bool(argument):
        print(f"usage: python pipelines/{name}.py{' ' + argument if argument else ''}", file=sys.stderr)
        return 2
    lifetime.die_with_parent()  # `dvc repro` killed with -9 must not leave this stage running
    codegraph.record_imports(name)
    try:
        run(name, load_params(), *argv)
    except (ParamsError, weights.MissingWeights, lifetime.Busy, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C on `dvc repro`: one line, no traceback; outputs are whole or absent
        print(f"error: {e}" if str(e) else  # what an interrupted stage wrote (tune.StudyInterrupted)
              f"interrupted: stage {' '.join([name, *argv])} (a train stage resumes from its last checkpoint)",
              file=sys.stderr)
        return 130
    return 0


def run(name: str, params: Params, *argument: str) -> None:
    """Stage `name` on validated params, after the pretrained-weights check; prints its time."""
    if ARGUMENT.get(name) == "VARIANT" and argument[0] not in params.variants:
        raise ParamsError(f"params.yaml: no variant {argument[0]!r} under `variants` "
                          f"(there are: {', '.join(params.variants)})")
    weights.preflight(params)
    start = time.perf_counter()
    globals()[name](params, *argument)
    print(f"{' '.join([name, *argument])}: done in {time.perf_counter() - start:.1f} s")


def prepare(params: Params) -> dict:
    from inpaint.data.prepare import prepare as run

    return run(params.data, paths.PREPARED)


def masks(params: Params) -> dict:
    """Training and test masks (with the leak check) and the mask pictures."""
    from inpaint.masks import MaskStore, build_mask_sets, write_mask_pictures

    summary = build_mask_sets(params.masks, params.data.image_size, paths.MASKS)
    pictures = write_mask_pictures(MaskStore(paths.MASKS / "train"), paths.REPORTS / "masks")
    write_json(paths.MASKS / "summary.json", summary)
    _log_masks_run(params, summary, pictures)
    return summary


def _log_masks_run(params: Params, summary: dict, pictures: list[Path]) -> None:
    """An MLflow `masks` run: the contact sheets, the hole-ratio histogram and the counts per bin."""
    client, experiment_id = tracking.open_experiment(params.tracking)
    run = client.create_run(experiment_id, run_name="masks", tags={tracking.TAG_KIND: "masks", **tracking.provenance()})
    rid = run.info.run_id
    tracking.log_params(client, rid, params.masks.model_dump(mode="json"), prefix="masks.")
    counts = {tracking.metric_key("masks", split, key): count
              for split in ("train", "test") for key, count in summary[split]["per_bin"].items()}
    tracking.log_metrics(client, rid, {**counts, "masks/masks_per_s": summary["masks_per_s"]})
    for p in pictures:
        client.log_artifact(rid, str(p), artifact_path="pictures")
    client.set_terminated(rid)


def pairs(params: Params) -> None:
    """The recorded test pairs (data/test_pairs.csv) of the prepared test images and the test masks."""
    from inpaint.masks import MaskStore

    manifest = pd.read_csv(paths.PREPARED / "manifest.csv")
    sources = manifest[manifest.split == "test"].sort_values("index").source.reset_index(drop=True)
    write_test_pairs(MaskStore(paths.MASKS / "test"), sources, params.masks.test_seed, paths.TEST_PAIRS)
    print(f"pairs: {len(sources)} test images from {sources.nunique()} photos x {len(bins.BINS)} bins "
          f"-> {paths.TEST_PAIRS}")


def stratified_order(sources: pd.Series, rng: np.random.Generator) -> list[int]:
    """Test image indices, one photo after another: photos in a seeded order, then each photo's next crop, so
    that the first n pairs of a bin (evaluate.pairs_per_bin) come from min(n, photos) different photos."""
    photos = [rng.permutation(np.flatnonzero((sources == p).to_numpy())).tolist()
              for p in rng.permutation(sources.unique())]
    return [crops[r] for r in range(max(map(len, photos))) for crops in photos if r < len(crops)]


def write_test_pairs(test_masks, sources: pd.Series, seed: int, path: Path) -> None:
    """Per bin, every test image once, in `stratified_order`, the k-th paired with the k-th of the bin's
    test masks in a seeded order (cycling when there are more images): fixed and recorded, so every model
    is scored on exactly the same pairs."""
    rows = []
    for b in range(len(bins.BINS)):
        ids = test_masks.indices_in_bin(b)
        if len(ids) == 0:
            raise ValueError(f"the test mask set has no mask in bin {bins.label(b)}")
        rng = np.random.default_rng([seed, b])
        ids = rng.permutation(ids)
        rows += [{"bin": b, "image": image, "mask": int(ids[k % len(ids)])}
                 for k, image in enumerate(stratified_order(sources, rng))]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def train(params: Params, variant: str) -> dict:
    """Under `dvc repro`, the first train stage trains every stale variant at once (inpaint/together.py); each
    stage then finishes its own variant, or fails with its error."""
    from inpaint import together
    from inpaint.train import train_variant

    if together.applies(params):
        failure = together.train_stale(params, variant)
        if failure:
            raise StageFailed(f"train {variant}: {failure}")
    return train_variant(params, variant, paths.RUNS / variant)


def tune(params: Params, study: str, samples: int | None = None, restart: bool = False) -> dict:
    """A Ray Tune study (inpaint/tune.py; `tune@STUDY` in studies/dvc.yaml). Its completed trials' final models
    are scored by `evaluate_model`, the evaluate stage's own code and settings, so that the study's table
    (inpaint/study_table.py) puts them beside the variants' and the papers' numbers on the same test pairs."""
    from functools import partial

    from inpaint.tune import run_study

    return run_study(params, study, partial(evaluate_model, params), samples=samples, restart=restart)


def evaluate(params: Params, variant: str) -> dict:
    """Score a trained variant (`evaluate_model`) and measure its complexity; write evals/<variant>.json,
    metrics/<variant>.json, the per-pair scores (evals/<variant>_pairs.csv) and a per-bin CSV; tag its MLflow
    run with the complexity (`complexity.<key>`: constants of the architecture, not results to chart) and log
    the CSV to it."""
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    from inpaint import evaluate as ev

    model = paths.RUNS / variant / "model.pt"
    generator, meta = ev.load_generator(model)
    record, per_image = evaluate_model(params, model, variant, meta)
    record["complexity"] = ev.complexity(generator, meta)
    write_json(paths.EVALS / f"{variant}.json", record)
    write_json(paths.METRICS / f"{variant}.json", headline(record["metrics"], meta.get("steps"), record["absent"]))
    write_pair_scores(per_image, compare.pairs_path(paths.EVALS / f"{variant}.json"))
    per_bin_csv = paths.EVALS / f"{variant}_per_bin.csv"
    with atomic_path(per_bin_csv) as tmp:
        per_bin = per_image.drop(columns=["image", "mask"]).groupby("bin").mean().reset_index()
        per_bin.insert(1, "hole_ratio_bin", [bins.label(b) for b in per_bin.bin])
        per_bin.to_csv(tmp, index=False)
    client = MlflowClient(tracking.tracking_uri(params.tracking.uri))
    client.log_batch(meta["run_id"], tags=[RunTag(f"complexity.{k}", f"{tracking.significant(float(v))}")
                                           for k, v in record["complexity"].items()])
    client.log_artifact(meta["run_id"], str(per_bin_csv), artifact_path="evaluation")
    return record


def evaluate_model(params: Params, model: Path, name: str, meta: dict) -> tuple[dict, pd.DataFrame]:
    """What the evaluate stage does with a trained variant's model file, for any model file `model` (a
    variant's, or a tune trial's final model): score it on the recorded test pairs with the `evaluate`
    settings, and log to the MLflow run that trained it (meta["run_id"]) the metrics per bin
    (`log_test_metrics`), the evaluation's settings and speed as tags and the metrics-per-hole-ratio figure. Returns the
    evaluation record (evals/<variant>.json's layout, without the complexity) and the per-image scores."""
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    from inpaint import evaluate as ev

    start = time.perf_counter()
    results, per_image, set_metrics = ev.score(model, paths.PREPARED, paths.MASKS / "test", paths.TEST_PAIRS, params)
    seconds = time.perf_counter() - start
    pairs_per_s = len(per_image) / max(seconds, 1e-9)
    print(f"evaluate {name}: {len(per_image)} pairs in {seconds:.1f} s ({pairs_per_s:.1f} pairs/s, all metrics)")
    record = {"variant": name, "metrics": results, "pretrained": set_metrics.pretrained,
              "set_metrics": set_metrics.status, "absent": set_metrics.absent,
              "pairs": len(per_image), "pairs_per_s": round(pairs_per_s, 2),
              "pairs_per_bin": {bins.label(b): int(n) for b, n in per_image.groupby("bin").size().items()},
              "settings": {**params.evaluate.model_dump(mode="json"), "weights": params.weights},
              "provenance": evaluation_provenance(params, meta, set_metrics)}

    client, run_id = MlflowClient(tracking.tracking_uri(params.tracking.uri)), meta["run_id"]
    log_test_metrics(client, run_id, results)
    tags = {"eval.pretrained": str(set_metrics.pretrained).lower(), "eval.pairs_per_s": f"{pairs_per_s:.3g}",
            **{f"eval.{metric}": status[:5000] for metric, status in set_metrics.status.items()},
            **{f"eval.setting.{k}": str(v) for k, v in record["settings"].items()}}
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    _log_figure(client, run_id, name, results)
    return record, per_image


def write_pair_scores(per_image: pd.DataFrame, path: Path) -> None:
    """The per-pair scores (bin, image, mask, metrics; 4 significant digits) that the report's paired
    comparisons read."""
    with atomic_path(path) as tmp:
        per_image.to_csv(tmp, index=False, float_format="%.4g")


SERIES = ("psnr", "ssim", "l1", "lpips", "fid", "kid")  # per-bin metrics logged as one series each
RUN_HEADLINE = {"psnr": "psnr_mean", "ssim": "ssim_mean", "l1": "l1_pct_mean", "lpips": "lpips_mean"}


def log_test_metrics(client, run_id: str, results: dict[str, float]) -> None:
    """A scored run's test metrics in MLflow: each metric's values per hole-ratio bin as one series
    (`test/<metric>`, step = bin index 0-5, l1 in %: one chart per metric, not one per bin), the means over the
    bins that the runs table shows side by side (`psnr_mean`, ...) and FID and KID over all bins; 4 significant
    digits. The intervals stay in the evaluation record and the run's figure."""
    series = {f"test/{m}" if m != "l1" else "test/l1_pct":
              [results.get(f"{m}/{bins.key(b)}", math.nan) for b in range(len(bins.BINS))] for m in SERIES}
    means = headline(results, steps=None)
    scalars = {**{RUN_HEADLINE[m]: means[m] for m in RUN_HEADLINE if m in means},
               **{f"test/{m}_all": results[f"{m}/all"] for m in ("fid", "kid") if f"{m}/all" in results}}
    tracking.log_metrics(client, run_id, scalars, series)


HEADLINE_NETWORK = {"lpips": "lpips", "fid": "fid", "kid": "fid"}  # the metric network each one is computed with


def headline(results: dict[str, float], steps: int | None, absent: dict[str, str] | None = None) -> dict:
    """The few numbers `dvc exp show` / `dvc metrics diff` put side by side (metrics/<variant>.json): each
    per-image metric's mean over the hole-ratio bins (l1 in %, PSNR in dB), FID and KID over all bins, and the
    steps trained. A metric not computed is left out; with the evaluator's reasons (`MetricStatus.absent`,
    by metric network), `absent` says why, e.g. {"fid": "no pt_inception-... in the torch cache"}."""
    out: dict = {}
    for m in ("psnr", "ssim", "l1", "lpips"):
        values = [results.get(f"{m}/{bins.key(b)}", math.nan) for b in range(len(bins.BINS))]
        if all(math.isfinite(v) for v in values):
            out[m] = round(float(np.mean(values)), 4)
    out.update({m: round(results[f"{m}/all"], 4) for m in ("fid", "kid") if f"{m}/all" in results})
    reasons = {m: absent[net] for m, net in HEADLINE_NETWORK.items() if m not in out and net in (absent or {})}
    if reasons:
        out["absent"] = reasons
    return {**out, "steps": steps} if steps is not None else out


def evaluation_provenance(params: Params, meta: dict, set_metrics) -> dict:
    """Where an evaluated result comes from (docs/provenance.md): the trained model's fingerprint, data and
    mask manifests, run and the loss terms it switched off (from model.pt), and this evaluation's commit,
    profile, `weights` mode and metric networks."""
    git = tracking.provenance()
    return {"git_commit": git["git_sha"], "git_dirty": git["git_dirty"], "profile": params.profile,
            "weights": params.weights, "fingerprint": meta.get("fingerprint", "unknown"),
            "data_manifest": meta.get("data", "unknown"), "mask_manifest": meta.get("masks", "unknown"),
            "test_pairs": io.file_hash(paths.TEST_PAIRS), "train_run_id": meta.get("run_id"),
            "train_steps": meta.get("steps"), "switched_off": meta.get("switched_off", {}),
            "metric_networks": set_metrics.status}


def _log_figure(client, run_id: str, variant: str, results: dict[str, float]) -> None:
    """The run's PSNR / SSIM / l1 versus hole-ratio figure, with the 95 % intervals."""
    from inpaint import figures

    figures.log_figure(client, run_id, figures.run_curves(results, f"{variant}: test metrics per hole ratio"),
                       "evaluation/metrics_vs_ratio.png")


def baselines(params: Params) -> dict:
    """The classical fills (inpaint/baselines.py) scored by the project's evaluator on the recorded test
    pairs -> evals/baselines/<name>.json (the layout of evals/<variant>.json) and <name>_pairs.csv (the
    per-pair scores), and one MLflow run each (tagged `inpaint.kind` = baseline), so that they sit in the
    runs table beside the variants."""
    from inpaint import baselines as bl, evaluate as ev
    from inpaint.data.prepare import load_split
    from inpaint.masks import MaskStore

    images, masks, pairs = load_split(paths.PREPARED, "test"), MaskStore(paths.MASKS / "test"), ev.read_pairs(paths.TEST_PAIRS)
    set_metrics = ev.SetMetrics(params.evaluate, params.weights)
    records = {}
    with atomic_dir(paths.EVALS / "baselines") as out:
        for name, (label, _) in bl.BASELINES.items():
            start = time.perf_counter()
            results, per_image = ev.evaluate(bl.build(name), images, masks, pairs, params.evaluate, set_metrics)
            print(f"baselines {name}: {len(per_image)} pairs in {time.perf_counter() - start:.1f} s")
            records[name] = {"variant": name, "label": label, "metrics": results, "pretrained": set_metrics.pretrained,
                             "set_metrics": set_metrics.status, "pairs": len(per_image),
                             "settings": {**params.evaluate.model_dump(mode="json"), "weights": params.weights}}
            write_json(out / f"{name}.json", records[name])
            write_pair_scores(per_image, compare.pairs_path(out / f"{name}.json"))
    for name, record in records.items():
        _log_baseline_run(params, name, record)
    return records


def _log_baseline_run(params: Params, name: str, record: dict) -> None:
    """One MLflow run per classical fill, with a train run's test metrics; the run of an earlier evaluation of
    the same fill is deleted (restorable in the UI), so the runs table shows each fill once."""
    client, experiment_id = tracking.open_experiment(params.tracking)
    earlier = client.search_runs([experiment_id], f"tags.`{tracking.TAG_KIND}` = 'baseline' and "
                                                  f"tags.`{tracking.TAG_VARIANT}` = '{name}'")
    for run in earlier:
        client.delete_run(run.info.run_id)
    run = client.create_run(experiment_id, run_name=f"baseline: {record['label']}", tags={
        tracking.TAG_KIND: "baseline", tracking.TAG_VARIANT: name, tracking.TAG_FRAMEWORK: "classical fill",
        "mlflow.note.content": f"{record['label']}: a classical fill (inpaint/baselines.py), no training, scored on "
                               "the same test pairs as every variant.", **tracking.provenance()})
    rid = run.info.run_id
    tracking.log_params(client, rid, {"baseline": name, **{f"evaluate.{k}": v for k, v in record["settings"].items()}})
    log_test_metrics(client, rid, record["metrics"])
    _log_figure(client, rid, record["label"], record["metrics"])
    client.set_terminated(rid)


def report(params: Params) -> dict:
    """The ranked headline with its paired comparisons and the papers' tables (reports/tables/<name>.md/.html/
    .csv, all of them in index.html), pictures (reports/figures; the CSVs behind them in reports/plots) and the
    few summary numbers `dvc exp show` compares (metrics/headline.json), from the DVC outputs of the variants in
    params.yaml and of the baselines; an MLflow `report` run mirrors them: the headline table as its
    description, the summary numbers as metrics, tables and figures as artifacts."""
    from inpaint import report as rp

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
        write_text(tmp / "index.html", _index_html([head, *tables], skipped))
    with atomic_dir(paths.REPORTS / "plots") as plots, atomic_dir(paths.REPORTS / "figures") as figures:
        _pictures(runs, baselines, head, plots, figures)
    write_json(paths.METRICS / "headline.json", rp.summary_metrics(head))
    print(f"report: {head.verdict}")
    rid = _log_report_run(params, head, tables, skipped)
    summary = {"report_run_id": rid, "tables": {t.name: int(t.rows.method.nunique()) for t in tables},
               "skipped": skipped + missing, "variants": list(runs.variant), "baselines": list(baselines.get("variant", []))}
    write_json(paths.REPORTS / "report.json", summary)
    return summary


def _log_report_run(params: Params, head, tables: list, skipped: list[str]) -> str:
    """The MLflow mirror of the report: a new `report` run whose description (MLflow renders it as markdown
    on the run page) is the headline table."""
    from inpaint import report as rp

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


def _index_html(tables: list, skipped: list[str]) -> str:
    """Every table on one page, after the ranking figure (reports/figures/all_ranked.png, beside tables/)."""
    import html

    from inpaint.report import HTML_STYLE, to_html

    body = "\n<hr>\n".join(to_html(t, standalone=False) for t in tables)
    notes = "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
    figure = "<img class=\"ranking\" src=\"../figures/all_ranked.png\" alt=\"ranking of every variant and fill\">"
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>inpaint report</title>{HTML_STYLE}</head>"
            f"<body>\n<h1>inpaint report</h1>\n{figure}\n{body}\n" + (f"<ul>{notes}</ul>" if notes else "")
            + "</body></html>\n")


def _pictures(runs: pd.DataFrame, baselines: pd.DataFrame, head, plots: Path, figures_dir: Path) -> None:
    """The ranking of the headline table (all_ranked.png), metric-versus-hole-ratio plots (variants and
    baselines) and overlaid loss curves from the DVC outputs; the comparison grid and the detector heat maps
    from each variant's runs/<variant>/model.pt (and the baselines) on the fixed figure pairs."""
    from inpaint import baselines as bl, figures
    from inpaint.data.prepare import load_split
    from inpaint.evaluate import load_networks, read_pairs
    from inpaint.masks import MaskStore

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
    manifest = pd.read_csv(paths.PREPARED / "manifest.csv")
    sources = manifest[manifest.split == "test"].sort_values("index").source.reset_index(drop=True)
    chosen = figures.figure_pairs(read_pairs(paths.TEST_PAIRS), test_images, sources)
    image, mask = figures.load_batch(test_images, MaskStore(paths.MASKS / "test"), chosen)
    labels = [f"hole {bins.percent_label(b)}" for b, _, _ in chosen]
    fills = {v: n["generator"] for v, n in networks.items()} | {label: bl.build(name)
                                                               for name, (label, _) in bl.BASELINES.items()}
    figures.comparison(fills, image, mask, labels, figures_dir / "comparison.png")
    for v, n in networks.items():
        if "detector" in n:
            figures.detector_heat_maps(n["generator"], n["detector"], image, mask, labels,
                                       figures_dir / f"detector_{v}.png")
