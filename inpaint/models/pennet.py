"""PEN-Net (Zeng et al., CVPR 2019): a pyramid-context encoder whose attention transfer networks (ATN) fill
each encoder level from the level below it, as the authors' PyTorch code does (docs/authors_code.md 3.2-3.3).

Zoo conventions versus the authors: our images are in [0, 1], theirs in [-1, 1] with tanh outputs. The
generator maps its input with x * 2 - 1 at entry and every tanh output back with (y + 1) / 2, so the network
itself computes exactly what the authors' does (holes filled with 1 stay 1, the white the authors use).
The ATN is the authors' formulation (per sample: matching as conv2d with the normalised key patches as
filters, transfer as conv_transpose2d with x1's raw patches as filters); the numerics (key masking, scaled
softmax, clamp, transfer / 4) are theirs, computed over the valid keys only (the keys in the hole add a
known constant to the softmax's denominator and to the transfer: `ATN.attend`). Convolutions beat the
equivalent unfold / bmm / fold (the previous formulation, kept in tests/test_pennet.py as the reference),
and one conv per sample beats one grouped conv over the batch: measured in bench/pennet.py.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaint.models.registry import register

MaskResize = Literal["bilinear", "nearest"]

LEVELS = 6  # stride-2 encoder levels
MIN_SIZE = 2**LEVELS  # every level must halve exactly so the decoder's skip connections line up
RATE = 2  # x1 has twice x2's resolution; raw patches are 2 * RATE wide with stride RATE (docs/authors_code.md 3.3)


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ATN(nn.Module):
    """Attention transfer network: matches patches of the high-level map x2 and copies the corresponding
    4x4 patches of the low-level map x1 (twice x2's resolution), so holes are filled from the known region.

    `mask_resize="bilinear"` (align_corners=True) is the PyTorch code; "nearest" is the TF version's choice.
    A key is valid only if the resized mask is exactly 0 over its whole ksize x ksize patch (zero padding
    counts as valid); queries are all positions.
    """

    def __init__(self, channels: int, *, ksize: int = 3, fuse: bool = True, softmax_scale: float = 10.0,
                 rates: tuple[int, ...] = (1, 2, 4, 8), mask_resize: MaskResize = "bilinear") -> None:
        super().__init__()
        if ksize not in (1, 3):
            raise ValueError(f"ATN ksize must be 1 or 3 (the authors' padding rule), got {ksize}")
        if mask_resize not in ("bilinear", "nearest"):
            raise ValueError(f"mask_resize must be 'bilinear' or 'nearest', got {mask_resize!r}")
        self.ksize = ksize
        self.softmax_scale = softmax_scale
        self.mask_resize = mask_resize
        self.fuse = None
        if fuse:
            if channels % len(rates):
                raise ValueError(f"ATN fuse: {channels} channels do not split into {len(rates)} dilated groups")
            self.fuse = nn.ModuleList(
                nn.Sequential(nn.Conv2d(channels, channels // len(rates), 3, padding=d, dilation=d), nn.ReLU())
                for d in rates
            )

    def valid_keys(self, mask: Tensor, size: tuple[int, int]) -> Tensor:
        """B x keys, bool: True where the key's patch of the resized mask is exactly 0."""
        align = True if self.mask_resize == "bilinear" else None
        m = F.interpolate(mask, size=size, mode=self.mask_resize, align_corners=align)
        return F.unfold(m, self.ksize, padding=self.ksize // 2).mean(1) == 0

    def attend(self, x2: Tensor, valid: Tensor | None) -> Tensor:
        """One sample's attention weights over its valid keys only (`valid`: bool per key, None when every key
        is valid), 1 x valid keys x H x W (keys in row-major order of x2's positions, queries as pixels);
        every invalid key's weight is exactly 1e-8.

        The authors score every key, set the invalid keys' scores to 0 before the softmax (so each still adds
        exp(0) to the denominator) and their weights to 0 after it (then 1e-8 by the clamp). The same
        numbers come from scoring the valid keys only, plus one constant channel log(#invalid) standing in for
        their share of the denominator: the matching and transfer convolutions shrink by the hole's share of
        the keys, and the softmax scale rides on the filters instead of a pass over the scores."""
        c, h, w = x2.shape[1:]
        k, pad = self.ksize, self.ksize // 2
        keys = F.unfold(x2, k, padding=pad)[0]  # C*k*k x keys, zero padded as the authors'
        if valid is not None:
            keys = keys[:, valid]
        keys = keys * (self.softmax_scale / keys.norm(dim=0, keepdim=True).clamp_min(1e-4))
        n_valid = keys.shape[1]
        filters, bias = keys.t().reshape(n_valid, c, k, k), None
        invalid = h * w - n_valid
        if invalid:
            filters = torch.cat([filters, filters.new_zeros(1, c, k, k)])
            bias = filters.new_zeros(len(filters))
            bias[-1] = math.log(invalid)
        scores = F.conv2d(x2, filters, bias, padding=pad)
        return F.softmax(scores, dim=1)[:, :n_valid].clamp_min(1e-8)

    def attention(self, x2: Tensor, mask: Tensor) -> Tensor:
        """Attention weights B x keys x queries over the positions of x2 (row-major), invalid keys included."""
        valid = self.valid_keys(mask, x2.shape[-2:])
        full = x2.new_full((len(x2), valid.shape[1], x2.shape[-2] * x2.shape[-1]), 1e-8)
        for n in range(len(x2)):
            full[n, valid[n]] = self.attend(x2[n:n + 1], valid[n])[0].flatten(1)
        return full

    def transfer(self, x2: Tensor, valid: Tensor, raw: Tensor) -> Tensor:
        """One sample: each query pastes the keys' raw 4x4 patches (raw: keys x C1 x 4 x 4) weighted by its
        attention, overlaps averaged (/ 4); the invalid keys' 1e-8 weights add one constant patch."""
        if valid.is_meta or valid.all():  # meta device: shapes only (models/summary.py counts an empty mask)
            return F.conv_transpose2d(self.attend(x2, None), raw, stride=RATE, padding=1) / 4
        y = 0
        if valid.any():
            y = F.conv_transpose2d(self.attend(x2, valid), raw[valid], stride=RATE, padding=1)
        constant = x2.new_full((1, 1, *x2.shape[-2:]), 1e-8)
        y = y + F.conv_transpose2d(constant, raw[~valid].sum(0, keepdim=True), stride=RATE, padding=1)
        return y / 4

    def forward(self, x1: Tensor, x2: Tensor, mask: Tensor) -> Tensor:
        if x1.shape[-2:] != (RATE * x2.shape[-2], RATE * x2.shape[-1]):
            raise ValueError(f"ATN needs x1 at twice x2's size, got {tuple(x1.shape[-2:])} and {tuple(x2.shape[-2:])}")
        b, c = x1.shape[:2]
        k = 2 * RATE
        valid = self.valid_keys(mask, x2.shape[-2:])
        raw = F.unfold(x1, k, stride=RATE, padding=1).transpose(1, 2).reshape(b, -1, c, k, k)  # a 4x4 patch per key
        # Per sample, as the authors: one conv per sample beats one grouped conv over the batch on CPU, and
        # each sample has its own valid keys.
        y = torch.cat([self.transfer(x2[n:n + 1], valid[n], raw[n]) for n in range(b)])
        if self.fuse is not None:
            y = torch.cat([branch(y) for branch in self.fuse], dim=1)
        return y


class PENNet(nn.Module):
    """InpaintGenerator of the PyTorch PEN-Net code (cnum = 32 gives 10.23 M parameters).

    Encoder dw1..dw6 (3x3 stride-2 convs), ATNs at5..at1 from deep to shallow, each output replacing the
    encoder feature of its level; decoder up5..up1 (bilinear x2 then conv) with the ATN features as skips;
    a 1x1 tanh RGB head per decoder level gives the pyramid.
    """

    def __init__(self, cnum: int = 32, mask_resize: MaskResize = "bilinear") -> None:
        super().__init__()
        ch = [4, cnum, 2 * cnum, 4 * cnum, 8 * cnum, 16 * cnum, 16 * cnum]  # ch[i] = channels of x_i
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[i - 1], ch[i], 3, stride=2, padding=1),
                          nn.ReLU() if i == LEVELS else nn.LeakyReLU(0.2))
            for i in range(1, LEVELS + 1)
        )
        # atn[i] fills level i + 1 from level i + 2; the deepest (at5) uses 1x1 patches and no fuse.
        self.atn = nn.ModuleList(
            ATN(ch[i], ksize=1 if i == 5 else 3, fuse=i != 5, mask_resize=mask_resize) for i in range(1, 6)
        )
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[6] if i == 5 else 2 * ch[i + 1], ch[i], 3, padding=1), nn.ReLU())
            for i in range(1, 6)
        )
        self.to_rgb = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * ch[i], 3, 1), nn.Tanh()) for i in range(1, 6))
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * ch[1], cnum, 3, padding=1), nn.ReLU(), nn.Conv2d(cnum, 3, 3, padding=1), nn.Tanh()
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, masked: Tensor, mask: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """masked: B x 3 x H x W in [0, 1], holes = 1; mask: B x 1 x H x W, 1 = hole."""
        h, w = masked.shape[-2:]
        if h % MIN_SIZE or w % MIN_SIZE:
            raise ValueError(
                f"PEN-Net needs H and W to be multiples of {MIN_SIZE} (its {LEVELS} stride-2 levels must halve "
                f"exactly for the skips to line up; the smallest input is {MIN_SIZE}x{MIN_SIZE}, so 32x32 cannot "
                f"work), got {h}x{w}"
            )
        if mask.shape != (masked.shape[0], 1, h, w):
            raise ValueError(f"mask must be B x 1 x H x W matching the image, got {tuple(mask.shape)}")

        x = torch.cat([masked * 2 - 1, mask], dim=1)
        feats = []
        for dw in self.encoder:
            x = dw(x)
            feats.append(x)

        filled: list[Tensor] = []  # x5', x4', ..., x1': each level filled from the one below it
        deeper = feats[5]
        for i in reversed(range(5)):
            deeper = self.atn[i](feats[i], deeper, mask)
            filled.append(deeper)
        filled.reverse()

        pyramid: list[Tensor] = []  # img5 (H/32) first, reversed below to H/2 first
        up = self.up[4](_up2(feats[5]))
        for i in reversed(range(5)):
            skip = torch.cat([up, filled[i]], dim=1)
            pyramid.append((self.to_rgb[i](skip) + 1) / 2)
            up = self.up[i - 1](_up2(skip)) if i > 0 else self.decoder(_up2(skip))
        pyramid.reverse()
        return {"output": (up + 1) / 2, "pyramid": pyramid}


@register("pennet", role="generator", paper_params=10_230_000, source="docs/authors_code.md 3.2", paper_gflops=48.07)
def pennet(*, cnum: int = 32, mask_resize: MaskResize = "bilinear", image_size: int = 256) -> PENNet:
    """`image_size` is accepted like every builder's; PEN-Net's depth is fixed (the forward checks the size)."""
    return PENNet(cnum=cnum, mask_resize=mask_resize)
