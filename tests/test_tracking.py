"""MLflow helpers (inpaint/tracking.py): metric keys MLflow accepts, params logged in batches."""
from mlflow.tracking import MlflowClient

from inpaint import tracking


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
