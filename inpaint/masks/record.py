"""The masks stage's MLflow run: the mask sets' settings, the counts per bin and the pictures, so that the
runs table shows what every variant was trained and tested on."""
from __future__ import annotations

from pathlib import Path

from inpaint.config import Params
from inpaint.provenance import tracking


def log_masks_run(params: Params, summary: dict, pictures: list[Path]) -> None:
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
