"""SN-PatchGAN discriminator of PEN-Net, copied by LGNet: four spectral-norm 5x5 convolutions and a plain
5x5 classifier; a 27x27 patch map at 256x256. Raw scores (no sigmoid): the adversarial loss decides how to
read them.

Spectral norm, two versions (the builder's `spectral_norm`; variants pick one by discriminator name):
- "authors" (`sn_patchgan`, the default): the authors' copy of PyTorch 1.x's spectral_norm. u and v start as
  normalised random vectors with no warm-up; every forward call in training mode does one power iteration,
  v = normalize(W^T u) then u = normalize(W v), and divides W by sigma = u^T W v; no iteration in eval mode.
- "torch" (`sn_patchgan_torch`): torch.nn.utils.parametrizations.spectral_norm, which runs 15 iterations
  when it is created and then, per call, u = normalize(W v) then v = normalize(W^T u).
Both converge to the same sigma; they differ in the first steps and in the last digits.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from inpaint.models.registry import register


class SpectralNormConv(nn.Module):
    """A Conv2d whose weight is divided by its largest singular value, estimated as the authors' code does."""

    def __init__(self, conv: nn.Conv2d, power_iterations: int = 1, eps: float = 1e-12):
        super().__init__()
        self.conv, self.power_iterations, self.eps = conv, power_iterations, eps
        rows, cols = conv.weight.shape[0], conv.weight[0].numel()
        self.register_buffer("u", F.normalize(conv.weight.new_empty(rows).normal_(0, 1), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(conv.weight.new_empty(cols).normal_(0, 1), dim=0, eps=eps))

    def sigma(self) -> torch.Tensor:
        """u^T W v with the current u, v; the power iteration runs first in training mode."""
        matrix = self.conv.weight.flatten(1)
        if self.training:
            with torch.no_grad():
                for _ in range(self.power_iterations):
                    self.v.copy_(F.normalize(matrix.t() @ self.u, dim=0, eps=self.eps))
                    self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=self.eps))
        # clones: a later call updates u, v in place before this call's backward has run; float32 outside
        # autocast, which would otherwise run the product in bfloat16 against the float32 u (a device without
        # autocast, such as the meta device of the FLOP count, has nothing to switch off)
        device = matrix.device.type
        with torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext():
            return torch.dot(self.u.clone(), matrix @ self.v.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(x, c.weight / self.sigma(), c.bias, c.stride, c.padding, c.dilation, c.groups)


SpectralNormKind = Literal["authors", "torch"]


class SNPatchGAN(nn.Module):
    def __init__(self, in_channels: int = 3, base_channels: int = 64, spectral_norm: SpectralNormKind = "authors"):
        super().__init__()
        if spectral_norm not in ("authors", "torch"):
            raise ValueError(f"spectral_norm must be 'authors' or 'torch', got {spectral_norm!r}")
        wrap = SpectralNormConv if spectral_norm == "authors" else torch_spectral_norm
        c = base_channels
        chans = [in_channels, c, 2 * c, 4 * c, 8 * c]
        strides = [2, 2, 2, 1]
        layers: list[nn.Module] = []
        for cin, cout, s in zip(chans[:-1], chans[1:], strides):
            conv = nn.Conv2d(cin, cout, 5, s, padding=1, bias=False)
            nn.init.normal_(conv.weight, 0.0, 0.02)
            layers += [wrap(conv), nn.LeakyReLU(0.2, inplace=True)]
        classifier = nn.Conv2d(8 * c, 1, 5, 1, padding=1)
        nn.init.normal_(classifier.weight, 0.0, 0.02)
        nn.init.zeros_(classifier.bias)
        self.net = nn.Sequential(*layers, classifier)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if min(image.shape[-2:]) < 64:
            raise ValueError(f"SN-PatchGAN needs images of at least 64x64, got {tuple(image.shape[-2:])}")
        return self.net(image)


@register("sn_patchgan", role="discriminator", paper_params=4_320_000, source="docs/authors_code.md 2.7 (4.32 M)")
def sn_patchgan(*, image_size: int = 256, base_channels: int = 64,
                spectral_norm: SpectralNormKind = "authors") -> SNPatchGAN:
    return SNPatchGAN(3, base_channels, spectral_norm)


register("sn_patchgan_torch", role="discriminator", paper_params=4_320_000,
         source="docs/authors_code.md 2.7 (4.32 M); PyTorch's spectral norm")(
    partial(sn_patchgan, spectral_norm="torch"))
