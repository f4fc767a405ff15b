"""GDN (Zhang et al., "Pixel-wise Dense Detector for Image Inpainting", 2020): the EdgeConnect-like
generator and the 7-layer pixel detector (docs/authors_code.md 1.3-1.4).

Parameter parity with the authors' TensorFlow graph (10,779,328 for the generator at any input size)
needs two facts the layer table hides: the authors call TF's `instance_norm` with `center=True,
scale=True` (a learned per-channel scale *and* shift after every normalisation: 2 x 4,736 parameters), and
no convolution has a bias, the last 7x7 included (`use_bias=False`). Convolution weights are 10,769,856.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inpaint.models.registry import register


class InstanceNormAffine(nn.Module):
    """Instance norm (eps 1e-5) with a learned per-channel scale (init 1) and shift (init 0), as the authors'
    `instance_norm(center=True, scale=True)`."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, eps=1e-5) * self.scale + self.shift


def _conv_in_relu(cin: int, cout: int, k: int, stride: int = 1, pad: nn.Module | None = None) -> nn.Sequential:
    layers = [pad] if pad is not None else []
    layers += [nn.Conv2d(cin, cout, k, stride, bias=False), InstanceNormAffine(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """[reflect-pad 2, 3x3 dilation 2, IN, ReLU] -> [reflect-pad 1, 3x3, IN] -> + input (no ReLU after)."""

    def __init__(self, channels: int, dilation: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(dilation), nn.Conv2d(channels, channels, 3, dilation=dilation, bias=False),
            InstanceNormAffine(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), InstanceNormAffine(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GDNGenerator(nn.Module):
    """Input concat(masked RGB, mask) (4 ch), two stride-2 downsamplings, residual blocks, two
    transposed-conv upsamplings; output (tanh(x) + 1) / 2 in [0, 1]."""

    def __init__(self, base_channels: int = 64, res_blocks: int = 8, downsamplings: int = 2):
        super().__init__()
        c = base_channels
        layers: list[nn.Module] = [_conv_in_relu(4, c, 7, pad=nn.ReflectionPad2d(3))]
        for i in range(downsamplings):  # zero-pad 1 + valid 4x4 stride 2 == padding 1
            layers.append(_conv_in_relu(c * 2**i, c * 2**(i + 1), 4, 2, pad=nn.ZeroPad2d(1)))
        deep = c * 2**downsamplings
        layers += [ResidualBlock(deep) for _ in range(res_blocks)]
        for i in reversed(range(downsamplings)):  # TF 'SAME' transposed 4x4 stride 2 == padding 1
            layers += [nn.ConvTranspose2d(c * 2**(i + 1), c * 2**i, 4, 2, padding=1, bias=False),
                       InstanceNormAffine(c * 2**i), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7, bias=False)]
        self.net = nn.Sequential(*layers)
        self.downsamplings = downsamplings
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        step = 2**self.downsamplings
        if masked.shape[-1] % step or masked.shape[-2] % step:
            raise ValueError(f"GDN generator: height and width must be multiples of {step}, got {tuple(masked.shape[-2:])}")
        out = (torch.tanh(self.net(torch.cat([masked, mask], dim=1))) + 1) / 2
        return {"output": out}


class SamePad(nn.Module):
    """TensorFlow 'SAME' padding for a 4x4 kernel at stride 1: 1 before, 2 after (asymmetric)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 2, 1, 2))


class PixelDetector(nn.Module):
    """Seven layers, no normalisation, biases on: 2-channel logits per pixel (channel 1 = hole/artifact).

    Sees only the raw generator output (no mask channel, never the ground truth).
    """

    def __init__(self, base_channels: int = 32):
        super().__init__()
        c = base_channels
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.net = nn.Sequential(
            SamePad(), nn.Conv2d(3, c, 4), act(),
            SamePad(), nn.Conv2d(c, 2 * c, 4), act(),
            nn.Conv2d(2 * c, 4 * c, 4, 2, padding=1), act(),
            nn.Conv2d(4 * c, 8 * c, 4, 2, padding=1), act(),
            SamePad(), nn.Conv2d(8 * c, 8 * c, 4), act(),
            nn.ConvTranspose2d(8 * c, 4 * c, 4, 2, padding=1),
            nn.ConvTranspose2d(4 * c, 2, 4, 2, padding=1))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)  # TF's default glorot-uniform
                nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] % 4 or image.shape[-2] % 4:
            raise ValueError(f"pixel detector: height and width must be multiples of 4, got {tuple(image.shape[-2:])}")
        return self.net(image)


def hole_probability(logits: torch.Tensor) -> torch.Tensor:
    """V: the softmax probability of channel 1 (hole/artifact), B x 1 x H x W."""
    return torch.softmax(logits, dim=1)[:, 1:2]


@register("gdn_generator", role="generator", paper_params=10_779_328,
          source="the authors' TF graph (network.py), counted")
def gdn_generator(*, image_size: int = 256, base_channels: int = 64, res_blocks: int = 8) -> GDNGenerator:
    return GDNGenerator(base_channels, res_blocks)


@register("gdn_detector", role="detector", paper_params=2_270_000, source="docs/authors_code.md 1.4 (about 2.27 M)")
def gdn_detector(*, image_size: int = 256, base_channels: int = 32) -> PixelDetector:
    return PixelDetector(base_channels)
