"""VGG-16 perceptual and style losses as LGNet's code computes them (docs/authors_code.md 2.8).

Features are the outputs of pool1, pool2 and pool3 (torchvision vgg16 features[0:5], [5:10], [10:17]).
perceptual = sum over layers of mean|phi(gt) - phi(x)|; style = sum over layers of mean(|G_gt - G_x| / (C*H*W))
with the unnormalised Gram matrix G = F F^T. The VGG is frozen and always in eval mode.

VGG input: the authors feed their raw [-1, 1] images, with neither (x + 1) / 2 nor ImageNet mean/std
normalisation. Our images are in [0, 1], so mapping x * 2 - 1 reproduces the authors' input exactly.

Weights are never downloaded here: the caller passes a torchvision vgg16 state dict file (docs/protocol.md
section 4 decides where it comes from), or None for random weights (the tests-only `random` mode).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from inpaint import weights

SLICES = ((0, 5), (5, 10), (10, 17))  # pool1, pool2, pool3


class VGGWeightsError(ValueError):
    """The VGG-16 weights file is unreadable or is not a torchvision vgg16 state dict."""


def _load_features(features: nn.Sequential, path: Path) -> None:
    """Load `features.0` .. `features.16` of a torchvision vgg16 state dict; the other keys are ignored."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises OSError, UnpicklingError, RuntimeError, ... by cause
        raise VGGWeightsError(f"cannot read VGG-16 weights file {path}: {err}") from err
    if not isinstance(state, Mapping):
        raise VGGWeightsError(f"VGG-16 weights file {path} holds a {type(state).__name__}, not a state dict")
    wanted = {f"features.{key}" for key in features.state_dict()}
    missing = sorted(wanted - state.keys(), key=lambda k: (int(k.split(".")[1]), k))
    if missing:
        raise VGGWeightsError(f"VGG-16 weights file {path} is not a torchvision vgg16 state dict: "
                              f"missing {', '.join(missing)}")
    try:
        features.load_state_dict({key.removeprefix("features."): state[key] for key in wanted})
    except RuntimeError as err:  # shape mismatch
        raise VGGWeightsError(f"VGG-16 weights file {path} does not fit torchvision's vgg16: {err}") from err


class VGG16Features(nn.Module):
    """Frozen VGG-16 up to pool3; returns [pool1, pool2, pool3] for images in [0, 1]."""

    def __init__(self, weights_path: Path | None) -> None:
        # torchvision here, not at the top: it imports torch._dynamo (2 s), which a stage that imports this
        # module through the frameworks without building the loss (baselines, report) need not load
        import torchvision

        super().__init__()
        # Built on the meta device so the 124 M-parameter classifier is never allocated; only features[:17]
        # is materialised, then loaded or initialised as torchvision's VGG initialises its convs.
        with torch.device("meta"):
            features = torchvision.models.vgg16(weights=None).features[: SLICES[-1][1]]
        features = features.to_empty(device="cpu")
        if weights_path is None:
            for module in features.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(module.bias)
        else:
            _load_features(features, Path(weights_path))
        self.slices = nn.ModuleList(features[a:b] for a, b in SLICES)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        """Stay in eval mode whatever the enclosing model does: the VGG is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = x * 2 - 1  # the authors' raw [-1, 1] input, no ImageNet normalisation
        feats = []
        for block in self.slices:
            x = block(x)
            feats.append(x)
        return feats


def gram(f: Tensor) -> Tensor:
    """Unnormalised Gram matrix F F^T, B x C x C."""
    flat = f.flatten(2)
    return flat @ flat.transpose(1, 2)


class PerceptualStyleLoss(nn.Module):
    """(perceptual, style) of several images against one ground truth, summed over images and layers.

    LGNet scores both the raw output and the composite of a stage against the same gt, so gt and all images
    go through the VGG in one batch; gt's features are targets (detached).
    """

    def __init__(self, weights_path: Path | None) -> None:
        super().__init__()
        self.vgg = VGG16Features(weights_path)

    def forward(self, gt: Tensor, images: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if any(x.shape != gt.shape for x in images):
            raise ValueError(f"every image must have gt's shape {tuple(gt.shape)}")
        n = gt.shape[0]
        perceptual = gt.new_zeros(())
        style = gt.new_zeros(())
        for feats in self.vgg(torch.cat([gt, *images])):
            target = feats[:n].detach()
            target_gram = gram(target)
            c, h, w = feats.shape[1:]
            for f in feats[n:].split(n):
                perceptual = perceptual + (target - f).abs().mean()
                style = style + ((target_gram - gram(f)).abs() / (c * h * w)).mean()
        return perceptual, style


def from_weights_setting(mode: str, device: torch.device | str = "cpu") -> tuple[PerceptualStyleLoss | None, str]:
    """The loss as the `weights` setting allows (docs/protocol.md section 4) and the note the run records:
    `required` raises MissingWeights without vgg16-397923af.pth; `auto` gives None (the terms are switched off,
    loudly); `random` a randomly initialised VGG, noted as uncalibrated."""
    path = weights.resolve("vgg16", mode)
    if path is None and mode == "auto":
        f = weights.FILES["vgg16"]
        return None, f"off: {f.filename} is not in the torch cache ({f.path.parent}); `inpaint weights status`"
    note = f"on: {path.name}" if path is not None else "uncalibrated: VGG-16 with random weights (weights: random)"
    return PerceptualStyleLoss(path).to(device), note
