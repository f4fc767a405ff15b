"""The SN-PatchGAN's spectral norm is the authors' by default: v then u, one power iteration per call in
training, none at construction or in eval mode; PyTorch's parametrization is the switch."""
import torch
import torch.nn.functional as F

from inpaint.models.registry import build, count_parameters


def _sn_layers(disc):
    return [m for m in disc.modules() if type(m).__name__ == "SpectralNormConv"]


def test_default_is_the_authors_power_iteration():
    torch.manual_seed(0)
    disc = build("sn_patchgan")
    layers = _sn_layers(disc)
    assert len(layers) == 4
    first = layers[0]
    u0, v0 = first.u.clone(), first.v.clone()
    w = first.conv.weight.detach().flatten(1)
    # no warm-up: the stored u, v are normalised random draws, far from W's singular vectors
    sigma_true = torch.linalg.matrix_norm(w, ord=2)
    assert torch.dot(u0, w @ v0) < 0.5 * sigma_true
    disc.train()
    x = torch.rand(1, 3, 64, 64)
    out = first(x)
    v1 = F.normalize(w.t() @ u0, dim=0)
    u1 = F.normalize(w @ v1, dim=0)
    torch.testing.assert_close(first.v, v1)
    torch.testing.assert_close(first.u, u1)
    conv = first.conv
    torch.testing.assert_close(out, F.conv2d(x, conv.weight / torch.dot(u1, w @ v1), None, conv.stride, conv.padding))
    disc(torch.rand(2, 3, 64, 64))  # one call, one more iteration
    torch.testing.assert_close(first.v, F.normalize(w.t() @ u1, dim=0))
    disc.eval()
    u2 = first.u.clone()
    disc(torch.rand(1, 3, 64, 64))
    assert torch.equal(first.u, u2)  # eval: no iteration


def test_both_versions_agree_once_converged_and_have_the_same_parameters():
    torch.manual_seed(1)
    ours, theirs = build("sn_patchgan"), build("sn_patchgan_torch")
    assert count_parameters(ours) == count_parameters(theirs)
    layer = _sn_layers(ours)[1]
    layer.train()
    for _ in range(200):
        sigma = layer.sigma()
    w = layer.conv.weight.detach().flatten(1)
    torch.testing.assert_close(sigma.detach(), torch.linalg.matrix_norm(w, ord=2), rtol=1e-3, atol=0)


def test_gradient_reaches_the_weight_through_sigma():
    disc = build("sn_patchgan")
    disc.train()
    disc(torch.rand(2, 3, 64, 64)).mean().backward()
    assert all(layer.conv.weight.grad is not None for layer in _sn_layers(disc))
