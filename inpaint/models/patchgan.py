"""SN-PatchGAN discriminator of PEN-Net, copied by LGNet (reference.md 2.7, 3.4): four spectral-norm 5x5
convolutions and a plain 5x5 classifier; a 27x27 patch map at 256x256. Raw scores (no sigmoid): the
adversarial loss decides how to read them."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from inpaint.models.registry import register


class SNPatchGAN(nn.Module):
    def __init__(self, in_channels: int = 3, base_channels: int = 64):
        super().__init__()
        c = base_channels
        chans = [in_channels, c, 2 * c, 4 * c, 8 * c]
        strides = [2, 2, 2, 1]
        layers: list[nn.Module] = []
        for cin, cout, s in zip(chans[:-1], chans[1:], strides):
            conv = nn.Conv2d(cin, cout, 5, s, padding=1, bias=False)
            nn.init.normal_(conv.weight, 0.0, 0.02)
            layers += [spectral_norm(conv), nn.LeakyReLU(0.2, inplace=True)]
        classifier = nn.Conv2d(8 * c, 1, 5, 1, padding=1)
        nn.init.normal_(classifier.weight, 0.0, 0.02)
        nn.init.zeros_(classifier.bias)
        self.net = nn.Sequential(*layers, classifier)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if min(image.shape[-2:]) < 64:
            raise ValueError(f"SN-PatchGAN needs images of at least 64x64, got {tuple(image.shape[-2:])}")
        return self.net(image)


@register("sn_patchgan", role="discriminator", paper_params=4_320_000, source="reference.md 2.7 (4.32 M)")
def sn_patchgan(*, image_size: int = 256, base_channels: int = 64) -> SNPatchGAN:
    return SNPatchGAN(3, base_channels)
