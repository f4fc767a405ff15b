"""Evaluation throughput: `inpaint.evaluate.evaluate` against a straightforward baseline, in the same run.

    python bench/evaluate.py                              # 64 px, 16 pairs per bin, GDN generator
    python bench/evaluate.py --size 256 --pairs-per-bin 8 --generator pennet

Both score the same pairs with the same metrics (l1, PSNR, SSIM, LPIPS, FID and KID per bin, bootstrap
intervals of the per-image metrics) and the means and set distances are checked to agree. The baseline is what a direct
transcription of the protocol looks like: one pair at a time through the generator, LPIPS and Inception,
scikit-image's PSNR, FID through pytorch-fid's scipy `sqrtm`, and the bootstrap as a Python loop. Random
images and network weights: throughput does not depend on them (FID / LPIPS use the tests-only `random`
weights so that nothing needs downloading).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint import bins, metrics  # noqa: E402
from inpaint.config import EvaluateConfig  # noqa: E402
from inpaint.data.pairs import mask_tensor, to_tensor  # noqa: E402
from inpaint.evaluate import SetMetrics, evaluate  # noqa: E402
from inpaint.frameworks.base import composite, masked_input  # noqa: E402
from inpaint.models.registry import build  # noqa: E402


@torch.no_grad()
def baseline(generator, images, masks, pairs: pd.DataFrame, cfg: EvaluateConfig, set_metrics: SetMetrics) -> dict:
    results = {}
    for b in range(len(bins.BINS)):
        rows, real, fake = [], [], []
        for i, j in pairs[pairs.bin == b][["image", "mask"]].to_numpy():
            x, m = to_tensor(images[i])[None], mask_tensor(masks[j])[None]
            comp = composite(generator(masked_input(x, m), m)["output"], x, m)
            a, g = metrics.to_uint8(comp)[0], images[i]
            comp = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
            rows.append({"l1": np.abs(a.astype(float) - g.astype(float)).mean() / 255 * 100,
                         "psnr": min(peak_signal_noise_ratio(g, a, data_range=255), metrics.PSNR_CAP),
                         "ssim": structural_similarity(a, g, data_range=255, channel_axis=2, gaussian_weights=True,
                                                       sigma=1.5, use_sample_covariance=False),
                         "lpips": float(set_metrics.lpips(comp, x)[0])})
            real.append(set_metrics.fid(x)[0])
            fake.append(set_metrics.fid(comp)[0])
        table = pd.DataFrame(rows)
        rng = np.random.default_rng([cfg.seed, b])
        for name in table:
            values = table[name].to_list()
            means = [np.mean([values[k] for k in rng.integers(0, len(values), len(values))]) for _ in range(cfg.bootstrap)]
            results[f"{name}/{bins.key(b)}"] = float(np.mean(values))
            results[f"{name}_ci_low/{bins.key(b)}"] = float(np.percentile(means, 2.5))
        real, fake = np.array(real), np.array(fake)
        results[f"fid/{bins.key(b)}"] = float(calculate_frechet_distance(real.mean(0), np.cov(real, rowvar=False),
                                                                         fake.mean(0), np.cov(fake, rowvar=False)))
        results[f"kid/{bins.key(b)}"] = metrics.kernel_inception_distance(real, fake, cfg.kid_subsets, cfg.seed)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--pairs-per-bin", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--generator", default="gdn_generator")
    ap.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = args.pairs_per_bin
    images = rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    masks = np.stack([(rng.random((args.size, args.size)) < (lo + hi) / 2).astype(np.uint8) for lo, hi in bins.BINS])
    pairs = pd.DataFrame([{"bin": b, "image": k, "mask": b} for b in range(len(bins.BINS)) for k in range(n)])
    generator = build(args.generator, image_size=args.size).eval()
    cfg = EvaluateConfig(batch_size=args.batch_size, fid_dims=args.fid_dims)
    set_metrics = SetMetrics(cfg, "random")

    start = time.perf_counter()
    ours, _ = evaluate(generator, images, masks, pairs, cfg, set_metrics)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    base = baseline(generator, images, masks, pairs, cfg, set_metrics)
    base_s = time.perf_counter() - start

    for key, value in base.items():  # the intervals resample with another draw order: means only
        if "_ci_" not in key and not np.isclose(ours[key], value, rtol=1e-4, atol=1e-4):
            print(f"WARNING {key}: evaluator {ours[key]:.6g}, baseline {value:.6g}")
    total = len(pairs)
    print(f"\nevaluation of {total} pairs at {args.size}px ({args.generator}, FID {args.fid_dims}-d, "
          f"{cfg.bootstrap} bootstrap resamples, {args.threads} threads)")
    print(f"{'':44s} {'seconds':>8s} {'pairs/s':>8s}")
    print(f"{'inpaint.evaluate (batch ' + str(args.batch_size) + ')':44s} {ours_s:8.1f} {total / ours_s:8.1f}")
    print(f"{'baseline: one pair at a time, scipy sqrtm':44s} {base_s:8.1f} {total / base_s:8.1f}")
    print(f"\nspeed-up of the evaluator over the baseline: {base_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
