"""The whole DVC pipeline at the `ci` profile, in a temporary copy of the repository, checked through
what a researcher sees: the MLflow store and the report table."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import (as_from_a_terminal, catches_sigint, command_lines, registered_checkpoint, run_checked,
                      trained_in_this_process)
from inpaint import bins
from inpaint.provenance import codegraph
from test_dvc_deps import imports_outside_deps

pytestmark = pytest.mark.e2e
# one variant per framework family and report table (all twelve would cost ~40 s each of Ray start-up)
VARIANTS = ("gdn_weight", "gdn_adv", "gdn_det", "lgnet_c_l_g_att", "pennet")
RANGES = {"l1": (0, 100), "psnr": (0, 100), "ssim": (-1, 1), "fid": (0, math.inf), "kid": (-math.inf, math.inf),
          "lpips": (0, 2)}


def _ci_profile(params: dict) -> None:
    params["profile"] = "ci"
    params["weights"] = "random"  # the explicit tests-only switch: FID/LPIPS code paths run
    params["variants"] = {k: v for k, v in params["variants"].items() if k in VARIANTS}
    params["ray"] = {"keep_alive_s": 1800}  # one local head for the module's tests, stopped at its end


@pytest.fixture(scope="module")
def pipeline(repo_copy, tmp_path_factory):
    """A copy of the repository at the ci profile with random metric weights, after `dvc repro`; every stage
    process and Ray worker records the inpaint modules it imported (inpaint/provenance/codegraph.py)."""
    work, env = repo_copy(_ci_profile)
    env[codegraph.RECORD_ENV] = str(tmp_path_factory.mktemp("imports"))
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    run_checked(["git", "init", "-q"], work, env)
    run_checked([*git, "add", "-A"], work, env)
    run_checked([*git, "commit", "-qm", "copy"], work, env)
    start = time.perf_counter()
    log = run_checked([str(Path(sys.executable).parent / "dvc"), "repro"], work, env, timeout=1800)
    print(f"dvc repro (ci) took {time.perf_counter() - start:.0f} s")
    yield work, env, log
    from inpaint import cluster

    cluster.stop_head(work)  # the local head the stages shared (its watchdog would stop it a minute later)


def _mlflow(work):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("inpaint")
    assert exp is not None, "the pipeline made no MLflow experiment"
    return client, exp.experiment_id


def test_every_variant_is_trained_and_evaluated_in_mlflow(pipeline):
    work, _, _ = pipeline
    client, exp = _mlflow(work)
    runs = client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'train'")
    by_variant = {r.data.tags["inpaint.variant"]: r for r in runs}
    assert set(by_variant) == set(VARIANTS)
    for variant, run in by_variant.items():
        assert run.data.tags["eval.pretrained"] == "false"  # random weights are recorded as such
        assert any(k.startswith("train/loss_g") for k in run.data.metrics), variant
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"checkpoint", "train", "evaluation"} <= artifacts, (variant, artifacts)
        record = json.loads((work / "evals" / f"{variant}.json").read_text())["metrics"]
        for metric, (lo, hi) in RANGES.items():  # one series per metric, step = bin: one chart, not six
            key = "test/l1_pct" if metric == "l1" else f"test/{metric}"
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            assert [m.step for m in history] == list(range(len(bins.BINS))), (variant, key)
            for b, m in enumerate(history):
                assert lo <= m.value <= hi and math.isfinite(m.value), (variant, key, b)
                assert m.value == pytest.approx(record[f"{metric}/{bins.key(b)}"], rel=1e-3)  # 4 significant digits
        assert {"test/fid_all", "test/kid_all"} <= run.data.metrics.keys(), variant
        assert {"complexity.params_m", "complexity.gflops_256", "complexity.infer_ms_cpu",  # constants: tags
                "eval.pairs_per_s"} <= run.data.tags.keys(), variant
        pairs = pd.read_csv(work / "evals" / f"{variant}_pairs.csv")  # the per-pair scores of the comparisons
        assert list(pairs.columns[:3]) == ["bin", "image", "mask"] and pairs.psnr.notna().all()


def test_every_module_a_stage_imported_at_run_time_is_a_dvc_dep(pipeline):
    """The run-time check of dvc.yaml's deps, independent of codegraph's static reading of the source."""
    _, env, _ = pipeline
    records = Path(env[codegraph.RECORD_ENV])
    assert {p.stem.rsplit("-", 1)[0] for p in records.glob("*.txt")} >= {
        "prepare", "masks", "pairs", "train", "evaluate", "baselines", "report"}
    assert imports_outside_deps(records) == {}


def test_report_run_holds_the_tables_and_pictures(pipeline):
    work, _, _ = pipeline
    client, exp = _mlflow(work)
    reports = client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'report'")
    assert len(reports) == 1
    report = reports[0]
    rid = report.info.run_id
    artifacts = {a.path for a in client.list_artifacts(rid, "tables")}
    for name in ("headline", "weight_adv_det", "gdn_table1", "gdn_table2", "complexity"):
        assert {f"tables/{name}.md", f"tables/{name}.csv", f"tables/{name}.html", f"tables/{name}.json"} <= artifacts
    pictures = {a.path for a in client.list_artifacts(rid, "figures")}
    assert {"figures/comparison.png", "figures/psnr_vs_ratio.png", "figures/detector_gdn_det.png",
            "figures/loss_curves.png"} <= pictures
    assert "plots/metric_vs_ratio.csv" in {a.path for a in client.list_artifacts(rid, "plots")}
    # the run page shows the ranked headline and its verdict; the run's metrics are the few summary numbers
    note = report.data.tags["mlflow.note.content"]
    assert re.search(r"\nmethod +PSNR \(dB\) ↑ +SSIM ↑ +l1 \(%\) ↓", note) and "**Verdict: " in note
    summary = json.loads((work / "metrics" / "headline.json").read_text())
    assert report.data.metrics == pytest.approx(summary) and summary["variants"] == len(VARIANTS)
    assert "figures/all_ranked.png" in {a.path for a in client.list_artifacts(rid, "figures")}
    # the saved view of the Views menu: every scored run (variants and fills), best PSNR first
    view = json.loads(client.get_experiment(exp).tags["mlflow.sharedViewState.headline"])
    assert view["name"] and "psnr_mean" in json.loads(view["state"])["orderByKey"]
    shown = client.search_runs([exp], json.loads(view["state"])["searchFilter"])
    assert {r.data.tags["inpaint.kind"] for r in shown} == {"train", "baseline"}
    assert {r.data.tags["inpaint.variant"] for r in shown} >= {*VARIANTS, "telea", "navier_stokes", "mean_colour"}
    # the tidy CSV: one row per method x metric x bin, our rows first, the baselines beside them
    table = pd.read_csv(work / "reports" / "tables" / "weight_adv_det.csv")
    ours = list(dict.fromkeys(table.method[table.kind == "ours"]))
    assert [i.split()[0] for i in ours] == ["Weight", "Adv", "Det"]
    assert {"OpenCV Telea (baseline)", "OpenCV Navier-Stokes (baseline)", "Mean colour (baseline)"} <= set(table.method)
    assert set(table.hole_ratio_bin) == {bins.percent_label(b) for b in range(len(bins.BINS))}
    assert table[table.kind != "published"].value.notna().all()
    md = (work / "reports" / "tables" / "weight_adv_det.md").read_text()
    assert "random weights" in md and "**PSNR (dB)" in md and "±" in md
    for name in ("telea", "navier_stokes", "mean_colour"):
        assert (work / "evals" / "baselines" / f"{name}.json").is_file()


def test_train_runs_carry_headline_metrics_and_a_curve(pipeline):
    work, _, _ = pipeline
    client, exp = _mlflow(work)
    for run in client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'train'"):
        assert {"psnr_mean", "ssim_mean", "l1_pct_mean"} <= run.data.metrics.keys(), run.data.tags["inpaint.variant"]
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
        assert "evaluation/metrics_vs_ratio.png" in figures
        assert {"startup/ray_s", "startup/setup_s"} <= run.data.metrics.keys()


def test_train_metrics_say_where_the_start_up_went(pipeline):
    """The driver's seconds before Ray, Ray's until the worker's train function runs, the worker's until the
    first step: each a positive part of the stage, the last two inside the fit's seconds."""
    work, _, _ = pipeline
    for variant in VARIANTS:
        summary = json.loads((work / "runs" / variant / "train_metrics.json").read_text())
        assert summary["startup_driver_s"] > 0 and summary["startup_ray_s"] > 0 and summary["startup_setup_s"] > 0
        assert summary["startup_ray_s"] + summary["startup_setup_s"] < summary["seconds"], summary


def test_second_repro_is_a_no_op_and_a_param_change_reruns_only_its_stages(pipeline):
    work, env, _ = pipeline
    dvc = str(Path(sys.executable).parent / "dvc")
    start = time.perf_counter()
    log = run_checked([dvc, "repro"], work, env)
    print(f"no-op dvc repro took {time.perf_counter() - start:.1f} s")
    assert "Running stage" not in log, log
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"] = {"steps": 3}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = run_checked([dvc, "status", "dvc.yaml"], work, env)  # the default pipeline, not studies/dvc.yaml
    finally:
        (work / "params.yaml").write_text(original)
    changed = {line.split(":")[0] for line in status.splitlines() if line and not line.startswith((" ", "\t"))}
    assert changed == {f"train@{v}" for v in VARIANTS}, status


def test_mask_pictures_are_in_mlflow(pipeline):
    work, _, _ = pipeline
    client, exp = _mlflow(work)
    runs = client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'masks'")
    assert len(runs) == 1
    pictures = {a.path.split("/")[-1] for a in client.list_artifacts(runs[0].info.run_id, "pictures")}
    assert "ratio_histogram.png" in pictures and {f"contact_{bins.key(b)}.png" for b in range(6)} <= pictures
    assert runs[0].data.metrics[f"masks/train/{bins.key(5)}"] == 32  # the ci profile's quota per bin


def test_dvc_metrics_and_plots_render(pipeline):
    work, env, _ = pipeline
    dvc = str(Path(sys.executable).parent / "dvc")
    metrics = run_checked([dvc, "metrics", "show"], work, env)
    assert "metrics/headline.json" in metrics and "failed" not in metrics.lower()
    assert max(map(len, metrics.splitlines())) <= 120, metrics  # a few columns, not one per variant and bin
    run_checked([dvc, "plots", "show", "-o", str(work / "plots_html")], work, env)
    html = (work / "plots_html" / "index.html").read_text()
    assert "ratio_histogram" in html and "<script src=\"http" not in html  # images only: renders offline
    assert "comparison.png" in html and "loss_curves.png" in html and "psnr_vs_ratio.png" in html
    assert html.index("all_ranked.png") < html.index("comparison.png")  # the ranking first


def test_results_prints_the_ranked_headline_in_120_columns(pipeline):
    work, env, _ = pipeline
    out = run_checked([str(Path(sys.executable).parent / "inpaint"), "results"], work, {**env, "COLUMNS": "120"})
    lines = out.splitlines()
    assert lines[0].startswith("Headline: every variant and classical fill, ranked by PSNR")
    assert any(line.startswith("Verdict: ") and " of 5 variants beat the best classical fill on PSNR" in line
               for line in lines)
    assert sum(line.startswith("#") for line in lines) >= len(VARIANTS) + 3  # every variant and fill, ranked
    assert max(map(len, lines)) <= 120


def _train_runs(work, variant: str) -> list:
    client, exp = _mlflow(work)
    return client.search_runs([exp], filter_string=f"tags.`inpaint.variant` = '{variant}' and "
                                                    "tags.`inpaint.kind` = 'train'", order_by=["start_time ASC"])


def _steps_logged(work, run_id: str) -> list[int]:
    client, _ = _mlflow(work)
    return sorted(m.step for m in client.get_metric_history(run_id, "train/loss_g"))


def test_a_code_change_retrains_from_step_0_under_a_new_run(pipeline):
    """One edited line of inpaint/losses/ changes the run fingerprint: DVC marks every train stage stale and
    the re-run trains every step again under a new MLflow run, instead of restoring the finished checkpoint.
    With ray.keep_runs=1 the new run's driver deletes the old fingerprint's run folder."""
    work, env, _ = pipeline
    dvc = str(Path(sys.executable).parent / "dvc")
    (before,) = _train_runs(work, "gdn_weight")
    storage = work / "checkpoints" / "gdn_weight"
    assert (storage / f"gdn_weight-{before.data.tags['fingerprint']}" / "model.pt").is_file()  # its result
    loss_file, params_file = work / "inpaint" / "losses" / "reconstruction.py", work / "params.yaml"
    original, original_params = loss_file.read_text(), params_file.read_text()
    loss_file.write_text(original + "\n# an edited line\n")
    params = yaml.safe_load(original_params)
    params["ray"] = {**(params.get("ray") or {}), "keep_runs": 1, "concurrent": False}  # this variant alone
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = run_checked([dvc, "status", "dvc.yaml"], work, env)
        stale = {line.split(":")[0] for line in status.splitlines() if line and not line.startswith((" ", "\t"))}
        assert {f"train@{v}" for v in VARIANTS} <= stale, status
        log = run_checked([dvc, "repro", "train@gdn_weight"], work, env)
    finally:
        loss_file.write_text(original)
        params_file.write_text(original_params)
    assert "resumed" not in log, log[-3000:]
    runs = _train_runs(work, "gdn_weight")
    assert [r.info.run_id for r in runs][0] == before.info.run_id and len(runs) == 2
    after = runs[1]
    assert after.data.tags["fingerprint"] != before.data.tags["fingerprint"]
    assert _steps_logged(work, after.info.run_id) == [1, 2]  # every step trained again, once
    model = __import__("torch").load(work / "runs" / "gdn_weight" / "model.pt", weights_only=True)
    assert model["meta"]["fingerprint"] == after.data.tags["fingerprint"]
    assert model["meta"]["run_id"] == after.info.run_id
    old_run = f"gdn_weight-{before.data.tags['fingerprint']}"
    assert f"removed 1 run folder(s) of older fingerprints beyond ray.keep_runs=1: {old_run}" in log, log[-3000:]
    # beside the run folder: the lock and how its training with the others ended (inpaint/training/together.py)
    assert sorted(p.name for p in storage.iterdir()) == [f"gdn_weight-{after.data.tags['fingerprint']}",
                                                         "together.json", "train.lock"]


def test_a_killed_driver_or_stopped_dvc_repro_resumes_once_and_only_loopback_listens(pipeline):
    """`inpaint train` of an unchanged, finished variant trains from step 0 under a new MLflow run
    (train.resume is `interrupted`). Then 8 steps on 2 Ray Train workers, stopped twice, each time once the run
    has registered a checkpoint since its start:
    - the driver (`inpaint train`) killed with -9: meanwhile nothing listens beyond loopback and a second
      `inpaint train` of the variant is refused with one line; the kill leaves no training on the head;
    - `dvc repro`, which resumes the run, stopped by Ctrl-C: one line, its stage gone, no result;
    - the next resumes in the same MLflow run from the last checkpoint, logs every step once and leaves no
      Ray checkpoint behind, only the result; a second one has nothing to do.
    (`dvc repro` killed with -9, whose stages must go with it: tests/test_together.py.)"""
    import psutil

    from inpaint import checkpoints, cluster

    work, env, _ = pipeline
    inpaint, dvc = (str(Path(sys.executable).parent / name) for name in ("inpaint", "dvc"))
    done = len(_train_runs(work, "gdn_adv"))
    run_checked([inpaint, "train", "gdn_adv"], work, env)
    runs = _train_runs(work, "gdn_adv")
    assert len(runs) == done + 1 and _steps_logged(work, runs[-1].info.run_id) == [1, 2]

    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"] = {"steps": 8, "checkpoint_every": 2, "image_every": 100, "num_workers": 2}
    params["ray"] = {**(params.get("ray") or {}), "concurrent": False}  # this variant alone (tests/test_together.py)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    storage = work / "checkpoints" / "gdn_adv"
    try:
        # kill -9 of the driver, a second trainer refused meanwhile
        started = time.time()
        driver = subprocess.Popen([inpaint, "train", "gdn_adv"], cwd=work, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while _lock_holder(storage) != driver.pid:  # the second starts once the first holds the variant's lock
            assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()[0][-3000:]
            time.sleep(0.05)
        second = subprocess.run([inpaint, "train", "gdn_adv"], cwd=work, env=env, capture_output=True, text=True,
                                timeout=300)
        listening, head = set(), None
        while not registered_checkpoint(storage, since=started) and driver.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            listening |= _listening(_ray_processes_of(work, driver.pid))
            head = head or cluster.running_head(work)
            time.sleep(0.05)
        assert driver.poll() is None, f"the run ended before it could be killed:\n{driver.communicate()[0][-3000:]}"
        assert head, "no local head seen while the driver ran"
        driver.kill()
        driver.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while trainings := [c for _, c in command_lines(cluster.session_processes(head["session"]))
                            if "RayTrainWorker" in c or "TrainController" in c]:
            assert time.monotonic() < deadline, f"the killed driver's training still runs after 60 s: {trainings}"
            time.sleep(0.5)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
        assert f"training of variant gdn_adv is already running (pid {driver.pid}" in second.stderr
        assert listening, "no listening socket seen during training"
        outside = {s for s in listening if not cluster.is_loopback(s[0])}
        assert not outside, f"listening beyond loopback during a 2-worker run: {sorted(outside)}"
        killed = _train_runs(work, "gdn_adv")[-1]
        run = storage / f"gdn_adv-{killed.data.tags['fingerprint']}"

        # Ray's num_to_keep=2, plus the one the worker was writing at the kill; the next attempt prunes to KEEP
        assert 0 < len(checkpoints.on_disk(run)) <= checkpoints.KEEP + 1, f"{run.name}:\n{_tree(storage)}"
        # Ctrl-C in a terminal: SIGINT to dvc's whole process group, once the resumed run has checkpointed
        proc, stage = _dvc_repro_until_checkpoint(as_from_a_terminal([dvc, "repro", "train@gdn_adv"]), work, env,
                                                  storage, start_new_session=True)
        os.killpg(proc.pid, signal.SIGINT)
        interrupted_log = proc.communicate(timeout=120)[0]
        _, alive = psutil.wait_procs(stage, timeout=60)
        assert proc.returncode != 0 and not alive, interrupted_log[-3000:]
        assert "interrupted: stage train gdn_adv" in interrupted_log, interrupted_log[-3000:]
        assert not (work / "runs" / "gdn_adv" / "model.pt").exists()  # no result from an interrupted run
        log = run_checked([dvc, "repro", "train@gdn_adv"], work, env)
        again = run_checked([dvc, "repro", "train@gdn_adv"], work, env)
    finally:
        (work / "params.yaml").write_text(original)
    resumed = [int(line.rsplit(" ", 1)[1]) for line in (interrupted_log + log).splitlines()
               if "resumed from the checkpoint of step" in line]
    assert len(resumed) >= 2 and 0 < resumed[0] <= resumed[-1] < 8, resumed
    assert f"resuming MLflow run {killed.info.run_id}" in interrupted_log + log, log[-3000:]
    assert "didn't change" in again and "resumed" not in again, again[-3000:]
    assert _train_runs(work, "gdn_adv")[-1].info.run_id == killed.info.run_id
    assert sorted(_steps_logged(work, killed.info.run_id)) == list(range(1, 9))  # each step once
    assert checkpoints.on_disk(run) == [] and (run / "model.pt").is_file()  # the result, no checkpoint
    assert os.path.samefile(run / "model.pt", work / "runs" / "gdn_adv" / "model.pt")
    # a local MLflow store keeps a pointer to the model file, not a copy
    assert not list((work / "mlartifacts").rglob("model.pt"))
    assert list((work / "mlartifacts").rglob(f"{killed.info.run_id}/artifacts/{checkpoints.MODEL_POINTER}"))


def _train_alone(work, env, variant: str, train: dict, variant_cfg: dict | None = None) -> dict:
    """`inpaint train VARIANT` with `train` (and `variant_cfg` as the variant's settings) laid over the copy's
    params.yaml for this run only; returns its model.pt."""
    import torch

    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"] = train
    if variant_cfg is not None:
        params["variants"][variant] = variant_cfg
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        run_checked([str(Path(sys.executable).parent / "inpaint"), "train", variant], work, env)
    finally:
        (work / "params.yaml").write_text(original)
    return torch.load(work / "runs" / variant / "model.pt", weights_only=True)


def test_two_ray_workers_train_a_batchnorm_model_like_one(pipeline):
    """LGNet's C (BatchNorm throughout) on 2 Ray Train workers, one image each with SyncBatchNorm, against one
    process on both images (this test's, which computes what 1 worker does: the killed-worker test below
    compares the two exactly), 2 steps. float32 sums in another order flip the first Adam update (lr * sign(g)) of
    the gradients within rounding of 0, and at 64 px LGNet's inner BatchNorm layers see 2 values per channel,
    so step 2's statistics amplify those flips. Measured (relative distance per BatchNorm buffer, median /
    worst; parameters within 1e-5): SyncBatchNorm 3.9e-4 / 8.3e-3, 93 %; per-worker statistics
    (train.sync_batchnorm: false) 7.8e-2 / 0.63, 33 %. Bounds between the two: 5e-3 / 5e-2, 85 %."""
    import torch

    work, env, _ = pipeline
    lgnet_c = {"framework": "lgnet", "generator": "lgnet_c"}
    two = _train_alone(work, env, "lgnet_c", {"num_workers": 2}, lgnet_c)
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["variants"]["lgnet_c"] = lgnet_c
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        one = trained_in_this_process(work, "lgnet_c")
    finally:
        (work / "params.yaml").write_text(original)
    assert two["meta"]["steps"] == 2
    g1, g2 = one["generator"], two["generator"]
    running = [k for k in g1 if k.endswith(("running_mean", "running_var"))]
    assert running, "lgnet_c has no BatchNorm buffers"
    distance = sorted(((g2[k] - g1[k]).abs().max() / g1[k].abs().max()).item() for k in running)
    assert distance[len(distance) // 2] <= 5e-3 and distance[-1] <= 5e-2, distance
    params = [k for k in g1 if k not in running and not k.endswith("num_batches_tracked")]
    diffs = torch.cat([(g2[k] - g1[k]).abs().flatten() for k in params])
    assert (diffs <= 1e-5).float().mean() >= 0.85, f"{(diffs > 1e-5).sum()} of {diffs.numel()} differ"
    assert diffs.max() <= 2 * 2e-4 * 2, diffs.max()  # 2 * lr_g (LGNet) * steps


def _ray_processes_of(work, driver_pid: int) -> list:
    """The processes of this run's Ray only (other Rays on the machine are not ours to kill): descendants of
    the driver (a private Ray) or of the repository's shared head."""
    import psutil

    from inpaint import cluster

    roots = [psutil.Process(driver_pid)]
    head = cluster.running_head(work)
    if head:
        roots += cluster.session_processes(head["session"])
    found = {}
    for root in roots:
        try:
            for p in [root, *root.children(recursive=True)]:
                found[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def _lock_holder(storage: Path) -> int | None:
    """The pid in the variant's training lock file (inpaint/lifetime.py exclusive), None before there is one."""
    try:
        return int((storage / "train.lock").read_text().strip())
    except (OSError, ValueError):
        return None


def _listening(procs: list) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket that one of `procs` listens on."""
    import psutil

    by_pid = {p.pid: p for p in procs}
    found = set()
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.pid in by_pid:
            try:
                name = by_pid[c.pid].name()
            except psutil.NoSuchProcess:
                continue
            found.add((c.laddr.ip, c.laddr.port, name))
    return found


def _dvc_repro_until_checkpoint(cmd: list[str], work: Path, env: dict, storage: Path, **popen) -> tuple:
    """Start `cmd` (a `dvc repro` of one train stage) and return (its Popen, [its stage process]) once the
    stage has registered a checkpoint, with both still running. The stage must be dvc's own child, a Python
    process (dvc.yaml execs it), or it would not die with dvc."""
    import psutil

    started = time.time()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)
    deadline = time.monotonic() + 300
    while not registered_checkpoint(storage, since=started) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted:\n{proc.communicate()[0][-3000:]}"
    children = psutil.Process(proc.pid).children()
    stage = [c for c in children if c.name().startswith("python") and "pipelines/train.py" in " ".join(c.cmdline())]
    assert stage, f"no train stage (python pipelines/train.py) is a child of dvc: {[c.cmdline() for c in children]}"
    return proc, stage


def _tree(folder: Path) -> str:
    """The files under `folder`, one per line, for an assertion message."""
    return "\n".join(str(p.relative_to(folder)) for p in sorted(folder.rglob("*")))


def _in_process_checkpoint(storage: Path, since: float) -> Path | None:
    """A checkpoint an in-process run wrote since `since`: it takes its name only once complete."""
    from inpaint import checkpoints

    for run in storage.glob("*-*"):
        found = [p for p in checkpoints.on_disk(run) if p.stat().st_mtime >= since]
        if found:
            return found[0]
    return None


def test_in_process_training_survives_ctrl_c_and_kill_9_and_does_every_step_once(pipeline):
    """`train.num_workers: 0` (the smoke profile's): the loop runs in the driver's process (Ray Train's local
    mode) and writes its own checkpoints. Ctrl-C after the first checkpoint exits 130 with one line; the
    re-run resumes from it, is killed with -9 after a later one, and the third run finishes. The result
    equals the same steps run without interruption, each step is logged once, no checkpoint is left, and
    no Ray was started for it."""
    import torch

    from inpaint import checkpoints

    work, env, _ = pipeline
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"] = {"num_workers": 0, "steps": 12, "checkpoint_every": 2, "image_every": 100}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    storage, cmd = work / "checkpoints" / "gdn_weight", [str(Path(sys.executable).parent / "inpaint"), "train",
                                                         "gdn_weight"]

    def resumed_from(log: str) -> list[int]:
        return [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "resumed from the checkpoint" in line]

    try:
        resumed = []
        for stop in (signal.SIGINT, signal.SIGKILL):
            started = time.time()
            proc = subprocess.Popen(as_from_a_terminal(cmd), cwd=work, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 300
            while not _in_process_checkpoint(storage, started) and proc.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.05)
            assert proc.poll() is None, f"the run ended before it could be stopped:\n{proc.communicate()[0][-3000:]}"
            assert stop != signal.SIGINT or catches_sigint(proc.pid), "the run ignores or blocks SIGINT"
            proc.send_signal(stop)
            log = proc.communicate(timeout=120)[0]
            assert "ray: started a local head" not in log and "Connecting to existing Ray" not in log, log[-3000:]
            resumed += resumed_from(log)
            if stop == signal.SIGINT:
                assert proc.returncode == 130, log[-3000:]
                assert "interrupted: inpaint train" in log and "Traceback" not in log, log[-3000:]
        log = run_checked(cmd, work, env)
        resumed += resumed_from(log)
        assert len(resumed) == 2 and 0 < resumed[0] < resumed[1] < 12, log[-3000:]
        reference = trained_in_this_process(work, "gdn_weight")
    finally:
        (work / "params.yaml").write_text(original)
    summary = json.loads((work / "runs" / "gdn_weight" / "train_metrics.json").read_text())
    assert summary["steps"] == 12 and summary["startup_ray_s"] < 1.0, summary
    (run,) = [p for p in storage.glob("gdn_weight-*") if (p / "model.pt").is_file() and
              torch.load(p / "model.pt", weights_only=True)["meta"]["steps"] == 12]
    assert checkpoints.on_disk(run) == [] and not list(run.rglob(".partial-*"))
    (train_run,) = [r for r in _train_runs(work, "gdn_weight") if r.data.tags["fingerprint"] in run.name]
    assert sorted(_steps_logged(work, train_run.info.run_id)) == list(range(1, 13))  # each step once
    finished = torch.load(work / "runs" / "gdn_weight" / "model.pt", weights_only=True)
    for k, v in reference["generator"].items():
        assert torch.equal(finished["generator"][k], v), k


def test_a_killed_worker_is_survived_and_every_step_is_done_once(pipeline):
    """SIGKILL the Ray Train worker after its first checkpoint: FailureConfig restarts the worker group, the
    run resumes from that checkpoint and finishes, and the final generator equals the one of the same steps
    run without interruption and without Ray (LocalSession): no step lost, none applied twice."""
    import torch

    work, env, _ = pipeline
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"] = {"steps": 8, "checkpoint_every": 2, "max_failures": 1, "image_every": 100}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        storage = work / "checkpoints" / "gdn_weight"
        started = time.time()
        proc = subprocess.Popen([str(Path(sys.executable).parent / "inpaint"), "train", "gdn_weight"], cwd=work,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            if registered_checkpoint(storage, since=started):
                named = command_lines(_ray_processes_of(work, proc.pid))
                workers = [p for p, name in named if "RayTrainWorker" in name]
                assert not [p for p, name in named if "PreemptionWatcher" in name], (
                    "a preemption watcher on the local head (inpaint/cluster.py turns it off)")
                for worker in workers:
                    worker.kill()
                killed = [w.pid for w in workers] or None
            time.sleep(0.05)
        log, _ = proc.communicate(timeout=600)
        assert killed, f"no Ray Train worker to kill before the run ended:\n{log[-3000:]}"
        assert proc.returncode == 0, log[-6000:]
        resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "resumed from the checkpoint of step" in line]
        assert resumed and 0 < resumed[-1] < 8, log[-4000:]
        reference = trained_in_this_process(work, "gdn_weight")
    finally:
        (work / "params.yaml").write_text(original)
    survived = torch.load(work / "runs" / "gdn_weight" / "model.pt", weights_only=True)
    assert survived["meta"]["steps"] == 8
    for k, v in reference["generator"].items():
        assert torch.equal(survived["generator"][k], v), k


def test_a_variant_removed_from_params_is_gone_from_every_table(pipeline):
    """The report reads the DVC outputs of the variants in params.yaml, not whatever MLflow holds."""
    work, env, _ = pipeline
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["variants"].pop("pennet")
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        run_checked([str(Path(sys.executable).parent / "inpaint"), "report"], work, env)
    finally:
        (work / "params.yaml").write_text(original)
    tables = work / "reports" / "tables"
    assert (tables / "gdn_table1.md").is_file()
    for path in tables.iterdir():
        assert "pennet" not in path.read_text(), path.name
