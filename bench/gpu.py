"""The GPU check: one command, unattended, under 8 minutes on one modern GPU.

    python bench/gpu.py                          # every model family, every speed switch, evaluation throughput
    python bench/gpu.py --families gdn_det pennet --no-compile

For each model family (GDN Weight / Adv / Det, LGNet, PEN-Net) it trains `--steps` steps (20) at `--size` (256 x
256) on the first GPU in fp32, then once with each speed switch of inpaint/training/speed.py on its own (train.bf16,
channels_last, compile, pin_memory, loader_workers), from the same seed on the same synthetic batches. It prints
each run's step time (median of the steps after the first two, which include cuDNN autotuning and compilation), its
peak GPU memory, and checks that every loss is finite and that the first step's losses match fp32 within a stated
relative tolerance (bf16: 5e-2, its 8-bit mantissa; the other switches: 1e-3, reordered float32 sums). Later steps
are not compared: adversarial training amplifies any difference step by step. Then the evaluator's throughput on the
GPU (pairs/s, all metrics, random metric weights).

Without CUDA it says so and exits 0 (`--device cpu` runs the same code on the CPU, for checking the script).
Exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = {"gdn_weight": "GDN Weight", "gdn_adv": "GDN Adv", "gdn_det": "GDN Det", "lgnet_c_l_g_att": "LGNet",
            "pennet": "PEN-Net"}
SWITCHES = {"fp32": {}, "bf16": {"bf16": True}, "channels_last": {"channels_last": True},
            "compile": {"compile": True}, "pin_memory": {"pin_memory": True}, "loader_workers": {"loader_workers": 2}}
TOLERANCE = {"bf16": 5e-2}  # relative, first step's losses against fp32
DEFAULT_TOLERANCE = 1e-3
BUDGET_S = 8 * 60


class SyntheticPairs(torch.utils.data.Dataset):
    """Images and masks made from (seed, index): the same batches for every run, nothing to prepare."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        image = torch.rand(3, self.size, self.size, generator=g)
        mask = (torch.rand(1, self.size // 8, self.size // 8, generator=g) < 0.3).float()
        return image, torch.nn.functional.interpolate(mask[None], scale_factor=8)[0]  # blocky holes


def peak_memory_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def train_run(variant_cfg, switches: dict, args, device: torch.device) -> dict:
    """`args.steps` steps of one variant with the given speed switches: step times, losses, peak memory."""
    from inpaint.config import TrainConfig
    from inpaint.frameworks import build_framework, build_networks
    from inpaint.training import speed

    tcfg = TrainConfig(batch_size=args.batch_size, **switches)
    torch.manual_seed(0)
    networks = {k: speed.apply(v.to(device), tcfg, device) for k, v in build_networks(variant_cfg, args.size).items()}
    framework = build_framework(variant_cfg, networks, weights_mode="random")
    framework.make_optimisers()
    framework.make_schedulers(args.steps)
    framework.train()
    loader = torch.utils.data.DataLoader(SyntheticPairs(args.steps * args.batch_size, args.size),
                                         batch_size=args.batch_size, num_workers=tcfg.loader_workers,
                                         pin_memory=tcfg.pin_memory)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for image, mask in loader:
        start = time.perf_counter()
        image, mask = speed.batch_to(image, tcfg, device), speed.batch_to(mask, tcfg, device)
        step_losses = framework.step(image, mask)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        losses.append({k: float(v) for k, v in step_losses.items()})
    return {"step_s": statistics.median(times[2:] or times), "first_s": times[0], "losses": losses,
            "peak_mb": peak_memory_mb(device)}


def check(run: dict, reference: dict, tolerance: float) -> list[str]:
    """What is wrong with a run: non-finite losses at any step, first-step losses off fp32."""
    problems = [f"step {k + 1}: {name} = {v}" for k, step in enumerate(run["losses"]) for name, v in step.items()
                if not np.isfinite(v)]
    for name, v in run["losses"][0].items():
        ref = reference["losses"][0][name]
        if abs(v - ref) > tolerance * max(abs(ref), 1e-6):
            problems.append(f"step 1: {name} = {v:.6g}, fp32 {ref:.6g} (relative tolerance {tolerance:g})")
    return problems


def evaluation_throughput(args, device: torch.device) -> float:
    """pairs/s of inpaint.evaluation.evaluate at `args.size` on `device`, all metrics (random metric weights)."""
    import pandas as pd

    from inpaint import bins
    from inpaint.config import EvaluateConfig
    from inpaint.evaluation.evaluate import SetMetrics, evaluate
    from inpaint.models.registry import build

    n = args.eval_pairs_per_bin
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    masks = np.stack([(rng.random((args.size, args.size)) < (lo + hi) / 2).astype(np.uint8) for lo, hi in bins.BINS])
    pairs = pd.DataFrame([{"bin": b, "image": k, "mask": b} for b in range(len(bins.BINS)) for k in range(n)])
    cfg = EvaluateConfig(batch_size=32, device=device.type, kid_subsets=10, bootstrap=100)
    set_metrics = SetMetrics(cfg, "random")
    generator = build("gdn_generator", image_size=args.size).eval()
    start = time.perf_counter()
    evaluate(generator, images, masks, pairs, cfg, set_metrics)
    return len(pairs) / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (the slowest to warm up)")
    ap.add_argument("--eval-pairs-per-bin", type=int, default=32)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: only to check this script")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: no GPU is present (torch.cuda.is_available() is False): nothing to check, skipped.")
        return 0

    from inpaint.config import load_params

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    variants = load_params().variants
    switches = {k: v for k, v in SWITCHES.items() if not (args.no_compile and k == "compile")}
    print(f"{name}: {args.steps} training steps at {args.size}x{args.size}, batch {args.batch_size}, per family and "
          f"speed switch (torch {torch.__version__})\n")
    print(f"{'family':12s} {'switch':15s} {'step ms':>8s} {'speed-up':>9s} {'1st step s':>11s} {'peak MB':>8s}  check")
    start, failures = time.perf_counter(), []
    for variant in args.families:
        if variant not in variants:
            print(f"{FAMILIES[variant]}: variant {variant} is not in params.yaml, skipped")
            continue
        reference = None
        for switch, settings in switches.items():
            run = train_run(variants[variant], settings, args, device)
            reference = reference or run
            problems = check(run, reference, TOLERANCE.get(switch, DEFAULT_TOLERANCE))
            failures += [f"{FAMILIES[variant]} {switch}: {p}" for p in problems]
            print(f"{FAMILIES[variant]:12s} {switch:15s} {run['step_s'] * 1000:8.1f} "
                  f"{reference['step_s'] / run['step_s']:8.2f}x {run['first_s']:11.1f} {run['peak_mb']:8.0f}  "
                  + ("ok" if not problems else f"FAILED ({len(problems)})"), flush=True)
    pairs_per_s = evaluation_throughput(args, device)
    print(f"\nevaluation on {name}: {pairs_per_s:.1f} pairs/s at {args.size}px (all metrics)")
    elapsed = time.perf_counter() - start
    print(f"total {elapsed / 60:.1f} min (budget {BUDGET_S / 60:.0f} min)" + (": OVER" if elapsed > BUDGET_S else ""))
    for f in failures:
        print("FAILED " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
