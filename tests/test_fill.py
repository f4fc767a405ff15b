"""Object removal (`inpaint.evaluation.fill`): any photo size, unmasked pixels untouched, clear errors for bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import untrained_model_file
from inpaint.evaluation.fill import FillError, fill, model_mask

W, H = 100, 70
HOLE = (slice(25, 45), slice(40, 70))  # rows, columns: a 30 x 20 hole


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny model.pt as the train stage writes it (untrained weights: the fill is noise, but a fill)."""
    return untrained_model_file(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


def _mask(tmp_path, hole=HOLE, size=(W, H), name="mask.png", mode="L", value=255):
    m = np.zeros(size[::-1], np.uint8)
    m[hole] = value
    path = tmp_path / name
    Image.fromarray(m).convert(mode).save(path)
    return path


def test_fill_keeps_the_photo_outside_the_hole(model, photo, tmp_path):
    path, rgb = photo
    out = tmp_path / "out" / "result.png"
    info = fill(str(model), path, _mask(tmp_path, mode="RGB"), out)
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == rgb.shape
    hole = np.zeros((H, W), bool)
    hole[HOLE] = True
    assert np.array_equal(result[~hole], rgb[~hole])
    assert (result[hole] != rgb[hole]).any(axis=-1).mean() > 0.9
    assert info["size"] == [W, H] and info["model_size"] == 64 and info["generator"] == "gdn_generator"
    assert info["hole_ratio"] == pytest.approx(600 / (W * H))
    assert info["out"] == str(out) and info["seconds"] >= 0
    assert [p.name for p in out.parent.iterdir()] == ["result.png"]  # no temporary left behind


def test_a_thin_hole_survives_the_downscale():
    hole = np.zeros((300, 500), bool)
    hole[:, 251] = True  # one pixel wide: nearest-neighbour to 64 px drops this column
    m = model_mask(hole, 64)
    assert m.shape == (1, 1, 64, 64) and m[0, 0].any(dim=1).all()


def test_mask_of_another_size_is_refused(model, photo, tmp_path):
    path, _ = photo
    with pytest.raises(FillError, match=r"mask .*mask.png is 90x70 but image .*photo.png is 100x70"):
        fill(str(model), path, _mask(tmp_path, size=(90, H)), tmp_path / "r.png")


def test_non_binary_mask_is_refused(model, photo, tmp_path):
    path, _ = photo
    mask = _mask(tmp_path)
    m = np.asarray(Image.open(mask)).copy()
    m[0, :3] = 128
    Image.fromarray(m).save(mask)
    with pytest.raises(FillError, match=r"3 of 7000 pixels are neither.*threshold"):
        fill(str(model), path, mask, tmp_path / "r.png")


def test_all_black_mask_is_refused(model, photo, tmp_path):
    path, _ = photo
    with pytest.raises(FillError, match="all black, nothing to fill"):
        fill(str(model), path, _mask(tmp_path, value=0), tmp_path / "r.png")


def test_corrupt_checkpoint_is_refused(model, photo, tmp_path):
    path, _ = photo
    bad = tmp_path / "model.pt"
    bad.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        fill(str(bad), path, _mask(tmp_path), tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


def test_not_a_file_nor_a_run_id(photo, tmp_path):
    path, _ = photo
    with pytest.raises(FillError, match=r"checkpoint 'models/nope.pt': no such file, and not an MLflow run id"):
        fill("models/nope.pt", path, _mask(tmp_path), tmp_path / "r.png")


@pytest.fixture(scope="module")
def store(tmp_path_factory, model):
    """A temporary MLflow store holding one train run with the model logged as checkpoint/model.pt."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/m.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("fill", artifact_location=(root / "art").as_uri())
    run_id = client.create_run(exp, tags={"inpaint.variant": "v"}).info.run_id
    client.log_artifact(run_id, str(model), artifact_path="checkpoint")
    other = client.create_run(exp).info.run_id  # a run without a checkpoint
    return uri, run_id, other


def test_fill_from_an_mlflow_run(store, photo, tmp_path):
    uri, run_id, _ = store
    path, rgb = photo
    info = fill(run_id, path, _mask(tmp_path), tmp_path / "r.png", tracking_uri=uri)
    assert info["generator"] == "gdn_generator" and info["size"] == [W, H]
    assert np.asarray(Image.open(tmp_path / "r.png")).shape == rgb.shape


def test_unknown_run_id_is_refused(store, photo, tmp_path):
    uri, _, other = store
    path, _ = photo
    with pytest.raises(FillError, match=r"checkpoint '0{32}': not a file, and no MLflow run with that id"):
        fill("0" * 32, path, _mask(tmp_path), tmp_path / "r.png", tracking_uri=uri)
    with pytest.raises(FillError, match=rf"MLflow run {other}: neither checkpoint/model.pt nor checkpoint/model.json"):
        fill(other, path, _mask(tmp_path), tmp_path / "r.png", tracking_uri=uri)


def test_fill_follows_a_local_stores_pointer_to_the_one_model_on_disk(store, model, photo, tmp_path, monkeypatch):
    """A local MLflow store keeps only checkpoint/model.json (the model is stored once, by DVC): fill loads
    the model.pt it names, and refuses it once a later training has replaced that file."""
    from mlflow.tracking import MlflowClient

    from inpaint import paths

    uri, _, _ = store
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fill").experiment_id
    run_id = client.create_run(exp).info.run_id
    client.log_dict(run_id, {"path": "runs/v/model.pt", "run_id": run_id}, "checkpoint/model.json")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    state = torch.load(model, weights_only=True)
    (tmp_path / "runs" / "v").mkdir(parents=True)
    state["meta"]["run_id"] = run_id
    torch.save(state, tmp_path / "runs" / "v" / "model.pt")
    path, _ = photo
    assert fill(run_id, path, _mask(tmp_path), tmp_path / "r.png", tracking_uri=uri)["generator"] == "gdn_generator"
    state["meta"]["run_id"] = "f" * 32
    torch.save(state, tmp_path / "runs" / "v" / "model.pt")
    with pytest.raises(FillError, match=rf"MLflow run {run_id}: .*model.pt now holds the model of run f{{32}}"):
        fill(run_id, path, _mask(tmp_path), tmp_path / "r.png", tracking_uri=uri)
