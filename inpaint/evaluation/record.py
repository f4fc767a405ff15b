"""The evaluation record: what scoring a model on the recorded test pairs writes, for a trained variant, a Tune
trial's final model and each classical fill alike (inpaint/evaluation/baseline_record.py). On disk:
evals/<name>.json (metrics with intervals, settings, provenance), the per-pair scores that the report's paired
comparisons read, and for a variant metrics/<variant>.json (the numbers `dvc exp show` compares) and a per-bin CSV.
In MLflow: the test metrics, settings and figure on the run that trained the model, or a run of its own for a
classical fill."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from inpaint import bins, io, paths, plotting
from inpaint.config import Params
from inpaint.evaluation import compare, evaluate as ev
from inpaint.io import atomic_path, write_json
from inpaint.provenance import tracking


def evaluate_variant(params: Params, variant: str) -> dict:
    """Score a trained variant (`evaluate_model`) and measure its complexity; write evals/<variant>.json,
    metrics/<variant>.json, the per-pair scores (evals/<variant>_pairs.csv) and a per-bin CSV; tag its MLflow
    run with the complexity (`complexity.<key>`: constants of the architecture, not results to chart) and log
    the CSV to it."""
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
    (`log_test_metrics`), the evaluation's settings and speed as tags and the metrics-per-hole-ratio figure.
    Returns the evaluation record (evals/<variant>.json's layout, without the complexity) and the per-image
    scores."""
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
    log_run_figure(client, run_id, name, results)
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


def log_run_figure(client, run_id: str, name: str, results: dict[str, float]) -> None:
    """The run's PSNR / SSIM / l1 versus hole-ratio figure, with the 95 % intervals."""
    plotting.log_figure(client, run_id, plotting.run_curves(results, f"{name}: test metrics per hole ratio"),
                       "evaluation/metrics_vs_ratio.png")
