"""Checkpoints: a checkpoint from another variant or a corrupt file is refused with a clear error; what a
killed writer leaves is cleaned up."""
import os
import tempfile
from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter

from inpaint.config import Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint import checkpoints
from inpaint.checkpoints import STATE_FILE, load_state, save_state


@pytest.fixture
def saved(tmp_path):
    cfg = TypeAdapter(Variant).validate_python({"framework": "weight"})
    fw = build_framework(cfg, build_networks(cfg, 64))
    fw.make_optimisers()
    meta = {"variant": "gdn_weight", "framework": "weight", "fingerprint": "abc"}
    save_state(tmp_path, fw, 7, meta)
    return tmp_path / STATE_FILE, fw


def test_round_trip_keeps_step_and_weights(saved):
    path, fw = saved
    state = load_state(path, expect={"variant": "gdn_weight", "fingerprint": "abc"})
    assert state["step"] == 7
    gen = state["framework"]["networks"]["generator"]
    for k, v in fw.networks["generator"].state_dict().items():
        assert torch.equal(gen[k], v)


def test_another_variant_is_refused(saved):
    path, _ = saved
    with pytest.raises(ValueError, match=r"checkpoint is for variant='gdn_weight', expected 'gdn_det'"):
        load_state(path, expect={"variant": "gdn_det"})


def test_corrupt_file_is_refused(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_state(path)
    other = path.parent / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(ValueError, match="not an inpaint checkpoint"):
        load_state(other)


def test_a_staging_folder_left_by_a_killed_writer_is_removed_by_the_next(tmp_path, monkeypatch):
    """A Ray worker killed while writing its checkpoint leaves its staging folder in the node's temp folder;
    the next writer removes it, and leaves those of live writers alone."""
    import subprocess

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"{checkpoints.STAGING}{dead.pid}-x"
    live = tmp_path / f"{checkpoints.STAGING}{os.getppid()}-y"
    for folder in (left, live):
        folder.mkdir()
        (folder / checkpoints.STATE_FILE).write_bytes(b"partial")
    with checkpoints.staging() as d:
        assert Path(d).parent == tmp_path and Path(d).name.startswith(f"{checkpoints.STAGING}{os.getpid()}-")
        assert not left.exists() and live.is_dir()
    assert not Path(d).exists()
