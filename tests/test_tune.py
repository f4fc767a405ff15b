"""Ray Tune studies (inpaint/training/tune.py): search spaces are checked before Ray starts; at the `ci` profile a
3-trial study in a temporary copy of the repository finishes with one trial failing, its completed trials are
scored on the test pairs into the study's table, and MLflow holds the parent run (the table as its
description), the nested trials named by their setting, the results table, the plot and the best params. The
same study stopped by Ctrl-C writes a partial table and resumes to the uninterrupted study's table."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import as_from_a_terminal, catches_sigint, registered_checkpoint, run_checked
from inpaint import stages
from inpaint.config import ParamsError, resolve
from inpaint.results import report as rp
from inpaint.training import tune

STUDY = {"variant": "gdn_det", "space": {"train.batch_size": {"grid": [1, 2, 4096]}}}  # 4096: more than the images
STOPPED = {"variant": "gdn_det", "space": {"train.batch_size": {"grid": [1, 2]}}}  # STUDY's trials that complete


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
    # every trial to its last step, whatever order the reports arrive in: an interrupted study can then end
    # with the uninterrupted one's table (ASHA's decisions depend on that order, and are not in Tune's saved state)
    params["tune"]["scheduler"] = "fifo"
    params["tune"]["studies"].update(ci3=STUDY, ci3_stopped=STOPPED)


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
    from inpaint import cluster

    cluster.stop_head(work)  # the local head the studies shared (ray.keep_alive_s)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _mlflow(work):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    return client, client.get_experiment_by_name("inpaint").experiment_id


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_a_finished_study_resumes_without_training_again(study):
    work, env, cli, _ = study
    log = run_checked([*cli, "tune", "ci3"], work, env)
    assert "resuming the study" in log
    client, exp = _mlflow(work)
    assert len(client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'tune_study'")) == 1
    assert len(client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'tune_trial'")) == 3


def test_an_interrupted_study_is_read_from_its_trials_and_grid(tmp_path):
    """The status of each trial from what it reported: all its steps -> completed (whether or not Tune had
    ended it), fewer and ended by Tune (`done`: ASHA) -> stopped early, fewer and not ended -> interrupted at
    that step, none -> interrupted when it had started, else not run; every grid point x samples that Tune had
    not created yet is a `not run` row. Only a completed trial can be the best."""
    from types import SimpleNamespace

    from inpaint.config import Study
    from inpaint.training.tune import UNFINISHED, best_trial, results_table

    study = Study.model_validate({"variant": "gdn_weight", "metric": "val/psnr", "samples": 2,
                                  "space": {"train.batch_size": {"grid": [2, 4, 8]}, "variant.gamma": {"uniform": [1, 2]}}})

    def trial(trial_id, batch, **metrics):
        return SimpleNamespace(metrics={"trial_id": trial_id, **metrics} if metrics else {}, error=None,
                               config={"train.batch_size": batch, "variant.gamma": 1.5},
                               path=str(tmp_path / trial_id))

    trials = [trial("t1", 2, step=4, done=False, **{"val/psnr": 20.0}), trial("t2", 4, step=2, done=True),
              trial("t3", 8, step=2, done=False), trial("t4", 2), trial("t5", 4)]
    table, _ = results_table(trials, study, steps=4, started={"t4"})
    assert table.status.tolist() == ["completed", "stopped early", "interrupted", "interrupted", "not run",
                                     "not run"]
    assert table.trial_id.tolist() == ["t1", "t2", "t3", "t4", "t5", ""]  # the point Tune had not created last
    assert table["train.batch_size"].iloc[-1] == 8 and pd.isna(table["variant.gamma"].iloc[-1])
    assert table.step.tolist()[:3] == [4, 2, 2]
    assert best_trial(table, study).trial_id == "t1" and table.status.isin(UNFINISHED).any()


@pytest.mark.e2e
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
        assert 0 < metrics["psnr_mean"] <= 100 and "test/psnr" in metrics  # one series over the bins


def _interrupted(cmd: list, work: Path, env: dict, trials: Path) -> tuple[int, str]:
    """Start `cmd` as a terminal would, in a process group of its own, and once a trial has registered a
    checkpoint written since the start, press Ctrl-C (SIGINT to the group). Returns (exit code, output)."""
    started = time.time()
    with tempfile.TemporaryFile("w+") as out:  # not a pipe: Ray writes more than one holds while we poll
        proc = subprocess.Popen(as_from_a_terminal(cmd), cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        deadline = time.monotonic() + 600
        while not registered_checkpoint(trials, since=started) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 600 s"
            time.sleep(0.1)
        running = proc.poll() is None
        if running:
            assert catches_sigint(proc.pid), "the study ignores or blocks SIGINT"
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=600)
        out.seek(0)
        log = out.read()
    assert running, f"the study ended before it could be stopped:\n{log[-3000:]}"
    return code, log


def _trial_steps(work, study: str, key: str) -> dict[str, list[int]]:
    """{trial id: the steps its MLflow run logged `key` at, sorted, repeats kept} of the study's trials."""
    client, exp = _mlflow(work)
    runs = client.search_runs([exp], filter_string=f"tags.`inpaint.tune.study` = '{study}' and "
                                                    "tags.`inpaint.kind` = 'tune_trial'")
    return {r.data.tags["inpaint.tune.trial_id"]: sorted(m.step for m in client.get_metric_history(r.info.run_id, key))
            for r in runs}


@pytest.mark.e2e
def test_a_study_stopped_by_ctrl_c_resumes_to_the_uninterrupted_table(study):
    """ci3's two completing trials as ci3_stopped, one trial at a time (tune.concurrency 1). Ctrl-C once the
    first has checkpointed: exit 130 with one `error:` line, the partial table with every grid point (the one
    Tune had not created yet as `not run`), no best_params.yaml, summary.json interrupted. The resume: every
    trial at its last step with each step logged once, the training checkpoints deleted, and the rows and
    table of the uninterrupted study (CPU: equal numbers). (A study whose driver is killed with -9:
    tests/test_multinode.py.)"""
    work, env, cli, _ = study
    name, out = "ci3_stopped", work / "reports" / "tune" / "ci3_stopped"
    folder = work / "checkpoints" / "tune" / name
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["tune"]["concurrency"] = 1
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        code, log = _interrupted([*cli, "tune", name], work, env, folder / "trials")
        assert code == 130 and f"error: tune {name}: interrupted before every trial finished" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        partial = pd.read_csv(out / "results.csv", keep_default_na=False)
        assert sorted(partial["train.batch_size"]) == [1, 2], partial
        assert set(partial.status) <= {"completed", "interrupted", "not run"}, partial
        assert "not run" in set(partial.status), partial
        assert (partial.trial_id == "").any(), "no grid point that Tune had not created yet"
        assert not (out / "best_params.yaml").exists()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["interrupted"] is True and summary["trials"] == 2
        assert "batch_size=2 (not run)" in (out / "tables" / f"{name}.md").read_text()
        log = run_checked([*cli, "tune", name], work, env)
    finally:
        (work / "params.yaml").write_text(original)
    assert "resuming the study" in log
    resumed = [line for line in log.splitlines() if "resumed from the checkpoint of step" in line]
    assert resumed and len(resumed) == len(set(resumed)), resumed  # each worker's line once

    # the files' text: every digit as written (ci3's failed trial has no step or score)
    final, reference = (pd.read_csv(work / "reports" / "tune" / s / "results.csv", dtype=str, keep_default_na=False)
                        for s in (name, "ci3"))
    same = ["setting", "train.batch_size", "val/psnr", "step", "status", "error"]
    final, reference = (t[same].sort_values("setting", ignore_index=True) for t in (final, reference))
    reference = reference[reference["train.batch_size"].isin(["1", "2"])].reset_index(drop=True)
    assert final.equals(reference), f"{final}\n{reference}"
    done = pd.read_csv(out / "results.csv", keep_default_na=False).query("status == 'completed'")
    assert len(done) == 2 and (out / "best_params.yaml").is_file()
    for key, steps in (("train/loss_g", [1, 2, 3, 4]), ("val/psnr", [2, 4])):
        logged = _trial_steps(work, name, key)
        assert all(logged[t] == steps for t in done.trial_id), (key, logged)  # each step trained and logged once
    tables = [pd.read_csv(work / "reports" / "tune" / s / "tables" / f"{s}.csv").drop(columns=["table", "variant"])
              for s in (name, "ci3")]
    assert tables[0].equals(tables[1])
    assert not (folder / "trials").exists() and all((work / m).is_file() for m in done.model)
    assert f"tune {name}: checkpoints/tune/{name} holds" in log and "training checkpoints deleted" in log
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False
