"""Building a model from a state dict without drawing its random initialisation (registry.build_loaded)."""
import pytest
import torch
from torch import nn

from inpaint.models import registry
from inpaint.models.registry import build, build_loaded, registered


@pytest.mark.parametrize("name", sorted(registered()))
def test_a_model_built_loaded_holds_exactly_the_state_of_one_built_and_loaded(name):
    """Every registered architecture: the same tensors as build() + load_state_dict(), none left on the
    meta device, and the same output on the same input."""
    kwargs = {} if registered()[name].role == "discriminator" else {"image_size": 64}
    torch.manual_seed(0)
    trained = build(name, **kwargs)
    state = {k: v + 0.01 if v.is_floating_point() else v + 1  # not the values of any fresh build
             for k, v in trained.state_dict().items()}
    expected = build(name, **kwargs)
    expected.load_state_dict(state)
    loaded = build_loaded(name, state, **kwargs)
    got = loaded.state_dict()
    assert got.keys() == state.keys()
    for k, v in expected.state_dict().items():
        assert got[k].device.type == "cpu" and got[k].dtype == v.dtype and torch.equal(got[k], v), k
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])


class _WithNonPersistentBuffer(nn.Module):
    def __init__(self, image_size: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.register_buffer("kernel", torch.full((1, 1, image_size, image_size), 0.5), persistent=False)


def test_a_tensor_outside_the_state_dict_falls_back_to_a_usual_build(monkeypatch):
    """A non-persistent buffer has no value in the state dict: built on the meta device it would stay
    empty, so the model is built as usual and still loads the state."""
    monkeypatch.setitem(registry._REGISTRY, "with_buffer", registry.ModelInfo(
        "with_buffer", _WithNonPersistentBuffer, "generator", None, "test"))
    state = {k: torch.ones_like(v) for k, v in _WithNonPersistentBuffer().state_dict().items()}
    module = build_loaded("with_buffer", state, image_size=8)
    assert torch.equal(module.kernel, torch.full((1, 1, 8, 8), 0.5))
    assert torch.equal(module.conv.weight, torch.ones(1, 1, 3, 3))
