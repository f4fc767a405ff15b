"""What the number of spectral-norm power iterations per training step changes (docs/departures.md).

    python bench/spectral_norm.py                 # PEN-Net's recipe, 64 px, 100 steps
    python bench/spectral_norm.py --steps 200 --variant lgnet_c

The authors call their discriminator three times per step (real, fake, then the fake again for G), so
each spectral-norm layer gets three power iterations per step; this project's recipes call it twice (one
batched call on [real, fake], one for G). The same seeded run is made twice on one fixed batch: as the
project trains, and with one extra power iteration per step (exactly what the authors' third call adds
to the estimate). Printed per run: the relative error of every SN layer's sigma estimate (u^T W v, the
value the forward divides by) against W's true largest singular value, median and worst over the run's
steps and layers, and the run's final losses.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from pydantic import TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning import FAMILIES, fixed_batch  # noqa: E402

from inpaint.config import Variant  # noqa: E402
from inpaint.frameworks import build_framework, build_networks  # noqa: E402
from inpaint.models.patchgan import SpectralNormConv  # noqa: E402

VARIANTS = {"pennet": FAMILIES["pennet"][0], "gdn_adv": FAMILIES["gdn_adv"][0],
            "lgnet_c": {"framework": "lgnet", "generator": "lgnet_c"}}


def sigma_errors(layers: list[SpectralNormConv]) -> list[float]:
    with torch.no_grad():
        out = []
        for layer in layers:
            matrix = layer.conv.weight.flatten(1)
            true = torch.linalg.matrix_norm(matrix, ord=2)
            out.append(float((torch.dot(layer.u, matrix @ layer.v) - true).abs() / true))
        return out


def run(settings: dict, image, mask, steps: int, extra: int) -> dict:
    torch.manual_seed(10)
    cfg = TypeAdapter(Variant).validate_python(settings)
    framework = build_framework(cfg, build_networks(cfg, image.shape[-1]), weights_mode="auto")
    framework.make_optimisers()
    framework.make_schedulers(steps)
    framework.train()
    layers = [m for m in framework.networks["discriminator"].modules() if isinstance(m, SpectralNormConv)]
    errors, losses = [], {}
    for _ in range(steps):
        with torch.no_grad():
            for layer in layers:
                for _ in range(extra):
                    layer.sigma()  # one more power iteration, as one more D call would do
        losses = framework.step(image, mask)
        errors += sigma_errors(layers)
    return {"median": statistics.median(errors), "worst": max(errors), "first_step": max(errors[:len(layers)]),
            "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="pennet", choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    image, mask = fixed_batch(args.size, 2)
    print(f"{args.variant}, {args.size} px, {args.steps} steps on one fixed batch; sigma estimate's relative error "
          "against W's largest singular value (all SN layers, all steps)", flush=True)
    for label, extra in (("2 iterations / step (ours)", 0), ("3 iterations / step (authors')", 1)):
        start = time.perf_counter()
        r = run(VARIANTS[args.variant], image, mask, args.steps, extra)
        print(f"{label:32} median {r['median']:.2e}  worst {r['worst']:.2e}  after step 1 {r['first_step']:.2e}  "
              f"final loss_d {r['losses']['loss_d']:.4f}  l1 {r['losses']['l1']:.4f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
