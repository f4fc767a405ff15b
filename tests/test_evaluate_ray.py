"""Evaluation as a Ray task (evaluate.on_ray) gives what the stage's own process gives. Starts a local Ray:
run under the machine-wide lock (`flock /tmp/inpaint-ray.lock ...`)."""
import numpy as np
import pandas as pd
import pytest

from conftest import untrained_model_file
from inpaint import bins
from inpaint.config import load_params
from inpaint.evaluation.evaluate import score
from inpaint.masks.store import write_store

pytestmark = pytest.mark.slow


@pytest.fixture
def files(tmp_path):
    """A trained-variant file, a test split, a test mask set and its pairs, as the pipeline writes them."""
    rng = np.random.default_rng(0)
    (tmp_path / "prepared").mkdir()
    np.save(tmp_path / "prepared" / "test.npy", rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    masks = np.stack([(rng.random((64, 64)) < (lo + hi) / 2) for lo, hi in bins.BINS]).astype(np.uint8)
    write_store(tmp_path / "masks", masks, np.arange(len(bins.BINS)), ["test"] * len(bins.BINS))
    pd.DataFrame([{"bin": b, "image": k, "mask": b} for b in range(len(bins.BINS)) for k in range(3)]).to_csv(
        tmp_path / "pairs.csv", index=False)
    untrained_model_file(tmp_path / "v" / "model.pt")
    return tmp_path


def test_evaluation_as_a_ray_task_equals_the_in_process_one(files, monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    params = load_params()
    args = (files / "v" / "model.pt", files / "prepared", files / "masks", files / "pairs.csv")
    out = {}
    for where in (False, True):
        cfg = params.evaluate.model_copy(update={"batch_size": 2, "pairs_per_bin": None, "fid_dims": 64,
                                                 "kid_subsets": 2, "bootstrap": 100, "on_ray": where})
        p = params.model_copy(update={"evaluate": cfg, "weights": "random",
                                      "ray": params.ray.model_copy(update={"address": None, "keep_alive_s": 0})})
        out[where] = score(*args, p)
    assert ray.is_initialized()  # the second evaluation went through Ray
    ray.shutdown()
    (local, local_table, local_status), (remote, remote_table, remote_status) = out[False], out[True]
    assert remote.keys() == local.keys() and {"fid/all", "kid/all", "lpips/bin_0p5_0p6"} <= local.keys()
    for k in local:
        assert remote[k] == pytest.approx(local[k], rel=1e-5, abs=1e-6), k
    pd.testing.assert_frame_equal(remote_table, local_table, rtol=1e-5)
    assert remote_status == local_status and not remote_status.pretrained
