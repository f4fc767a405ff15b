"""Ray Tune studies (inpaint/tune.py): search spaces are checked before Ray starts; at the `ci` profile a
3-trial study in a temporary copy of the repository finishes with one trial failing, its completed trials are
scored on the test pairs into the study's table, and MLflow holds the parent run (the table as its
description), the nested trials named by their setting, the results table, the plot and the best params."""
import shutil
import sys
import tempfile
import time

import pandas as pd
import pytest
import yaml

from conftest import run_checked
from inpaint import report as rp, stages, tune
from inpaint.config import ParamsError, resolve

STUDY = {"variant": "gdn_det", "space": {"train.batch_size": {"grid": [1, 2, 4096]}}}  # 4096: more than the images


def _params(studies: dict):
    return resolve({"profile": "ci", "variants": {"gdn_det": {"framework": "det"}}, "tune": {"studies": studies}})


@pytest.mark.parametrize("space, named, reason", [
    ({"variant.exp_bse": {"grid": [2]}}, "space.variant.exp_bse", "exp_bse"),
    ({"data.image_size": {"grid": [128]}}, "space.data.image_size", "only variant.* "),
    ({"variant.exp_base": {"grid": [10, 1]}}, "space.variant.exp_base", "base > 1"),
    ({"variant.exp_base": {"uniform": [0.5, 10]}}, "space.variant.exp_base", "base > 1"),
    ({"variant": {"grid": [{"weight_mapping": "exp", "exp_base": 0.5}]}}, "space.variant", "base > 1"),
])
def test_a_value_the_params_refuse_is_named_before_ray_starts(space, named, reason):
    import ray

    params = _params({"bad": {"variant": "gdn_det", "space": space}})
    with pytest.raises(ParamsError, match="tune.studies.bad." + named) as e:
        stages.tune(params, "bad")
    assert reason in str(e.value)
    assert not ray.is_initialized()


@pytest.mark.parametrize("domain, reason", [({"choice": []}, "choice: empty list"),
                                            ({"loguniform": [0, 1]}, "needs low > 0"),
                                            ({"grid": [1], "choice": [2]}, "exactly one of")])
def test_a_malformed_domain_is_refused_on_load_naming_the_key(domain, reason):
    with pytest.raises(ParamsError, match=r"tune\.studies\.bad\.space\.variant\.gamma") as e:
        _params({"bad": {"variant": "gdn_det", "space": {"variant.gamma": domain}}})
    assert reason in str(e.value)


def test_a_trial_without_ray_train_workers_is_refused_naming_the_key():
    """train.num_workers 0 trains in the driver's process (Ray Train's local mode), which reports nothing to
    Tune: refused for the study's trials, whether set under tune.train or swept."""
    base = _params({"s": {"variant": "gdn_det", "space": {"train.seed": {"grid": [1]}}}})
    base.tune.train["num_workers"] = 0
    with pytest.raises(ParamsError, match=r"tune\.train: train\.num_workers 0 .* Tune receives no report"):
        tune.check_study(base, "s")
    swept = _params({"s": {"variant": "gdn_det", "space": {"train.num_workers": {"grid": [1, 0]}}}})
    with pytest.raises(ParamsError, match=r"tune\.studies\.s\.space\.train\.num_workers: value 0 is refused"):
        tune.check_study(swept, "s")
    tune.check_study(_params({"s": {"variant": "gdn_det", "space": {"train.num_workers": {"grid": [1, 2]}}}}), "s")


def test_unknown_study_and_unknown_variant_are_named():
    with pytest.raises(ParamsError, match="unknown study 'nope'"):
        tune.check_study(_params({}), "nope")
    with pytest.raises(ParamsError, match="tune.studies.s.variant: unknown variant 'gdn_zzz'"):
        _params({"s": {"variant": "gdn_zzz", "space": {"variant.gamma": {"grid": [1]}}}})


def test_trial_params_lay_the_trial_train_settings_and_partial_variant_settings_over_the_params():
    params = _params({"s": {"variant": "gdn_det", "space": {"variant": {"grid": [{"weight_mapping": "linear"}]}}}})
    trial = tune.trial_params(params, "s", {"variant": {"weight_mapping": "linear"}, "train.batch_size": 1})
    assert trial.variants["gdn_det"].weight_mapping == "linear"
    assert trial.variants["gdn_det"].detector_loss == "focal"  # untouched keys keep the variant's value
    assert trial.train.batch_size == 1 and trial.train.steps == params.tune.train["steps"]
    overrides, args = tune.override_lines(params, "s", {"variant": {"weight_mapping": "exp", "exp_base": 5}})
    assert overrides == {"variants": {"gdn_det": {"weight_mapping": "exp", "exp_base": 5}}}
    assert args == ["-S '++variants.gdn_det.weight_mapping=exp'", "-S '++variants.gdn_det.exp_base=5'"]


def _ci3(params: dict) -> None:
    params["profile"] = "ci"
    params["tune"]["studies"]["ci3"] = STUDY


@pytest.fixture(scope="module")
def study(repo_copy):
    """A copy of the repository at the ci profile with a 3-trial study, prepared data, masks and test pairs, run
    once."""
    work, env = repo_copy(_ci3)
    # A Ray temp dir of its own: isolated from any other Ray on the machine (a shared head included)
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    env["RAY_TMPDIR"] = ray_tmp
    cli = [sys.executable, "-m", "inpaint.cli"]  # from the copy (the working directory comes first)
    run_checked([*cli, "prepare"], work, env)
    run_checked([*cli, "masks"], work, env)
    run_checked([*cli, "pairs"], work, env)
    start = time.perf_counter()
    log = run_checked([*cli, "tune", "ci3"], work, env)
    print(f"inpaint tune ci3 (3 trials, ci) took {time.perf_counter() - start:.0f} s")
    yield work, env, cli, log
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _mlflow(work):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    return client, client.get_experiment_by_name("inpaint").experiment_id


def test_a_failing_trial_is_reported_as_failed_while_the_others_finish(study):
    work, _, _, _ = study
    table = pd.read_csv(work / "reports" / "tune" / "ci3" / "results.csv")
    assert len(table) == 3
    by_batch = table.set_index("train.batch_size")
    assert by_batch.loc[4096, "status"] == "failed"
    assert "larger than the training set" in by_batch.loc[4096, "error"]
    for batch in (1, 2):
        assert by_batch.loc[batch, "status"] in ("completed", "stopped early")
        assert 0 < by_batch.loc[batch, "val/psnr"] <= 100 and by_batch.loc[batch, "step"] in (2, 4)
    assert (table.status == "completed").any()


def test_mlflow_nests_the_trials_under_the_study_run_with_table_plot_and_best_params(study):
    work, _, _, _ = study
    client, exp = _mlflow(work)
    (parent,) = client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'tune_study'")
    pid = parent.info.run_id
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{pid}'")
    assert len(children) == 3 and {c.data.tags["inpaint.kind"] for c in children} == {"tune_trial"}
    table = pd.read_csv(work / "reports" / "tune" / "ci3" / "results.csv")
    names = {c.data.tags["inpaint.tune.trial_id"]: c.info.run_name for c in children}
    assert names == {t: f"ci3: batch_size={b}" for t, b in zip(table.trial_id, table["train.batch_size"])}
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED"]
    for child in children:
        if child.info.status == "FINISHED":
            history = client.get_metric_history(child.info.run_id, "val/psnr")
            assert history and all(0 < m.value <= 100 for m in history)
            assert any(k.startswith("train/loss_g") for k in child.data.metrics)  # the workers' own curves
    artifacts = {a.path for a in client.list_artifacts(pid, "results")}
    assert {"results/results.csv", "results/best_params.yaml", "results/ci3_metric.png",
            "results/results_table.json"} <= artifacts
    assert parent.data.params["study.space.train.batch_size.grid"] == "[1, 2, 4096]"
    best = yaml.safe_load((work / "reports" / "tune" / "ci3" / "best_params.yaml").read_text())
    assert best["train"]["batch_size"] in (1, 2)
    assert "dvc exp run -S '++train.batch_size=" in (work / "reports" / "tune" / "ci3" / "best_params.yaml").read_text()


def test_a_finished_study_resumes_without_training_again(study):
    work, env, cli, _ = study
    log = run_checked([*cli, "tune", "ci3"], work, env)
    assert "resuming the study" in log
    client, exp = _mlflow(work)
    assert len(client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'tune_study'")) == 1
    assert len(client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'tune_trial'")) == 3


def test_a_trial_without_report_or_error_is_not_run_and_never_the_best(tmp_path):
    """An interrupted study: a trial Tune never started is 'not run', not 'stopped early'."""
    from types import SimpleNamespace

    from inpaint.config import Study
    from inpaint.tune import best_trial, results_table

    study = Study.model_validate({"variant": "gdn_weight", "metric": "val/psnr",
                                  "space": {"train.batch_size": {"choice": [2, 4]}}})
    ran = SimpleNamespace(metrics={"trial_id": "t1", "step": 4, "val/psnr": 20.0}, error=None,
                          config={"train.batch_size": 2}, path=str(tmp_path / "t1"), metrics_dataframe=None)
    never = SimpleNamespace(metrics={}, error=None, config={"train.batch_size": 4}, path=str(tmp_path / "t2"),
                            metrics_dataframe=None)
    table, _ = results_table([ran, never], study, steps=4)
    assert table.set_index("trial_id").status.to_dict() == {"t1": "completed", "t2": "not run"}
    assert best_trial(table, study).trial_id == "t1"


def test_the_completed_trials_are_scored_on_the_test_pairs_into_the_study_table(study):
    work, _, _, _ = study
    out = work / "reports" / "tune" / "ci3"
    results = pd.read_csv(out / "results.csv")
    done = results[results.status == "completed"]
    long = pd.read_csv(out / "tables" / "ci3.csv")
    assert set(long.kind) == {"ours"}  # ci3 is no paper's study: no published rows
    assert set(long.variant) == set(done.trial_id)
    assert set(long.method) == {f"batch_size={b} (4 steps, ours)" for b in done["train.batch_size"]}
    assert set(long.hole_ratio_bin) == set(rp.BIN_LABELS) and {"PSNR (dB)", "SSIM", "l1 (%)"} <= set(long.metric_label)
    psnr = long[long.metric == "psnr"]
    assert psnr.value.between(0, 100).all() and (psnr.ci_low <= psnr.value).all()
    md = (out / "tables" / "ci3.md").read_text()
    assert "**PSNR (dB) (higher is better)**" in md and "are not rows" in md
    for row in results[results.status != "completed"].itertuples():
        assert f"{row.setting} ({row.trial_id}, {row.status}" in md
    assert all((work / m).is_file() for m in done.model)  # the final models are kept

    client, exp = _mlflow(work)
    (parent,) = client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'tune_study'")
    assert parent.data.tags["mlflow.note.content"].startswith("### tune ci3: trials on the test pairs")
    assert {"tables/ci3.md", "tables/ci3.html", "tables/ci3.csv", "tables/ci3.json"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    for rid in done.mlflow_run_id:  # the test metrics, as the evaluate stage logs them on a train run
        metrics = client.get_run(rid).data.metrics
        assert 0 < metrics["psnr_mean"] <= 100 and any(k.startswith("test/psnr/") for k in metrics)
