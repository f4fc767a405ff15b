"""The baselines stage: each classical fill (inpaint/evaluation/baselines.py) scored by the project's
evaluator on the recorded test pairs, with a variant's evaluation record (inpaint/evaluation/record.py) and an
MLflow run of its own. Apart from record.py, so that a change to a fill re-runs this stage and not every
variant's evaluation."""
from __future__ import annotations

import time

from inpaint import paths
from inpaint.config import Params
from inpaint.data.prepare import load_split
from inpaint.data.test_pairs import read_pairs
from inpaint.evaluation import baselines as bl, compare, evaluate as ev, record
from inpaint.io import atomic_dir, write_json
from inpaint.masks import MaskStore
from inpaint.provenance import tracking


def score_baselines(params: Params) -> dict:
    """The classical fills (inpaint/evaluation/baselines.py) scored by the project's evaluator on the recorded
    test pairs -> evals/baselines/<name>.json (the layout of evals/<variant>.json) and <name>_pairs.csv (the
    per-pair scores), and one MLflow run each (tagged `inpaint.kind` = baseline), so that they sit in the
    runs table beside the variants."""
    images, masks = load_split(paths.PREPARED, "test"), MaskStore(paths.MASKS / "test")
    pairs = read_pairs(paths.TEST_PAIRS)
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
            record.write_pair_scores(per_image, compare.pairs_path(out / f"{name}.json"))
    for name, scored in records.items():
        _log_baseline_run(params, name, scored)
    return records


def _log_baseline_run(params: Params, name: str, scored: dict) -> None:
    """One MLflow run per classical fill, with a train run's test metrics; the run of an earlier evaluation of
    the same fill is deleted (restorable in the UI), so the runs table shows each fill once."""
    client, experiment_id = tracking.open_experiment(params.tracking)
    earlier = client.search_runs([experiment_id], f"tags.`{tracking.TAG_KIND}` = 'baseline' and "
                                                  f"tags.`{tracking.TAG_VARIANT}` = '{name}'")
    for run in earlier:
        client.delete_run(run.info.run_id)
    run = client.create_run(experiment_id, run_name=f"baseline: {scored['label']}", tags={
        tracking.TAG_KIND: "baseline", tracking.TAG_VARIANT: name, tracking.TAG_FRAMEWORK: "classical fill",
        "mlflow.note.content": f"{scored['label']}: a classical fill (inpaint/evaluation/baselines.py), no "
                               "training, scored on the same test pairs as every variant.", **tracking.provenance()})
    rid = run.info.run_id
    tracking.log_params(client, rid, {"baseline": name, **{f"evaluate.{k}": v for k, v in scored["settings"].items()}})
    record.log_test_metrics(client, rid, scored["metrics"])
    record.log_run_figure(client, rid, scored["label"], scored["metrics"])
    client.set_terminated(rid)
