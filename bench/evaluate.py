"""Evaluation throughput and memory: `inpaint.evaluation.evaluate.evaluate` against a one-pair-at-a-time baseline,
in the same run, at the smoke profile's evaluation settings.

    python bench/evaluate.py                                   # smoke profile: 64 px, 16 pairs per bin, FID 2048-d
    python bench/evaluate.py --rounds 5 --generator pennet --rss-pairs 16 128
    python bench/evaluate.py --rounds 0 --rss-pairs 16 96 --rss-rounds 3  # memory only
    python bench/evaluate.py --rounds 0 --malloc-threshold 131072          # memory, glibc's heap not adaptive

Both sides score the same pairs with the same metrics (l1, PSNR, SSIM, LPIPS, FID and KID per bin and over all
bins, bootstrap intervals of the per-image metrics) and every number is checked to agree. The baseline is a
direct transcription of the protocol: one pair at a time through the generator, LPIPS and Inception,
scikit-image's PSNR and SSIM, FID through pytorch-fid's scipy `sqrtm`, the bootstrap as a Python loop over the
same seeded resamples. Random images and network weights: throughput does not depend on them (FID / LPIPS use
the tests-only `random` weights so that nothing is downloaded).

Timing: the two sides alternate (the first side swaps every round) for `--rounds` rounds; the speed-up is the
median of the rounds' ratios with its range, for wall time and for CPU time (the process's, all threads).

Memory: the evaluator alone, in a fresh process per size (`--rss-pairs`, pairs per bin), on images made on
demand (a test split on disk is a memmap, paged in as read): the resident set once the networks are built, and
its peak during the evaluation (Linux's VmHWM, reset just before), so the printed growth is what evaluation
itself holds. Flat = the growth does not depend on the number of pairs. The sizes are interleaved over
`--rss-rounds` rounds (median and range): with glibc's adaptive mmap and trim thresholds, one process's peak
varies by up to 150 MB from run to run. `--malloc-threshold` fixes both thresholds in the measured processes,
so that large blocks are mapped and returned on release: the peaks are then steady to the MB, and what is
left is what the evaluator holds (slower: every large tensor is a fresh mapping).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from pytorch_fid.fid_score import calculate_frechet_distance
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inpaint import bins  # noqa: E402
from inpaint.config import EvaluateConfig  # noqa: E402
from inpaint.data.pairs import mask_tensor, to_tensor  # noqa: E402
from inpaint.evaluation import metrics  # noqa: E402
from inpaint.evaluation.evaluate import SetMetrics, evaluate  # noqa: E402
from inpaint.frameworks.base import composite, masked_input  # noqa: E402
from inpaint.models.registry import build  # noqa: E402


class Images:
    """Test images made on demand from (seed, index): a test split that is never held in memory."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return np.random.default_rng([0, int(i)]).integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)


def problem(size: int, n: int) -> tuple[Images, np.ndarray, pd.DataFrame]:
    """n test images, one mask per bin (its hole ratio in the bin), every image once per bin."""
    rng = np.random.default_rng(1)
    masks = np.stack([(rng.random((size, size)) < (lo + hi) / 2).astype(np.uint8) for lo, hi in bins.BINS])
    pairs = pd.DataFrame([{"bin": b, "image": k, "mask": b} for b in range(len(bins.BINS)) for k in range(n)])
    return Images(n, size), masks, pairs


def smoke_settings() -> tuple[dict, int]:
    profile = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    return profile["evaluate"], profile["data"]["image_size"]


def bootstrap_loop(values: list[float], samples: int, seed: list[int]) -> tuple[float, float]:
    """The percentile interval as a loop, one resample at a time, over the evaluator's seeded draws."""
    draws = np.random.default_rng(seed).integers(0, len(values), (samples, len(values)))
    means = [sum(values[k] for k in row) / len(values) for row in draws]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def set_distances(real: list, fake: list, cfg: EvaluateConfig) -> dict[str, float]:
    real, fake = np.array(real), np.array(fake)
    fid = calculate_frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    return {"fid": float(fid), "kid": metrics.kernel_inception_distance(real, fake, cfg.kid_subsets, cfg.seed)}


@torch.no_grad()
def baseline(generator, images, masks, pairs: pd.DataFrame, cfg: EvaluateConfig, set_metrics: SetMetrics) -> dict:
    results, all_real, all_fake = {}, [], []
    for b in range(len(bins.BINS)):
        rows, real, fake = [], [], []
        sel = pairs[pairs.bin == b][["image", "mask"]].to_numpy()
        for i, j in sel[: cfg.pairs_per_bin] if cfg.pairs_per_bin else sel:
            x, m = to_tensor(images[i])[None], mask_tensor(masks[j])[None]
            a, g = metrics.to_uint8(composite(generator(masked_input(x, m), m)["output"], x, m))[0], images[i]
            comp = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
            rows.append({"l1": np.abs(a.astype(float) - g.astype(float)).mean() / 255 * 100,
                         "psnr": metrics.PSNR_CAP if np.array_equal(a, g) else
                         min(peak_signal_noise_ratio(g, a, data_range=255), metrics.PSNR_CAP),
                         "ssim": structural_similarity(a, g, data_range=255, channel_axis=2, gaussian_weights=True,
                                                       sigma=1.5, use_sample_covariance=False),
                         "lpips": float(set_metrics.lpips(comp, x)[0])})
            real.append(set_metrics.fid(x)[0])
            fake.append(set_metrics.fid(comp)[0])
        table = pd.DataFrame(rows)
        key = bins.key(b)
        for name in table:
            values = table[name].to_list()
            low, high = bootstrap_loop(values, cfg.bootstrap, [cfg.seed, b])
            results.update({f"{name}/{key}": float(np.mean(values)), f"{name}_ci_low/{key}": low,
                            f"{name}_ci_high/{key}": high})
        results.update({f"{m}/{key}": v for m, v in set_distances(real, fake, cfg).items()})
        all_real += real
        all_fake += fake
    results.update({f"{m}/all": v for m, v in set_distances(all_real, all_fake, cfg).items()})
    return results


def timed(fn, *args) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def largest_difference(ours: dict, base: dict) -> tuple[str, float]:
    """The key whose values differ most (relative to max(|baseline|, 1e-3)); a missing key is infinitely off."""
    worst = ("", 0.0)
    for key, value in base.items():
        diff = abs(ours[key] - value) / max(abs(value), 1e-3) if key in ours else float("inf")
        worst = max(worst, (key, diff), key=lambda kv: kv[1])
    return worst


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]"


def make_cfg(args, settings: dict, device: str | None = None) -> EvaluateConfig:
    extra = {"device": device} if device and "device" in EvaluateConfig.model_fields else {}
    return EvaluateConfig(**{**settings, "batch_size": args.batch_size or settings["batch_size"],
                             "fid_dims": args.fid_dims or settings["fid_dims"], **extra})


def rss_child(args, settings: dict, size: int) -> None:
    """One evaluation of `--child` pairs per bin; prints the peak RSS before and after as JSON."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, masks, pairs = problem(size, args.child)
    cfg = make_cfg(args, {**settings, "pairs_per_bin": args.child})
    generator = build(args.generator, image_size=size).eval()
    set_metrics = SetMetrics(cfg, "random")
    before = memory_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from the current RSS
    _, wall, cpu = timed(evaluate, generator, images, masks, pairs, cfg, set_metrics)
    print(json.dumps({"pairs": len(pairs), "before_mb": before, "peak_mb": memory_mb("VmHWM"), "wall_s": wall,
                      "cpu_s": cpu}))


def memory_mb(field: str) -> float:
    """The current (VmRSS) or peak (VmHWM) resident set of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}: peak RSS needs Linux")


def memory(args, size: int) -> None:
    """Peak RSS per size, a fresh process each, the sizes interleaved over `--rss-rounds` rounds: the
    allocator makes one process's peak vary by up to 150 MB, so one sample per size cannot show flatness."""
    rows: dict[int, list[dict]] = {n: [] for n in args.rss_pairs}
    env = dict(os.environ)
    if args.malloc_threshold:
        env.update(MALLOC_MMAP_THRESHOLD_=str(args.malloc_threshold), MALLOC_TRIM_THRESHOLD_=str(args.malloc_threshold))
    for _ in range(args.rss_rounds):
        for per_bin in args.rss_pairs:
            cmd = [sys.executable, __file__, "--child", str(per_bin), "--generator", args.generator, "--size", str(size),
                   "--threads", str(args.threads)]
            cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            cmd += ["--fid-dims", str(args.fid_dims)] if args.fid_dims else []
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            out = out.strip().splitlines()[-1]
            rows[per_bin].append(json.loads(out))
    allocator = (f"glibc thresholds fixed at {args.malloc_threshold} B" if args.malloc_threshold
                 else "glibc's adaptive thresholds")
    print(f"\npeak RSS of one evaluation, a fresh process per size ({args.generator}, {size}px, {allocator}), "
          f"median [range] over {args.rss_rounds} rounds:")
    print(f"{'pairs':>7s} {'before MB':>22s} {'peak MB':>22s} {'growth MB':>22s} {'pairs/s':>22s}")
    for per_bin, runs in rows.items():
        print(f"{runs[0]['pairs']:7d} {spread([r['before_mb'] for r in runs]):>22s} "
              f"{spread([r['peak_mb'] for r in runs]):>22s} {spread([r['peak_mb'] - r['before_mb'] for r in runs]):>22s} "
              f"{spread([r['pairs'] / r['wall_s'] for r in runs]):>22s}")


def timing(args, settings: dict, size: int) -> bool:
    """The interleaved rounds; True when the two sides' numbers agree."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.pairs_per_bin or settings["pairs_per_bin"]
    images, masks, pairs = problem(size, n)
    generator = build(args.generator, image_size=size).eval()
    cfg = make_cfg(args, {**settings, "pairs_per_bin": n})
    set_metrics = SetMetrics(cfg, "random")
    total = len(pairs)
    print(f"evaluation of {total} pairs at {size}px ({args.generator}, batch {cfg.batch_size}, FID {cfg.fid_dims}-d, "
          f"KID {cfg.kid_subsets} subsets, {cfg.bootstrap} bootstrap resamples, {args.threads} threads), "
          f"{args.rounds} interleaved rounds")

    sides = {"evaluator": lambda: evaluate(generator, images, masks, pairs, cfg, set_metrics)[0],
             "baseline": lambda: baseline(generator, images, masks, pairs, cfg, set_metrics)}
    times = {name: {"wall": [], "cpu": []} for name in sides}
    outputs = {}
    for r in range(args.rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            outputs[name], wall, cpu = timed(sides[name])
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
        print(f"  round {r + 1}: evaluator {times['evaluator']['wall'][-1]:.1f} s wall, "
              f"baseline {times['baseline']['wall'][-1]:.1f} s wall", flush=True)

    key, diff = largest_difference(outputs["evaluator"], outputs["baseline"])
    equal = diff <= 1e-4
    print(f"\nresults: {len(outputs['baseline'])} numbers compared; largest relative difference {diff:.2e} ({key}): "
          + ("EQUAL within 1e-4" if equal else "DIFFERENT"))
    print(f"\n{'':40s} {'wall s, median [range]':>26s} {'CPU s, median [range]':>26s} {'pairs/s (wall)':>15s}")
    for name, label in (("evaluator", f"inpaint.evaluation.evaluate (cpu, batch {cfg.batch_size})"),
                        ("baseline", "baseline: one pair at a time")):
        t = times[name]
        print(f"{label:40s} {spread(t['wall']):>26s} {spread(t['cpu']):>26s} "
              f"{total / statistics.median(t['wall']):15.1f}")
    ratios = {kind: [b / o for b, o in zip(times["baseline"][kind], times["evaluator"][kind])] for kind in ("wall", "cpu")}
    print(f"\nspeed-up over the baseline, median [range] of {args.rounds} rounds: wall {spread(ratios['wall']).strip()}x,"
          f" CPU {spread(ratios['cpu']).strip()}x (goal >= 3x at equal results)")

    if torch.cuda.is_available() and "device" in EvaluateConfig.model_fields:
        gpu_cfg = make_cfg(args, {**settings, "pairs_per_bin": n}, device="cuda")
        gpu_metrics = SetMetrics(gpu_cfg, "random")
        evaluate(generator, images, masks, pairs, gpu_cfg, gpu_metrics)  # warm-up
        _, wall, _ = timed(evaluate, generator, images, masks, pairs, gpu_cfg, gpu_metrics)
        print(f"cuda ({torch.cuda.get_device_name()}): {total / wall:.1f} pairs/s")
    else:
        print("cuda: no GPU on this machine (or the evaluator has no device setting): cpu only")

    return equal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs-per-bin", type=int, default=None, help="default: the smoke profile's")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the smoke profile's")
    ap.add_argument("--fid-dims", type=int, default=None, choices=[64, 192, 768, 2048])
    ap.add_argument("--size", type=int, default=None, help="default: the smoke profile's data.image_size")
    ap.add_argument("--generator", default="gdn_generator")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rss-pairs", type=int, nargs="*", default=[16, 64, 128],
                    help="pairs per bin, one process each (multiples of the batch size: full batches at every size)")
    ap.add_argument("--rss-rounds", type=int, default=3)
    ap.add_argument("--malloc-threshold", type=int, default=None, metavar="BYTES",
                    help="fix glibc's mmap and trim thresholds in the memory runs (e.g. 131072): no adaptive heap")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    settings, image_size = smoke_settings()
    size = args.size or image_size
    if args.child:
        return rss_child(args, settings, size)

    equal = timing(args, settings, size) if args.rounds else True
    if args.rss_pairs:
        memory(args, size)
    if not equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
