"""Checkpoints: a checkpoint from another variant or a corrupt file is refused with a clear error."""
import pytest
import torch
from pydantic import TypeAdapter

from inpaint.config import Variant
from inpaint.frameworks import build_framework, build_networks
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
