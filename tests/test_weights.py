"""Pretrained weight files: looked up in the torch cache, never downloaded, missing ones explained."""
import pytest
import torch

from inpaint import weights
from inpaint.config import EvaluateConfig
from inpaint.evaluation.evaluate import SetMetrics


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_required_mode_stops_naming_the_file_and_the_fix(empty_cache):
    with pytest.raises(weights.MissingWeights) as e:
        weights.resolve("fid_inception", "required")
    msg = str(e.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and str(empty_cache) in msg
    assert "inpaint weights import" in msg


def test_auto_mode_skips_loudly_and_records_why(empty_cache, capsys):
    m = SetMetrics(EvaluateConfig(), "auto")
    assert m.fid is None and m.lpips is None
    assert m.status["fid"].startswith("not computed") and "pt_inception" in m.status["fid"]
    assert "WARNING fid" in capsys.readouterr().out
    assert m.pretrained  # nothing was computed with random weights


def test_random_mode_is_recorded_as_uncalibrated(empty_cache):
    m = SetMetrics(EvaluateConfig(fid_dims=64), "random")
    assert m.fid is not None and m.lpips is not None
    assert not m.pretrained and "random" in m.status["fid"]


def test_import_copies_known_files_into_the_cache(empty_cache, tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    (src / "vgg16-397923af.pth").write_bytes(b"weights")
    (src / "unrelated.bin").write_bytes(b"x")
    copied = weights.import_dir(src)
    assert copied == [empty_cache / "vgg16-397923af.pth"]
    assert weights.resolve("vgg16", "required") == empty_cache / "vgg16-397923af.pth"
    assert {r["key"]: r["present"] for r in weights.status()} == {"fid_inception": False, "alexnet": False,
                                                                  "vgg16": True}
    with pytest.raises(FileNotFoundError, match="none of the known weight files"):
        weights.import_dir(tmp_path / "hub")


def test_required_mode_stops_every_stage_before_any_work(empty_cache, tmp_path, capsys):
    import shutil

    from inpaint.cli import main
    from inpaint.paths import REPO_ROOT

    shutil.copytree(REPO_ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "params.yaml").write_text("profile: ci\nweights: required\nvariants: {v: {framework: det}}\n")
    assert main(["--params", str(tmp_path / "params.yaml"), "prepare"]) == 2
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "alexnet-owt-7be5be79.pth" in err
    assert not (tmp_path / "data").exists()
