"""The whole DVC pipeline at the `ci` profile, in a temporary copy of the repository, checked through
what a researcher sees: the MLflow store and the report table."""
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import run_checked
from inpaint import bins

pytestmark = pytest.mark.e2e
# one variant per framework family and report table (all twelve would cost ~40 s each of Ray start-up)
VARIANTS = ("gdn_weight", "gdn_adv", "gdn_det", "lgnet_c_l_g_att", "pennet")
RANGES = {"l1": (0, 100), "psnr": (0, 100), "ssim": (-1, 1), "fid": (0, math.inf), "kid": (-math.inf, math.inf),
          "lpips": (0, 2)}


def _ci_profile(params: dict) -> None:
    params["profile"] = "ci"
    params["weights"] = "random"  # the explicit tests-only switch: FID/LPIPS code paths run
    params["variants"] = {k: v for k, v in params["variants"].items() if k in VARIANTS}


@pytest.fixture(scope="module")
def pipeline(repo_copy):
    """A copy of the repository at the ci profile with random metric weights, after `dvc repro`."""
    work, env = repo_copy(_ci_profile)
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
        for b in range(len(bins.BINS)):
            for metric, (lo, hi) in RANGES.items():
                key = f"test/{metric}/{bins.key(b)}"
                assert key in run.data.metrics, (variant, key)
                assert lo <= run.data.metrics[key] <= hi and math.isfinite(run.data.metrics[key]), (variant, key)
            low, high = (run.data.metrics[f"test/psnr_ci_{s}/{bins.key(b)}"] for s in ("low", "high"))
            assert low <= run.data.metrics[f"test/psnr/{bins.key(b)}"] <= high, (variant, b)
        assert {"test/fid/all", "test/kid/all", "complexity/params_m", "complexity/gflops_256",
                "complexity/infer_ms_cpu", "evaluate/pairs_per_s"} <= run.data.metrics.keys(), variant


def test_report_run_holds_the_tables_and_pictures(pipeline):
    work, _, _ = pipeline
    client, exp = _mlflow(work)
    reports = client.search_runs([exp], filter_string="tags.`inpaint.kind` = 'report'")
    assert len(reports) == 1
    rid = reports[0].info.run_id
    artifacts = {a.path for a in client.list_artifacts(rid, "tables")}
    for name in ("weight_adv_det", "gdn_table1", "gdn_table2", "complexity"):
        assert {f"tables/{name}.md", f"tables/{name}.csv", f"tables/{name}.html", f"tables/{name}.json"} <= artifacts
    pictures = {a.path for a in client.list_artifacts(rid, "figures")}
    assert {"figures/comparison.png", "figures/psnr_vs_ratio.png", "figures/detector_gdn_det.png"} <= pictures
    assert "plots/metric_vs_ratio.csv" in {a.path for a in client.list_artifacts(rid, "plots")}
    table = pd.read_csv(work / "reports" / "tables" / "weight_adv_det.csv", header=[0, 1], index_col=0)
    ours = [i for i in table.index if "ours" in i]
    assert len(ours) == 3 and [i.split()[0] for i in ours] == ["Weight", "Adv", "Det"]
    assert sorted({b for b, _ in table.columns}) == sorted(bins.label(b) for b in range(len(bins.BINS)))
    assert table.loc[ours].notna().all().all()
    assert "random weights" in (work / "reports" / "tables" / "weight_adv_det.md").read_text().lower()


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
    assert "evals/gdn_det.json" in metrics and "runs/gdn_det/train_metrics.json" in metrics
    run_checked([dvc, "plots", "show", "-o", str(work / "plots_html")], work, env)
    html = (work / "plots_html" / "index.html").read_text()
    assert "ratio_histogram" in html and "loss.csv" in html and "metric_vs_ratio" in html
    assert "comparison.png" in html


def test_rerun_of_a_trained_variant_resumes_from_its_checkpoint(pipeline):
    """The Ray run of an unchanged config restores its last checkpoint: no step is trained twice and the
    same MLflow run is continued."""
    work, env, _ = pipeline
    client, exp = _mlflow(work)
    (run,) = client.search_runs([exp], filter_string="tags.`inpaint.variant` = 'gdn_weight'")
    (work / "runs" / "gdn_weight" / "model.pt").unlink()
    log = run_checked([str(Path(sys.executable).parent / "inpaint"), "train", "gdn_weight"], work, env)
    assert "2 steps in" in log and run.info.run_id in log
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_g")]
    assert sorted(steps) == [1, 2], steps  # every step logged exactly once
    assert (work / "runs" / "gdn_weight" / "model.pt").is_file()


def test_two_ray_workers_train_like_one_with_the_same_global_batch(pipeline):
    """DDP over 2 gloo workers (half the batch each) reaches the same parameters as 1 worker: the sampler
    splits the same global batch, the masks depend only on (seed, epoch, index) and every loss is a mean.
    Tolerance: the all-reduce sums in another order, and Adam's first updates are about lr * sign(g), so a
    gradient within float noise of 0 can flip its update. Hence: at least 99.9 % of the elements agree to
    1e-5, and none differs by more than two full updates per step (2 * lr * steps)."""
    import torch

    from inpaint.models.registry import build

    work, env, _ = pipeline
    one = torch.load(work / "runs" / "gdn_det" / "model.pt", weights_only=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"] = {"num_workers": 2}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        run_checked([str(Path(sys.executable).parent / "inpaint"), "train", "gdn_det"], work, env)
    finally:
        params.pop("train")
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    two = torch.load(work / "runs" / "gdn_det" / "model.pt", weights_only=True)
    assert one["meta"]["steps"] == two["meta"]["steps"] == 2
    torch.manual_seed(params.get("train", {}).get("seed", 10))  # the ci profile's train.seed
    init = build("gdn_generator").state_dict()
    assert any(not torch.equal(init[k], v) for k, v in one["generator"].items()), "training changed nothing"
    diffs = torch.cat([(two["generator"][k] - v).abs().flatten() for k, v in one["generator"].items()])
    bound = 2 * 1e-4 * 2  # 2 * lr_g (GDN Det default) * steps
    assert (diffs <= 1e-5).float().mean() >= 0.999, f"{(diffs > 1e-5).sum()} of {diffs.numel()} differ"
    assert diffs.max() <= bound, diffs.max()


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


def _registered_checkpoint_since(storage: Path, started: float) -> bool:
    """Whether Ray Train's controller has registered a checkpoint of a run started at `started`: its checkpoint
    manager snapshot names one. A checkpoint folder alone is not enough: it appears while the worker is still
    uploading, and a worker killed then restarts from the previous registered checkpoint (or from step 0)."""
    for snapshot in storage.glob("*/attempt-*/checkpoint_manager_snapshot.json"):  # inpaint/checkpoints.py
        try:
            if snapshot.stat().st_mtime >= started and json.loads(snapshot.read_text()).get("latest_checkpoint_result"):
                return True
        except (OSError, ValueError):  # being written right now: look again on the next poll
            continue
    return False


def test_a_killed_worker_is_survived_and_every_step_is_done_once(pipeline):
    """SIGKILL the Ray Train worker after its first checkpoint: FailureConfig restarts the worker group, the
    run resumes from that checkpoint and finishes, and the final generator equals the one of the same steps
    run without interruption and without Ray (LocalSession): no step lost, none applied twice."""
    import torch

    from inpaint import train
    from inpaint.config import load_params

    work, env, _ = pipeline
    original = (work / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"] = {"steps": 24, "checkpoint_every": 4, "max_failures": 1, "image_every": 100}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        storage = work / "checkpoints" / "gdn_weight"
        started = time.time()
        proc = subprocess.Popen([str(Path(sys.executable).parent / "inpaint"), "train", "gdn_weight"], cwd=work,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            if _registered_checkpoint_since(storage, started):
                workers = [p for p in _ray_processes_of(work, proc.pid)
                           if any("RayTrainWorker" in part for part in p.cmdline())]
                for worker in workers:
                    worker.kill()
                killed = [w.pid for w in workers] or None
            time.sleep(0.05)
        log, _ = proc.communicate(timeout=600)
        assert killed, f"no Ray Train worker to kill before the run ended:\n{log[-3000:]}"
        assert proc.returncode == 0, log[-6000:]
        resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "resumed from the checkpoint of step" in line]
        assert resumed and 0 < resumed[-1] < 24, log[-4000:]

        loaded = load_params(work / "params.yaml")
        config = train.loop_config(loaded, "gdn_weight", None, train.config_hash("gdn_weight", loaded))
        config["prepared"], config["masks"] = str(work / "data" / "prepared"), str(work / "data" / "masks" / "train")
        session = train.LocalSession()
        train.train_loop(config, session)
        reference = session.state["networks"]
    finally:
        (work / "params.yaml").write_text(original)
    survived = torch.load(work / "runs" / "gdn_weight" / "model.pt", weights_only=True)
    assert survived["meta"]["steps"] == 24
    for k, v in reference["generator"].items():
        assert torch.equal(survived["generator"][k], v), k
