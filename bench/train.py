"""Training throughput through Ray Train against a plain PyTorch loop of the same steps, in the same run.

    python bench/train.py                                  # the smoke profile, one variant per model family
    python bench/train.py --steps 24 --variants gdn_det lgnet_light

Both sides run `inpaint.train.train_loop` (the plain side with `LocalSession`, in this process; the Ray side
through `TorchTrainer` with one CPU worker), on the same prepared data and masks, with the smoke profile's
resolution, batch and thread count. Throughput is the images/s of the last `--window` steps (after warm-up,
before the final checkpoint), which both loops measure the same way; Ray's start-up (cluster, worker group,
imports) is printed apart, since it is paid once per run, not per step. Goal: Ray costs at most 5 %.

Run to run, a 2-core machine's throughput drifts by more than 5 % (other processes, clocks), so the two sides
alternate for `--rounds` rounds and the ratio is the median of the rounds' ratios, printed with its range.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint import cluster, train  # noqa: E402
from inpaint.config import load_params  # noqa: E402
from inpaint.data.prepare import prepare  # noqa: E402
from inpaint.masks import build_mask_sets  # noqa: E402
from inpaint.paths import REPO_ROOT  # noqa: E402

FAMILIES = ("gdn_weight", "lgnet_c_l_g_att", "pennet")  # GDN, LGNet, PEN-Net


def bench_config(params, variant: str, data: Path, steps: int, window: int) -> dict:
    config = train.loop_config(params, variant, None, f"bench-{variant}")
    config["prepared"], config["masks"] = str(data / "prepared"), str(data / "masks" / "train")
    config["train"] = {**config["train"], "steps": steps, "log_every": window, "checkpoint_every": steps,
                       "image_every": steps + 1}
    return config


def plain(config: dict) -> float:
    session = train.LocalSession()
    train.train_loop(config, session)
    return session.reports[-1]["images_per_s"]


def through_ray(params, config: dict, storage: Path) -> tuple[float, float]:
    """images/s of the same window inside the Ray worker, and the wall time of the whole fit."""
    start = time.perf_counter()
    result = train.make_trainer(params, config, name=config["fingerprint"], storage_path=storage).fit()
    return result.metrics["images_per_s"], time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(FAMILIES))
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--window", type=int, default=16, help="steps at the end over which images/s is measured")
    ap.add_argument("--rounds", type=int, default=3, help="alternating plain / Ray rounds (the ratio is their median)")
    args = ap.parse_args()
    if not 0 < args.window < args.steps:
        ap.error(f"--window must be between 1 and --steps - 1, got {args.window}")
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    params = load_params(REPO_ROOT / "params.yaml")
    unknown = set(args.variants) - set(params.variants)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; params.yaml has {', '.join(params.variants)}")
    print(f"profile {params.profile}: {params.data.image_size} px, global batch {params.train.batch_size}, "
          f"{params.train.torch_threads} threads, {args.steps} steps, images/s over the last {args.window}, "
          f"{args.rounds} rounds")
    runs = {v: [] for v in args.variants}  # variant -> [(plain img/s, Ray img/s, Ray start-up s)] per round
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(params.data, data / "prepared")
        build_mask_sets(params.masks.model_copy(update={"train_per_bin": 100, "test_per_bin": 4}),
                        params.data.image_size, data / "masks")
        cluster.connect(params.ray.address)
        for r in range(args.rounds):
            for variant in args.variants:
                config = bench_config(params, variant, data, args.steps, args.window)
                local = plain(config)
                ray_rate, fit_s = through_ray(params, config, data / "ray" / str(r))
                runs[variant].append((local, ray_rate, fit_s - args.steps * params.train.batch_size / ray_rate))
                print(f"round {r + 1}: {variant} plain {local:.2f} img/s, Ray {ray_rate:.2f} img/s", flush=True)
    print(f"\n{'variant':<18}{'plain img/s':>12}{'Ray img/s':>11}{'Ray/plain':>11}{'range':>14}{'overhead':>10}"
          f"{'Ray start-up':>14}")
    for variant, rows in runs.items():
        ratios = sorted(ray / local for local, ray, _ in rows)
        ratio = statistics.median(ratios)
        local, ray_rate = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        print(f"{variant:<18}{local:>12.2f}{ray_rate:>11.2f}"
              f"{ratio:>11.3f}{f'{ratios[0]:.3f}-{ratios[-1]:.3f}':>14}{1 - ratio:>10.1%}"
              f"{statistics.median(r[2] for r in rows):>13.0f}s")


if __name__ == "__main__":
    main()
