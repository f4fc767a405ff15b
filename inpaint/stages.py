"""What each DVC stage does, from resolved params to files on disk. `pipelines/*.py` and `inpaint <stage>`
call these; nothing here parses a command line."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd

from inpaint import bins, paths, tracking
from inpaint.config import Params
from inpaint.io import atomic_path, write_json, write_text


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
    for k, v in tracking.flatten(params.masks.model_dump(mode="json")).items():
        client.log_param(rid, f"masks.{k}", v)
    for split in ("train", "test"):
        for key, count in summary[split]["per_bin"].items():
            client.log_metric(rid, tracking.metric_key("masks", split, key), count)
    client.log_metric(rid, "masks/masks_per_s", summary["masks_per_s"])
    for p in pictures:
        client.log_artifact(rid, str(p), artifact_path="pictures")
    client.set_terminated(rid)


def pairs(params: Params) -> None:
    """The recorded test pairs (data/test_pairs.csv) of the prepared test images and the test masks."""
    from inpaint.data.prepare import load_split
    from inpaint.masks import MaskStore

    n_images = len(load_split(paths.PREPARED, "test"))
    write_test_pairs(MaskStore(paths.MASKS / "test"), n_images, paths.TEST_PAIRS)
    print(f"pairs: {n_images} test images x {len(bins.BINS)} bins -> {paths.TEST_PAIRS}")


def write_test_pairs(test_masks, n_images: int, path: Path) -> None:
    """Per bin, test image k is paired with the bin's k-th test mask (cycling through the masks when there
    are more images): a fixed order, recorded, so every model is scored on exactly the same pairs."""
    rows = []
    for b in range(len(bins.BINS)):
        ids = test_masks.indices_in_bin(b)
        if len(ids) == 0:
            raise ValueError(f"the test mask set has no mask in bin {bins.label(b)}")
        rows += [{"bin": b, "image": k, "mask": int(ids[k % len(ids)])} for k in range(n_images)]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def train(params: Params, variant: str) -> dict:
    from inpaint.train import train_variant

    return train_variant(params, variant, paths.RUNS / variant)


def evaluate(params: Params, variant: str) -> dict:
    """Score a trained variant; write evals/<variant>.json and a per-bin CSV; log to its MLflow run: the
    metrics per bin with their confidence intervals (`test/...`) and the complexity (`complexity/...`)."""
    import mlflow

    from inpaint import evaluate as ev
    from inpaint.data.prepare import load_split
    from inpaint.masks import MaskStore

    generator, meta = ev.load_generator(paths.RUNS / variant / "model.pt")
    set_metrics = ev.SetMetrics(params.evaluate, params.weights)
    start = time.perf_counter()
    results, per_image = ev.evaluate(generator, load_split(paths.PREPARED, "test"), MaskStore(paths.MASKS / "test"),
                                     ev.read_pairs(paths.TEST_PAIRS), params.evaluate, set_metrics)
    seconds = time.perf_counter() - start
    pairs_per_s = len(per_image) / max(seconds, 1e-9)
    print(f"evaluate {variant}: {len(per_image)} pairs in {seconds:.1f} s ({pairs_per_s:.1f} pairs/s, all metrics)")
    complexity = ev.complexity(generator, meta)
    record = {"variant": variant, "metrics": results, "complexity": complexity, "pretrained": set_metrics.pretrained,
              "set_metrics": set_metrics.status, "pairs": len(per_image), "pairs_per_s": round(pairs_per_s, 2),
              "settings": {**params.evaluate.model_dump(mode="json"), "weights": params.weights}}
    write_json(paths.EVALS / f"{variant}.json", record)
    per_bin_csv = paths.EVALS / f"{variant}_per_bin.csv"
    with atomic_path(per_bin_csv) as tmp:
        per_bin = per_image.groupby("bin").mean().reset_index()
        per_bin.insert(1, "hole_ratio_bin", [bins.label(b) for b in per_bin.bin])
        per_bin.to_csv(tmp, index=False)

    client = mlflow.tracking.MlflowClient(tracking.tracking_uri(params.tracking.uri))
    run_id = meta["run_id"]
    logged = {tracking.metric_key("test", *k.split("/")): v for k, v in results.items()}
    logged.update({tracking.metric_key("complexity", k): v for k, v in complexity.items()})
    logged["evaluate/pairs_per_s"] = pairs_per_s
    for k, v in logged.items():
        if math.isfinite(v):
            client.log_metric(run_id, k, v)
    client.set_tag(run_id, "eval.pretrained", str(set_metrics.pretrained).lower())
    for name, status in set_metrics.status.items():
        client.set_tag(run_id, f"eval.{name}", status[:5000])
    for k, v in record["settings"].items():
        client.set_tag(run_id, f"eval.setting.{k}", str(v))
    client.log_artifact(run_id, str(per_bin_csv), artifact_path="evaluation")
    return record


def report(params: Params) -> dict:
    """The Weight / Adv / Det table (markdown, HTML, CSV) in reports/ and in an MLflow report run."""
    from inpaint import report as rp

    client, experiment_id = tracking.open_experiment(params.tracking)
    runs = rp.evaluated_runs(client, experiment_id)
    if runs.empty:
        raise ValueError(f"MLflow experiment {params.tracking.experiment!r} at "
                         f"{tracking.tracking_uri(params.tracking.uri)} has no evaluated run")
    table = rp.framework_table(runs)
    footnotes = []
    if (runs.pretrained == "false").any():
        footnotes.append("FID / LPIPS computed with RANDOM weights (tests only): uncalibrated, not comparable.")
    for variant in runs.variant:
        status = _eval_status(paths.EVALS / f"{variant}.json")
        for name, s in status.items():
            if s.startswith("not computed"):
                footnotes.append(f"{name.upper()} ({variant}): {s}")
    md = rp.to_markdown(table, sorted(set(footnotes)))
    out = paths.REPORTS
    write_text(out / "weight_adv_det.md", "# Weight / Adv / Det (GDN Sec. 4.3)\n\n" + md)
    with atomic_path(out / "weight_adv_det.csv") as tmp:
        table.to_csv(tmp)
    write_text(out / "weight_adv_det.html", table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-"))

    run = client.create_run(experiment_id, run_name="report", tags={tracking.TAG_KIND: "report",
                                                                  **tracking.provenance()})
    rid = run.info.run_id
    for suffix in ("md", "csv", "html"):
        client.log_artifact(rid, str(out / f"weight_adv_det.{suffix}"), artifact_path="tables")
    flat = table.copy()
    flat.columns = [f"{b} {m}" for b, m in table.columns]
    client.log_table(rid, data=flat.reset_index(), artifact_file="tables/weight_adv_det.json")
    client.set_terminated(rid)
    summary = {"report_run_id": rid, "rows": len(table), "variants": list(runs.variant)}
    write_json(out / "report.json", summary)
    print(md)
    return summary


def _eval_status(path: Path) -> dict:
    import json

    return json.loads(path.read_text()).get("set_metrics", {}) if path.is_file() else {}
