"""GConv: DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019), as the
authors' TensorFlow code builds it (JiahuiYu/generative_inpainting v2.0.0, inpaint_model.py / inpaint_ops.py;
docs/pconv_gconv.md).

Generator (cnum = 48): a coarse network, then a refinement network with two parallel branches (dilated
"hallucination" convolutions and contextual attention) merged and decoded. Every layer but the RGB outputs is
a gated convolution that computes `channels` maps and splits them in two: ELU(features) * sigmoid(gates), so
it *returns* channels / 2 (the "lightweight" gated convolution that gives the paper's ~4.1 M parameters:
4,052,478 here, LGNet Table IV's 4.05 M). Upsampling is nearest x2 then a gated 3x3 convolution.

Discriminator: SN-PatchGAN, six spectral-norm 5x5 stride-2 convolutions (64, 128, 256, 256, 256, 256) with
LeakyReLU, flattened; it sees the image with the mask as a fourth channel (`gan_with_mask: True`).

Reproduced from the TF code, since they change the numbers: TF's 'SAME' padding (asymmetric for stride 2:
the extra row and column go at the bottom and right); neuralgym's `resize` with align_corners=True for every
nearest-neighbour resize (upsampling, the mask, contextual attention's downscaling), which is not a plain
pixel repeat; glorot-uniform weights and zero biases (tf.layers defaults). The generator's input is the
authors': [-1, 1] image with holes set to 0, a channel of ones and the mask. Our tensors stay in [0, 1]: the
network maps x * 2 - 1 in and (y + 1) / 2 out, so the holes filled with 1 by the zoo become the authors' 0.

Contextual attention (the algorithm PEN-Net's ATN was built from; kept apart because four numerical steps
differ): foreground and background are the same map, matched at half resolution (rate 2) with 3x3 patches,
keys L2-normalised (min 1e-4), queries not; a key is valid only if its 3x3 mask patch is all 0; scores are
propagated by two 3x3 identity convolutions over the flattened (query, key) score matrix, first in row-major
then in column-major order (the authors' "fuse", with its wrap-around at row ends); masked softmax at scale 10;
the full-resolution 4x4 patches of the background are pasted back with a stride-2 transposed convolution / 4.
The TF code uses the batch's first mask for every sample (its batches share one mask); ours give each sample
its own mask, so each sample uses its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from inpaint.models.registry import register

CNUM = 48
RATE = 2  # contextual attention matches at 1 / RATE of its input


def resize_nearest(x: Tensor, size: tuple[int, int]) -> Tensor:
    """TF1's resize_nearest_neighbor with align_corners=True (neuralgym's default): source index
    round(i * (in - 1) / (out - 1))."""
    for dim, out in zip((-2, -1), size):
        n = x.shape[dim]
        scale = (n - 1) / (out - 1) if out > 1 else 0.0
        idx = torch.floor(torch.arange(out, dtype=torch.float32) * scale + 0.5).long().clamp_max(n - 1)
        x = x.index_select(dim, idx.to(x.device))
    return x


def same_pad(x: Tensor, kernel: int, stride: int, dilation: int = 1) -> Tensor:
    """Zero-pad as TF's 'SAME': total padding split with the extra pixel at the bottom / right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        out = -(-n // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _glorot(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class GatedConv(nn.Module):
    """The authors' gen_conv: a conv to `channels` maps; unless it is an RGB output (`gated=False`), the maps
    split into features and gates: activation(features) * sigmoid(gates), channels / 2 of them. `up`: nearest
    x2 first (gen_deconv)."""

    def __init__(self, cin: int, channels: int, kernel: int = 3, stride: int = 1, dilation: int = 1, *,
                 activation: nn.Module | None = None, gated: bool = True, up: bool = False):
        super().__init__()
        self.conv = _glorot(nn.Conv2d(cin, channels, kernel, stride, dilation=dilation))
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.activation = activation or nn.ELU()
        self.gated, self.up = gated, up
        self.out_channels = channels // 2 if gated else channels

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            x = resize_nearest(x, (2 * x.shape[-2], 2 * x.shape[-1]))
        x = self.conv(same_pad(x, self.kernel, self.stride, self.dilation))
        if not self.gated:
            return x
        features, gates = x.chunk(2, dim=1)
        return self.activation(features) * torch.sigmoid(gates)


def _chain(cin: int, layers: list[tuple]) -> nn.Sequential:
    """Gated convs from (channels, kernel, stride, dilation[, options]) rows, each fed the previous output."""
    modules = []
    for row in layers:
        channels, kernel, stride, dilation, *options = row
        modules.append(GatedConv(cin, channels, kernel, stride, dilation, **(options[0] if options else {})))
        cin = modules[-1].out_channels
    return nn.Sequential(*modules)


def _dilated(c: int) -> list[tuple]:
    return [(4 * c, 3, 1, r) for r in (2, 4, 8, 16)]


def _decoder(c: int) -> list[tuple]:
    """x, x, upsample, x, upsample, x, RGB: the tail both stages share (conv11-17 / allconv11-17)."""
    return [(4 * c, 3, 1, 1), (4 * c, 3, 1, 1), (2 * c, 3, 1, 1, {"up": True}), (2 * c, 3, 1, 1),
            (c, 3, 1, 1, {"up": True}), (c // 2, 3, 1, 1), (3, 3, 1, 1, {"gated": False})]


class ContextualAttention(nn.Module):
    """DeepFill's contextual attention with foreground = background (see the module docstring)."""

    def __init__(self, ksize: int = 3, fuse_k: int = 3, softmax_scale: float = 10.0):
        super().__init__()
        self.ksize, self.softmax_scale = ksize, softmax_scale
        self.register_buffer("fuse_weight", torch.eye(fuse_k).view(1, 1, fuse_k, fuse_k), persistent=False)

    def _fuse(self, scores: Tensor, h: int, w: int) -> Tensor:
        """The authors' score propagation: identity-kernel conv over the (query, key) matrix, row-major, then
        column-major. `scores`: B x Lq x Lk with positions flattened row-major."""
        b = scores.shape[0]
        pad = self.fuse_weight.shape[-1] // 2
        s = F.conv2d(scores.unsqueeze(1), self.fuse_weight, padding=pad)
        s = s.view(b, h, w, h, w).permute(0, 2, 1, 4, 3).reshape(b, 1, h * w, h * w)  # column-major order
        s = F.conv2d(s, self.fuse_weight, padding=pad)
        return s.view(b, w, h, w, h).permute(0, 2, 1, 4, 3).reshape(b, h * w, h * w)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: B x C x H x W (H, W even); mask: B x 1 x h x w at any size, 1 = hole."""
        b, c, height, width = x.shape
        h, w = height // RATE, width // RATE
        small = resize_nearest(x, (h, w))
        m = resize_nearest(resize_nearest(mask, (height, width)), (h, w))
        pad = self.ksize // 2
        patches = F.unfold(small, self.ksize, padding=pad)  # B x C*k*k x L
        keys = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)
        scores = self._fuse(torch.bmm(patches.transpose(1, 2), keys), h, w)  # B x Lq x Lk
        valid = (F.unfold(m, self.ksize, padding=pad).mean(1) == 0).to(x.dtype).unsqueeze(1)  # B x 1 x Lk
        attn = F.softmax(scores * valid * self.softmax_scale, dim=2) * valid
        k = 2 * RATE
        raw = F.unfold(x, k, stride=RATE, padding=1)  # B x C*4*4 x Lk, TF 'SAME' for an even size
        return F.fold(torch.bmm(raw, attn.transpose(1, 2)), (height, width), k, stride=RATE, padding=1) / 4


class DeepFillV2(nn.Module):
    def __init__(self, cnum: int = CNUM):
        super().__init__()
        c = cnum
        encoder = [(2 * c, 3, 2, 1), (2 * c, 3, 1, 1), (4 * c, 3, 2, 1), (4 * c, 3, 1, 1), (4 * c, 3, 1, 1)]
        self.coarse = _chain(5, [(c, 5, 1, 1)] + encoder + _dilated(c) + _decoder(c))
        self.hallucination = _chain(3, [(c, 5, 1, 1), (c, 3, 2, 1), (2 * c, 3, 1, 1), (2 * c, 3, 2, 1),
                                        (4 * c, 3, 1, 1), (4 * c, 3, 1, 1)] + _dilated(c))
        self.attention_encoder = _chain(3, [(c, 5, 1, 1), (c, 3, 2, 1), (2 * c, 3, 1, 1), (4 * c, 3, 2, 1),
                                            (4 * c, 3, 1, 1), (4 * c, 3, 1, 1, {"activation": nn.ReLU()})])
        self.contextual_attention = ContextualAttention()
        self.attention_decoder = _chain(2 * c, [(4 * c, 3, 1, 1), (4 * c, 3, 1, 1)])
        self.refine = _chain(4 * c, _decoder(c))

    def forward(self, masked: Tensor, mask: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """masked: B x 3 x H x W in [0, 1] (hole values are ignored); mask: B x 1 x H x W, 1 = hole."""
        h, w = masked.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"DeepFill v2 needs H and W divisible by 8 (two stride-2 levels and the attention's "
                             f"rate 2), got {h}x{w}")
        xin = (masked * 2 - 1) * (1 - mask)  # the authors' incomplete image: [-1, 1], holes 0
        ones = torch.ones_like(mask)
        stage1 = torch.tanh(self.coarse(torch.cat([xin, ones, ones * mask], dim=1)))
        x = stage1 * mask + xin * (1 - mask)
        attended = self.contextual_attention(self.attention_encoder(x), mask)
        merged = torch.cat([self.hallucination(x), self.attention_decoder(attended)], dim=1)
        stage2 = torch.tanh(self.refine(merged))
        stages = [(stage1 + 1) / 2, (stage2 + 1) / 2]
        return {"output": stages[-1], "stages": stages}


class DeepFillDiscriminator(nn.Module):
    """SN-PatchGAN of DeepFill v2: input image (+ mask channel), six SN conv 5x5 stride 2 with LeakyReLU 0.2,
    flattened scores (B x 256 * (H / 64) * (W / 64))."""

    def __init__(self, in_channels: int = 4, cnum: int = 64):  # 4: RGB and the mask (the authors' gan_with_mask)
        super().__init__()
        chans = [in_channels, cnum, 2 * cnum, 4 * cnum, 4 * cnum, 4 * cnum, 4 * cnum]
        self.convs = nn.ModuleList(spectral_norm(_glorot(nn.Conv2d(a, b, 5, 2))) for a, b in zip(chans, chans[1:]))
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"DeepFill's SN-PatchGAN takes {self.in_channels} channels (image and mask), "
                             f"got {x.shape[1]}")
        for conv in self.convs:
            x = F.leaky_relu(conv(same_pad(x, 5, 2)), 0.2)
        return x.flatten(1)


@register("gconv", role="generator", paper_params=4_050_000, source="LGNet Table IV (4.05 M)", paper_gflops=55.57)
def gconv(*, image_size: int = 256, cnum: int = CNUM) -> DeepFillV2:
    """`image_size` is accepted like every builder's; the network is fully convolutional."""
    return DeepFillV2(cnum)


@register("deepfill_sn_patchgan", role="discriminator")
def deepfill_sn_patchgan(*, image_size: int = 256) -> DeepFillDiscriminator:
    """`image_size` is accepted like every builder's; the scores are flattened at any size."""
    return DeepFillDiscriminator()
