"""Does each training recipe learn? Overfit one fixed batch and check that it does: the cheapest evidence
that a recipe's losses, masks and optimisers are wired to learn.

    python bench/learning.py                       # every framework family, 200 steps
    python bench/learning.py --variants gdn_det --steps 100

For each variant: a fixed batch of sample photographs (squashed to 32 px, or 64 px where an SN-PatchGAN
needs it) with fixed rectangular holes, `--steps` optimisation steps of the variant's framework on that
same batch, in this process (no Ray). Passes when the reconstruction loss (the L1 of the raw output against
the ground truth, which every framework reports as `l1`) falls to at most half of its first value (the
mean of the last 10 steps against the first step), and, for Det, when the detector's heat map ranks hole
pixels above valid ones on that batch better than chance and better than before training (pixel AUC).
This is the check that catches a detached gradient or a wrong sign. Prints one line per variant and
exits 1 when any check fails.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import TypeAdapter
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint.config import Variant  # noqa: E402
from inpaint.data.prepare import to_square  # noqa: E402
from inpaint.data.sources import load_rgb, sample_photos  # noqa: E402
from inpaint.frameworks import build_framework, build_networks  # noqa: E402
from inpaint.frameworks.base import masked_input  # noqa: E402
from inpaint.models.gdn import hole_probability  # noqa: E402

# one variant per framework, at the smallest size it takes (SN-PatchGAN needs 64 px); LGNet as C+L (both of
# its stage kinds' losses at a third of the full model's cost)
FAMILIES = {"gdn_weight": ({"framework": "weight"}, 32), "gdn_det": ({"framework": "det"}, 32),
            "gdn_adv": ({"framework": "adv"}, 64), "lgnet_c_l": ({"framework": "lgnet", "generator": "lgnet_c_l"}, 64),
            "pennet": ({"framework": "pen"}, 64)}


def fixed_batch(size: int, count: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` sample photographs squashed to size x size, and one seeded rectangular hole each (15-35 % of
    the image)."""
    rng = np.random.default_rng(seed)
    photos = [to_square(load_rgb(p), size) for p, _ in sample_photos()[:count]]
    image = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255
    mask = torch.zeros(count, 1, size, size)
    for k in range(count):
        h, w = (int(rng.uniform(0.4, 0.6) * size) for _ in range(2))
        top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        mask[k, :, top:top + h, left:left + w] = 1
    return image, mask


def pixel_auc(score: torch.Tensor, label: torch.Tensor) -> float:
    """The probability that a random hole pixel scores above a random valid one (Mann-Whitney U, ties 1/2)."""
    s, y = score.flatten().double().numpy(), label.flatten().numpy() > 0.5
    ranks = rankdata(s)
    pos, neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def detector_auc(framework, image: torch.Tensor, mask: torch.Tensor) -> float:
    framework.train(False)
    with torch.no_grad():
        raw = framework.networks["generator"](masked_input(image, mask), mask)["output"]
        auc = pixel_auc(hole_probability(framework.networks["detector"](raw)), mask)
    framework.train(True)
    return auc


def overfit(settings: dict, image: torch.Tensor, mask: torch.Tensor, steps: int, seed: int = 10,
            log_every: int = 0) -> dict:
    """Train the variant `settings` on the one batch: the first and final l1 and, for Det, the heat map's AUC
    before and after."""
    torch.manual_seed(seed)
    cfg = TypeAdapter(Variant).validate_python(settings)
    framework = build_framework(cfg, build_networks(cfg, image.shape[-1]), weights_mode="auto")
    framework.make_optimisers()
    framework.make_schedulers(steps)
    framework.train()
    has_detector = "detector" in framework.networks
    out = {"auc_before": detector_auc(framework, image, mask)} if has_detector else {}
    l1 = []
    for step in range(1, steps + 1):
        l1.append(framework.step(image, mask)["l1"])
        if log_every and step % log_every == 0:
            print(f"  step {step}: l1 {l1[-1]:.4f}", flush=True)
    out.update(first=l1[0], last=float(np.mean(l1[-10:])))
    out["ratio"] = out["last"] / out["first"]
    if has_detector:
        out["auc"] = detector_auc(framework, image, mask)
    return out


def passes(result: dict) -> bool:
    """l1 at most halved; a detector's AUC above chance and above its untrained value."""
    return result["ratio"] <= 0.5 and result.get("auc", 1.0) > max(0.5, result.get("auc_before", 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--images", type=int, default=2, help="images in the fixed batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=0, help="print the l1 every this many steps (0: never)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"overfitting one batch of {args.images} for {args.steps} steps (pass: final l1 <= 0.5 x first; Det: "
          "hole-vs-valid AUC of the heat map > 0.5 and above the untrained detector's)", flush=True)
    failed = []
    for name in args.variants:
        settings, size = FAMILIES[name]
        image, mask = fixed_batch(size, args.images)
        start, cpu = time.perf_counter(), time.process_time()
        r = overfit(settings, image, mask, args.steps, log_every=args.log_every)
        auc = f"  AUC {r['auc_before']:.3f} -> {r['auc']:.3f}" if "auc" in r else ""
        ok = passes(r)
        failed += [] if ok else [name]
        print(f"{name:12} {size} px  l1 {r['first']:.4f} -> {r['last']:.4f} (x{r['ratio']:.2f}){auc}  "
              f"{'PASS' if ok else 'FAIL'}  {time.perf_counter() - start:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
