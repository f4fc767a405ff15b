"""The DVC stages' entry points: `main` (what pipelines/<stage>.py runs), `run` (what `inpaint <stage>` runs)
and one function per stage that calls into the module of its concept with the resolved params. Nothing here
parses a command line, and each stage function imports its code inside itself, so that a stage's code deps
(inpaint/provenance/codegraph.py) are its own function's, not every stage's."""
from __future__ import annotations

import sys
import time

from inpaint import lifetime, paths, weights
from inpaint.config import Params, ParamsError, load_params
from inpaint.io import write_json
from inpaint.provenance import codegraph

ARGUMENT = {"train": "VARIANT", "evaluate": "VARIANT", "tune": "STUDY"}  # the stages that take one


class StageFailed(RuntimeError):
    """A stage's work failed; the message says which and why in one line."""


def main(name: str, argv: list[str]) -> int:
    """The entry point of DVC stage `name` (pipelines/<name>.py): params validated before any work, then the
    stage; bad input ends in one `error:` line and exit code 2. Goes straight here, not through the CLI, so
    that a stage's code (inpaint/provenance/codegraph.py) is what it runs, not every command's."""
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
    STAGES[name](params, *argument)
    print(f"{' '.join([name, *argument])}: done in {time.perf_counter() - start:.1f} s")


def prepare(params: Params) -> dict:
    """The prepared crops at the working resolution, split by source photo (inpaint/data/prepare.py)."""
    from inpaint.data.prepare import prepare as prepare_data

    return prepare_data(params.data, paths.PREPARED)


def masks(params: Params) -> dict:
    """Training and test masks (with the leak check), the mask pictures and the `masks` MLflow run (the
    settings, the counts per bin and the pictures: what every variant was trained and tested on). The run is
    logged here, not in inpaint/masks/, which sits below the params and tracking code it would need."""
    from inpaint.masks import MaskStore, build_mask_sets, write_mask_pictures
    from inpaint.provenance import tracking

    summary = build_mask_sets(params.masks, params.data.image_size, paths.MASKS)
    pictures = write_mask_pictures(MaskStore(paths.MASKS / "train"), paths.REPORTS / "masks")
    write_json(paths.MASKS / "summary.json", summary)
    client, experiment_id = tracking.open_experiment(params.tracking)
    run_id = client.create_run(experiment_id, run_name="masks",
                               tags={tracking.TAG_KIND: "masks", **tracking.provenance()}).info.run_id
    tracking.log_params(client, run_id, params.masks.model_dump(mode="json"), prefix="masks.")
    counts = {tracking.metric_key("masks", split, key): count
              for split in ("train", "test") for key, count in summary[split]["per_bin"].items()}
    tracking.log_metrics(client, run_id, {**counts, "masks/masks_per_s": summary["masks_per_s"]})
    for picture in pictures:
        client.log_artifact(run_id, str(picture), artifact_path="pictures")
    client.set_terminated(run_id)
    return summary


def pairs(params: Params) -> None:
    """The recorded test pairs (data/test_pairs.csv) of the prepared test images and the test masks."""
    from inpaint import bins
    from inpaint.data.test_pairs import test_sources, write_test_pairs
    from inpaint.masks import MaskStore

    sources = test_sources(paths.PREPARED)
    write_test_pairs(MaskStore(paths.MASKS / "test"), sources, params.masks.test_seed, paths.TEST_PAIRS)
    print(f"pairs: {len(sources)} test images from {sources.nunique()} photos x {len(bins.BINS)} bins "
          f"-> {paths.TEST_PAIRS}")


def train(params: Params, variant: str) -> dict:
    """Under `dvc repro`, the first train stage trains every stale variant at once
    (inpaint/training/together.py); each stage then finishes its own variant, or fails with its error."""
    from inpaint.training import together
    from inpaint.training.train import train_variant

    if together.applies(params):
        failure = together.train_stale(params, variant)
        if failure:
            raise StageFailed(f"train {variant}: {failure}")
    return train_variant(params, variant, paths.RUNS / variant)


def tune(params: Params, study: str, samples: int | None = None, restart: bool = False) -> dict:
    """A Ray Tune study (`tune@STUDY` in studies/dvc.yaml). Its completed trials' final models are scored by
    the evaluate stage's own code and settings (inpaint/evaluation/record.py), so that the study's table puts
    them beside the variants' and the papers' numbers on the same test pairs."""
    from functools import partial

    from inpaint.evaluation.record import evaluate_model
    from inpaint.training.tune import run_study

    return run_study(params, study, partial(evaluate_model, params), samples=samples, restart=restart)


def evaluate(params: Params, variant: str) -> dict:
    """A trained variant's evaluation record (inpaint/evaluation/record.py)."""
    from inpaint.evaluation.record import evaluate_variant

    return evaluate_variant(params, variant)


def baselines(params: Params) -> dict:
    """The classical fills scored like a variant, one MLflow run each (inpaint/evaluation/baseline_record.py)."""
    from inpaint.evaluation.baseline_record import score_baselines

    return score_baselines(params)


def report(params: Params) -> dict:
    """The tables, pictures and the MLflow `report` run (inpaint/results/publish.py)."""
    from inpaint.results.publish import publish_report

    return publish_report(params)


STAGES = {stage.__name__: stage for stage in (prepare, masks, pairs, train, tune, evaluate, baselines, report)}
