"""What the number of spectral-norm power iterations per training step changes (docs/departures.md).

    python bench/spectral_norm.py                 # 300 steps, 64 px
    python bench/spectral_norm.py --steps 1000

The authors call their discriminator three times per step (real, fake, then the fake again for G), so
each spectral-norm layer gets three power iterations per step; this project's recipes call it twice (one
batched call on [real, fake], one for G). This bench trains the SN-PatchGAN as PEN-Net's recipe does
(hinge loss, Adam 1e-4, betas (0.5, 0.999)) on one fixed batch: real photographs against the same photos
with white holes (the generator left out: Adam moves every weight by about the learning rate per step
whatever the loss, and that drift is what the power iteration has to track). Two runs from one seed: two
iterations per step (ours) and three (the authors'). Printed per run: the relative error of every SN
layer's sigma estimate (u^T W v, what the forward divides by) against W's largest singular value, median
and worst over all layers and steps, and the final D loss.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning import fixed_batch  # noqa: E402

from inpaint.frameworks.base import adam, masked_input  # noqa: E402
from inpaint.losses.adversarial import discriminator_loss  # noqa: E402
from inpaint.models.patchgan import SpectralNormConv  # noqa: E402
from inpaint.models.registry import build  # noqa: E402


def sigma_errors(layers: list[SpectralNormConv]) -> list[float]:
    with torch.no_grad():
        out = []
        for layer in layers:
            matrix = layer.conv.weight.flatten(1)
            true = torch.linalg.matrix_norm(matrix, ord=2)
            out.append(float((torch.dot(layer.u, matrix @ layer.v) - true).abs() / true))
        return out


def run(real: torch.Tensor, fake: torch.Tensor, steps: int, iterations: int) -> dict:
    torch.manual_seed(10)
    disc = build("sn_patchgan", image_size=real.shape[-1]).train()
    opt = adam(disc, 1e-4, 0.5, 0.999)
    layers = [m for m in disc.modules() if isinstance(m, SpectralNormConv)]
    errors = []
    for _ in range(steps):
        with torch.no_grad():
            for layer in layers:
                for _ in range(iterations - 2):
                    layer.sigma()  # one more power iteration, as one more D call would do
        real_score, fake_score = disc(torch.cat([real, fake])).chunk(2)
        loss = discriminator_loss(real_score, fake_score, "hinge")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for layer in layers:
                layer.sigma()  # the G step's call
        errors.append(sigma_errors(layers))
    flat = [e for step in errors for e in step]
    return {"median": statistics.median(flat), "worst": max(flat), "first": max(errors[0]),
            "last": statistics.median(errors[-1]), "loss_d": loss.item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    image, mask = fixed_batch(args.size, 4)
    real, fake = image * 2 - 1, masked_input(image, mask) * 2 - 1  # the authors' [-1, 1]
    print(f"SN-PatchGAN, {args.size} px, {args.steps} steps on one fixed batch; relative error of the sigma "
          "estimate against W's largest singular value (all SN layers)", flush=True)
    for label, iterations in (("2 iterations / step (ours)", 2), ("3 iterations / step (authors')", 3)):
        start = time.perf_counter()
        r = run(real, fake, args.steps, iterations)
        print(f"{label:32} median {r['median']:.1e}  worst {r['worst']:.1e}  after step 1 {r['first']:.1e}  "
              f"last step {r['last']:.1e}  final loss_d {r['loss_d']:.4f}  ({time.perf_counter() - start:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
