"""PConv (Liu et al., "Image Inpainting for Irregular Holes Using Partial Convolutions", ECCV 2018): a U-Net
whose every convolution is a partial convolution (docs/pconv_gconv.md).

Partial convolution (the paper's eq. 1 and 2): x' = W^T (X * M) sum(1) / sum(M) + b where the window holds at
least one valid input, else 0; the updated mask is 1 wherever the window held a valid input. The decoder
concatenates features (upsampled decoder output, encoder skip) and, as the paper says, their masks too, so
the mask is per channel. Every feature map here has one mask shared by its channels, so a concatenation's
mask is carried as the fraction of valid channels at each pixel (`coverage`); sum(M) over a window of all
input channels is then C_in * boxsum(coverage) and sum(1) is C_in * k * k.

Layers (the paper's Sec. 3.2 at 512 x 512, 8 levels): PConv1 7x7/64, PConv2 5x5/128, PConv3 5x5/256, PConv4-8
3x3/512, all stride 2, ReLU; decoder: nearest x2 upsampling, concatenation with the skip, 3x3 PConv, LeakyReLU
0.2, 512 x4, 256, 128, 64, 3; the last layer also takes the input image and its mask. BatchNorm everywhere
but the first encoder and the last decoder layer.

Depth: the paper halves 512 eight times down to 2 x 2; the common PyTorch implementation
(naoto0804/pytorch-inpainting-with-partial-conv, `PConvUNet(layer_size=7)`) keeps the same 2 x 2 bottom at 256.
`levels_for(size)` generalises the rule: as many halvings as leave at least 2 x 2, at most the paper's 8
(5 at 64, 7 at 256, 8 at 512).

Choices the paper leaves open, taken from the common implementation: convolution biases only where no
BatchNorm follows, except the first layer (which has neither: its layout, so the parameter count is its
count); Kaiming-normal weights; no output activation; ImageNet-normalised images. Our images are [0, 1]: the
network reads (x - mean) / std and returns y * std + mean (the evaluator clamps the linear output).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaint.models.registry import register

PAPER_LEVELS = 8  # at 512 x 512
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER = ((64, 7), (128, 5), (256, 5), (512, 3))  # (channels, kernel) of PConv1-4; deeper levels: (512, 3)


def imagenet_normalise(x: Tensor) -> Tensor:
    """[0, 1] -> the common implementation's input space, (x - mean) / std per channel."""
    return (x - x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)


def imagenet_denormalise(x: Tensor) -> Tensor:
    return x * x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1) + x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


def levels_for(size: int) -> int:
    """The U-Net depth at `size`: halvings that leave a bottom of at least 2 x 2, at most the paper's 8."""
    levels = 0
    while levels < PAPER_LEVELS and size % 2 ** (levels + 1) == 0 and size // 2 ** (levels + 1) >= 2:
        levels += 1
    if levels < len(ENCODER):
        raise ValueError(f"PConv needs an image size divisible by {2 ** len(ENCODER)} (at least {len(ENCODER)} "
                         f"levels), got {size}")
    return levels


class PartialConv(nn.Module):
    """A partial convolution. `coverage` (B x 1 x H x W) is the fraction of input channels valid at each
    pixel; the input must already be zero where its channel's mask is 0."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, bias: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        nn.init.kaiming_normal_(self.conv.weight, a=0, mode="fan_in")  # the common implementation's init
        self.register_buffer("window", torch.ones(1, 1, kernel, kernel), persistent=False)

    def forward(self, x: Tensor, coverage: Tensor) -> tuple[Tensor, Tensor]:
        out = self.conv(x)
        with torch.no_grad():
            valid = F.conv2d(coverage, self.window, stride=self.conv.stride, padding=self.conv.padding)
            updated = (valid > 0).to(x.dtype)
            ratio = self.window.numel() / valid.clamp_min(1e-8) * updated  # sum(1) / sum(M), 0 with no valid input
        out = out * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * updated
        return out, updated


class PConvLayer(nn.Module):
    """PConv, then BatchNorm (optional), then the activation (optional). Input as PartialConv's."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, *, bn: bool, act: nn.Module | None,
                 bias: bool = False):
        super().__init__()
        self.pconv = PartialConv(cin, cout, kernel, stride, bias)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act = act or nn.Identity()

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        out, mask = self.pconv(x, mask)
        return self.act(self.bn(out)), mask


class PConvUNet(nn.Module):
    def __init__(self, levels: int = PAPER_LEVELS):
        super().__init__()
        if levels < len(ENCODER):
            raise ValueError(f"PConv U-Net needs at least {len(ENCODER)} levels, got {levels}")
        self.levels = levels
        specs = list(ENCODER) + [(512, 3)] * (levels - len(ENCODER))
        chans = [3] + [c for c, _ in specs]
        self.encoder = nn.ModuleList(
            PConvLayer(chans[i], c, k, 2, bn=i > 0, act=nn.ReLU()) for i, (c, k) in enumerate(specs))
        # decoder[i] produces level i's channels from level i + 1's output and level i's skip (level 0: the input)
        self.decoder = nn.ModuleList(
            PConvLayer(chans[i + 1] + chans[i], chans[i], 3, 1, bn=i > 0,
                       act=nn.LeakyReLU(0.2) if i > 0 else None, bias=i == 0)
            for i in range(levels))

    def forward(self, masked: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """masked: B x 3 x H x W in [0, 1]; mask: B x 1 x H x W, 1 = hole. Hole values are never read."""
        h, w = masked.shape[-2:]
        step = 2 ** self.levels
        if h % step or w % step:
            raise ValueError(f"this PConv U-Net has {self.levels} levels and needs H and W divisible by {step}, "
                             f"got {h}x{w}")
        valid = 1 - mask
        feats, masks = [imagenet_normalise(masked)], [valid]
        for layer in self.encoder:
            x, m = layer(feats[-1] * masks[-1], masks[-1])
            feats.append(x)
            masks.append(m)
        x, m = feats[-1], masks[-1]
        for i in reversed(range(self.levels)):
            x, m = F.interpolate(x, scale_factor=2, mode="nearest"), F.interpolate(m, scale_factor=2, mode="nearest")
            skip, skip_m = feats[i], masks[i]
            ca, cb = x.shape[1], skip.shape[1]
            # each part is zeroed by its own mask; the joint mask is the share of valid channels
            x = torch.cat([x * m, skip * skip_m], dim=1)
            coverage = (ca * m + cb * skip_m) / (ca + cb)
            x, m = self.decoder[i](x, coverage)
        return {"output": imagenet_denormalise(x)}


@register("pconv", role="generator", paper_params=25_779_796,
          source="the common implementation (naoto0804 PConvUNet, layer_size 7 at 256, learnable parameters); "
                 "the paper gives no count")
def pconv(*, image_size: int = 256, levels: int | None = None) -> PConvUNet:
    """`levels` None: derived from `image_size` (`levels_for`: 7 at 256, 8 at 512, 5 at 64)."""
    return PConvUNet(levels_for(image_size) if levels is None else levels)
