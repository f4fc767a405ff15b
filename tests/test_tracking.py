"""MLflow helpers (inpaint/provenance/tracking.py): metric keys MLflow accepts, params logged in batches."""
from mlflow.tracking import MlflowClient

from inpaint.provenance import tracking


def test_metric_keys_lose_the_characters_mlflow_refuses():
    assert tracking.metric_key("test", "l1 (%)", "bin [0.1, 0.2]") == "test/l1 _pct_/bin _0.1_ 0.2_"


def test_params_are_flattened_and_logged_past_mlflows_batch_limit(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("t", artifact_location=str(tmp_path / "art")))
    values = {"train": {f"p{i:03d}": i for i in range(150)}, "variant": {"note": "x" * 7000, "nested": {"a": 1}}}
    tracking.log_params(client, run.info.run_id, values, prefix="run.")
    logged = client.get_run(run.info.run_id).data.params
    assert len(logged) == 152
    assert logged["run.train.p149"] == "149" and logged["run.variant.nested.a"] == "1"
    assert logged["run.variant.note"] == "x" * 6000  # cut to MLflow's limit, not refused


def test_a_copied_repository_logs_its_artifacts_inside_itself(tmp_path, monkeypatch):
    import shutil

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    monkeypatch.setattr(tracking, "REPO_ROOT", old)
    monkeypatch.setattr(tracking, "ARTIFACTS", old / "mlartifacts")
    client = MlflowClient(tracking.tracking_uri())
    first = client.create_run(tracking.get_or_create_experiment(client, "inpaint")).info.run_id
    (tmp_path / "a.txt").write_text("a")
    client.log_artifact(first, str(tmp_path / "a.txt"))
    client.set_terminated(first)

    shutil.copytree(old, new)  # cp -a to another path
    monkeypatch.setattr(tracking, "REPO_ROOT", new)
    monkeypatch.setattr(tracking, "ARTIFACTS", new / "mlartifacts")
    client = MlflowClient(tracking.tracking_uri())
    experiment = tracking.get_or_create_experiment(client, "inpaint")
    second = client.create_run(experiment).info.run_id
    client.log_artifact(second, str(tmp_path / "a.txt"))
    assert (new / "mlartifacts" / second / "artifacts" / "a.txt").is_file()
    assert not (old / "mlartifacts" / second).exists()
    assert client.get_run(first).info.artifact_uri == (new / "mlartifacts" / first / "artifacts").as_uri()
    assert [a.path for a in client.list_artifacts(first)] == ["a.txt"]  # the copied run reads its copied files
    assert tracking.get_or_create_experiment(client, "inpaint") == experiment  # idempotent


def test_series_and_significant_digits(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    rid = client.create_run(client.create_experiment("e")).info.run_id
    tracking.log_metrics(client, rid, {"ray_s": 3.14159265358979, "count": 12345}, {"test/psnr": [20.123456, 21.5]})
    metrics = client.get_run(rid).data.metrics
    assert metrics["ray_s"] == 3.142 and metrics["count"] == 12345  # counts stay exact
    history = sorted(client.get_metric_history(rid, "test/psnr"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(0, 20.12), (1, 21.5)]  # one series: step = position


def test_new_experiment_has_the_headline_view_of_the_views_menu(tmp_path):
    """The envelope MLflow 3.17's Views menu parses (name, numeric createdAt, state as a JSON string) and a
    filter that keeps the scored runs (variants and classical fills) only."""
    import json

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = tracking.get_or_create_experiment(client, "inpaint")
    tags = client.get_experiment(exp).tags
    view = json.loads(tags[f"mlflow.sharedViewState.{tracking.HEADLINE_VIEW}"])
    assert view["name"] == tracking.HEADLINE_VIEW_NAME and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert state["orderByKey"] == "metrics.`psnr_mean`" and state["orderByAsc"] is False
    scored, masks = (client.create_run(exp).info.run_id for _ in range(2))
    client.log_metric(scored, "psnr_mean", 20.0)
    assert [r.info.run_id for r in client.search_runs([exp], state["searchFilter"])] == [scored]
    created = view["createdAt"]
    tracking.set_headline_view(client, exp)  # the report stage sets it again: same view, same creation time
    assert json.loads(client.get_experiment(exp).tags[f"mlflow.sharedViewState.{tracking.HEADLINE_VIEW}"])[
        "createdAt"] == created
    url = tracking.headline_url("http://127.0.0.1:5029", exp)
    assert url == (f"http://127.0.0.1:5029/#/experiments/{exp}/runs?workflowType=machine_learning"
                   "&viewStateShareKey=headline")
