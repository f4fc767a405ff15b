"""LGNet (Quan et al., TIP 2022): a coarse network followed by local and global refinement stages.

Networks (docs/authors_code.md 2.4-2.6), all from two classes:
- Net_C: pix2pix U-Net (`UNet`), depth log2(image_size), channels min(ngf * 2^i, ngf * 8).
- Net_L: pix2pix ResnetGenerator (`ResnetGenerator`), 2 downsamplings, 4 residual blocks.
- Net_G: the same `UNet` with `attention_at=(16, 8, 4)`: a `SelfAttention` on the decoder features at 1/16, 1/8
  and 1/4 of the input (16^2, 32^2, 64^2 at 256). The authors hard-code 512/256/128 channels, which crashes with
  ngf = 48; here each module takes the channels of the feature it sits on, min(ngf * 2^(i-1), ngf * 8) at 1/2^i,
  i.e. 512/256/128 at ngf 64 and 384/192/96 at ngf 48.

Chaining (docs/authors_code.md 2.3): out_k = stage_k([merged_{k-1}, m]), merged_k = masked * (1 - m) + out_k * m, with
merged_0 = masked; no detach between stages. The authors' networks work in [-1, 1] with tanh outputs, so each
stage maps its input with x * 2 - 1 and its output back with (y + 1) / 2; the project's tensors stay in [0, 1].
Merging uses the project's masked image (holes = 1): identical to the authors' img * (1 - m) for binary masks.

Parameter counts at 256 (exact; the published figures are rounded to 0.01 M):
  Net_C 54,414,979 (54.42 M in docs/authors_code.md 2.4: presumably the code's "%.3f" print, 54.415, rounded
  again),
  Net_L 5,483,203 (5.48 M), Net_G 55,104,003 (55.10 M), LGNet 115,002,185 (115.00 M).
  light: ngf 48 in Net_C and Net_G, attention scaled with it, Net_L kept at ngf 64:
  30,612,195 + 5,483,203 + 30,999,939 = 67,095,337 (67.10 M). Net_L at ngf 48 too would give 64,701,561
  (64.70 M), so the paper's 67.10 M is this reading.
  share: every U-Net refinement stage reuses Net_C's encoder/decoder modules (the same Parameter objects, and
  hence the same BatchNorm running statistics); only the attention fuse convs are new: 60,587,206. That is
  exactly LGNet minus one Net_C; the paper's 60.58 M equals 115.00 - 54.42 of its rounded figures
  (exact rounding gives 60.59 M).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn

from inpaint.models.attention import SelfAttention
from inpaint.models.registry import build, register

NORMS = ("batch", "instance", "none")
STAGES = ("C", "L", "G", "G_att")
TABLE_VI = ("C", "C+L", "C+G_att", "C+G+G_att", "C+L+G", "C+L+G_att")
ATTENTION_AT = (16, 8, 4)  # Net_G's attention: decoder features at 1/16, 1/8, 1/4 of the input


def _norm(norm: str, channels: int) -> nn.Module:
    """pix2pix norms: affine BatchNorm, InstanceNorm without affine or running stats, or none."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _conv_bias(norm: str) -> bool:
    # BatchNorm's shift makes a conv bias redundant (pix2pix); the other norms need it
    return norm != "batch"


class UNet(nn.Module):
    """pix2pix UnetGenerator, flattened: one class for Net_C, Net_G ("G") and Net_G with attention ("G_att").

    Encoder level i: [LeakyReLU 0.2], conv 4x4 s2, [norm] (no activation before the first conv, no norm after the
    first or innermost). Decoder level i: ReLU, transposed conv 4x4 s2, norm (outermost: bias and tanh instead of
    norm); its input is the concatenation [encoder feature, decoder feature] one level deeper.
    `attention_at` lists downsampling factors whose decoder feature goes through a `SelfAttention` before it is
    concatenated with the skip. `shared` reuses another UNet's convs and norms (LGNet_share): then only the
    attention modules are this module's own.
    """

    def __init__(self, in_channels: int = 4, out_channels: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", attention_at: Sequence[int] = (), shared: UNet | None = None) -> None:
        super().__init__()
        ch = [min(ngf * 2**i, ngf * 8) for i in range(num_downs)]  # output channels of encoder level i
        for factor in attention_at:
            if factor not in [2**i for i in range(1, num_downs)]:
                raise ValueError(f"attention at 1/{factor} needs a decoder level there; "
                                 f"a {num_downs}-level U-Net has 1/2 .. 1/{2 ** (num_downs - 1)}")
        self.attention = nn.ModuleDict({str(f): SelfAttention(ch[f.bit_length() - 2]) for f in attention_at})
        self.config = (in_channels, out_channels, tuple(ch), norm)
        if shared is not None:
            if shared.config != self.config:
                raise ValueError(f"cannot share a U-Net {shared.config} with a different one {self.config}")
            self.down, self.up = shared.down, shared.up
        else:
            self.down, self.up = self._layers(in_channels, out_channels, ch, norm)

    @staticmethod
    def _layers(in_channels: int, out_channels: int, ch: list[int], norm: str) -> tuple[nn.ModuleList, nn.ModuleList]:
        bias, n = _conv_bias(norm), len(ch)
        down, up = nn.ModuleList(), nn.ModuleList()
        for i in range(n):
            c_in = in_channels if i == 0 else ch[i - 1]
            conv = nn.Conv2d(c_in, ch[i], 4, stride=2, padding=1, bias=bias)
            act = [] if i == 0 else [nn.LeakyReLU(0.2)]
            down.append(nn.Sequential(*act, conv, *([_norm(norm, ch[i])] if 0 < i < n - 1 else [])))
            c_up_in = ch[i] if i == n - 1 else 2 * ch[i]
            if i == 0:
                up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_up_in, out_channels, 4, 2, 1), nn.Tanh()))
            else:
                up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_up_in, ch[i - 1], 4, 2, 1, bias=bias),
                                        _norm(norm, ch[i - 1])))
        return down, up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        y = skips.pop()
        for i in reversed(range(len(self.up))):  # decoder level i outputs 1/2^i of the input size
            y = self.up[i](y)
            if str(2**i) in self.attention:
                y = self.attention[str(2**i)](y)
            if i > 0:
                y = torch.cat([skips.pop(), y], dim=1)
        return y


class _ResBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        bias = _conv_bias(norm)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """pix2pix ResnetGenerator (Net_L): 7x7 stem, `n_down` stride-2 convs, residual blocks, mirrored upsampling."""

    def __init__(self, in_channels: int = 4, out_channels: int = 3, ngf: int = 64, n_blocks: int = 4,
                 n_down: int = 2, norm: str = "batch") -> None:
        super().__init__()
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   _norm(norm, ngf), nn.ReLU()]
        for i in range(n_down):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), _norm(norm, 2 * c), nn.ReLU()]
        layers += [_ResBlock(ngf * 2**n_down, norm) for _ in range(n_blocks)]
        for i in reversed(range(n_down)):
            c = ngf * 2**i
            layers += [nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       _norm(norm, c), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LGNet(nn.Module):
    """Stages chained as docs/authors_code.md 2.3; `forward(masked, mask)` follows the zoo's [0, 1] convention.

    Returns {"output": the final merged image, "stages": each stage's raw output, "merged": each stage's merged
    image}, all B x 3 x H x W in [0, 1]. With `zoo_coarse`, stage 0 is a registered generator called as
    `stage(masked, mask)["output"]`; every other stage is one of the authors' [-1, 1] networks.
    """

    def __init__(self, stages: Sequence[nn.Module], zoo_coarse: bool = False) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.zoo_coarse = zoo_coarse

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        known = masked * (1 - mask)
        outputs: list[torch.Tensor] = []
        merged: list[torch.Tensor] = []
        for k, stage in enumerate(self.stages):
            x = merged[-1] if merged else masked
            if k == 0 and self.zoo_coarse:
                out = stage(x, mask)["output"]
            else:
                out = (stage(torch.cat([x * 2 - 1, mask], dim=1)) + 1) / 2
            outputs.append(out)
            merged.append(known + out * mask)
        return {"output": merged[-1], "stages": outputs, "merged": merged}


def init_weights(module: nn.Module) -> None:
    """docs/authors_code.md 2.9: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0. Use with `.apply`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _num_downs(image_size: int) -> int:
    if image_size < 2 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two, got {image_size}")
    return image_size.bit_length() - 1


def lgnet(*, variant: str = "C+L+G_att", light: bool = False, share: bool = False, coarse: str = "net_c",
          norm: str = "batch", image_size: int = 256) -> LGNet:
    """Any chain of C / L / G / G_att stages ("+"-joined, C only first). `light`: ngf 48 in the U-Nets (Net_L
    keeps 64); `share`: G stages reuse Net_C's weights; `coarse`: a registered generator replacing Net_C."""
    names = variant.split("+")
    if any(s not in STAGES for s in names) or "C" in names[1:]:
        raise ValueError(f"variant {variant!r}: stages are {STAGES}, joined by '+', with C only first")
    if coarse != "net_c" and names[0] != "C":
        raise ValueError(f"coarse={coarse!r} replaces stage C, which variant {variant!r} lacks")
    if share and (names[0] != "C" or coarse != "net_c"):
        raise ValueError("share reuses Net_C's weights: it needs the built-in Net_C as the first stage")
    unet = partial(UNet, num_downs=_num_downs(image_size), ngf=48 if light else 64, norm=norm)
    stages: list[nn.Module] = []
    for name in names:
        if name == "C":
            stages.append(unet() if coarse == "net_c" else build(coarse, image_size=image_size))
        elif name == "L":
            stages.append(ResnetGenerator(norm=norm))
        else:
            stages.append(unet(attention_at=ATTENTION_AT if name == "G_att" else (),
                               shared=stages[0] if share else None))
    zoo_coarse = coarse != "net_c"
    for stage in stages[1:] if zoo_coarse else stages:  # a zoo generator keeps its own builder's init
        stage.apply(init_weights)
    return LGNet(stages, zoo_coarse=zoo_coarse)


register("lgnet", role="generator", paper_params=115_000_000, source="LGNet Table IV", paper_gflops=69.62)(lgnet)


@register("net_c", role="generator", paper_params=54_420_000, source="docs/authors_code.md 2.4")
def net_c(*, norm: str = "batch", image_size: int = 256) -> LGNet:
    return lgnet(variant="C", norm=norm, image_size=image_size)


@register("net_l", role="generator", paper_params=5_480_000, source="docs/authors_code.md 2.5")
def net_l(*, norm: str = "batch", image_size: int = 256) -> LGNet:
    return lgnet(variant="L", norm=norm, image_size=image_size)


@register("net_g", role="generator", paper_params=55_100_000, source="docs/authors_code.md 2.6")
def net_g(*, norm: str = "batch", image_size: int = 256) -> LGNet:
    return lgnet(variant="G_att", norm=norm, image_size=image_size)


@register("lgnet_light", role="generator", paper_params=67_100_000, source="LGNet Table IV", paper_gflops=53.73)
def lgnet_light(*, image_size: int = 256) -> LGNet:
    return lgnet(light=True, image_size=image_size)


@register("lgnet_share", role="generator", paper_params=60_580_000, source="LGNet Table IV", paper_gflops=69.62)
def lgnet_share(*, image_size: int = 256) -> LGNet:
    return lgnet(share=True, image_size=image_size)


# Table VI's columns by name (lgnet_c, lgnet_c_l, ..., lgnet_c_l_g_att); only C and C+L+G_att have a published count
_TABLE_VI_PARAMS = {"C": 54_420_000, "C+L+G_att": 115_000_000}
for _variant in TABLE_VI:
    register(f"lgnet_{_variant.lower().replace('+', '_')}", role="generator",
             paper_params=_TABLE_VI_PARAMS.get(_variant), source="LGNet Table VI")(partial(lgnet, variant=_variant))
