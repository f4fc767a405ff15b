"""Training throughput through Ray Train against a plain PyTorch loop of the same steps, in the same run.

    python bench/train.py                                  # the smoke profile, every model family
    python bench/train.py --window-s 20 --variants gdn_det lgnet_light
    python bench/train.py --variants pennet --torch-threads 1     # both sides on one intra-op thread

Both sides run `inpaint.train.train_loop` (the plain side with `LocalSession` in a fresh Python process of its
own; the Ray side through `TorchTrainer` with one CPU worker, also a fresh process each fit), on the same
prepared data and masks, with the smoke profile's
resolution, batch and thread count. Throughput is the images per second of wall time and per second of the
process's CPU time over a window of steps, which both loops measure the same way (`RunLog`'s log window):
each run is two windows, the first one warms up (first-call allocations, thread pools) and the second,
ending before the final checkpoint, is measured. A window is as many steps as fill about `--window-s`
seconds of the plain loop (timed once per variant before the rounds), so fast and slow families are
measured over comparable stretches. Ray's start-up (cluster connection, worker group, imports) is printed apart, since
it is paid once per run, not per step. Goal: Ray costs at most 5 % per step.

The plain side once ran in the bench's own process, which also holds the Ray driver and the previous rounds'
heap: the same PEN-Net loop measured 0.81x in one session and 1.16x in the next. A fresh process per run is
what the Ray worker gets, so both sides now start from the same state.

Run to run, a 2-core machine's throughput drifts by more than 5 % (other processes, clocks), so the two sides
alternate for `--rounds` rounds (the side that goes first alternates too) and each ratio is the median of the
rounds' ratios, printed with its range.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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

FAMILIES = ("gdn_weight", "gdn_adv", "gdn_det", "lgnet_c_l_g_att", "pennet")  # GDN's three frameworks, LGNet, PEN-Net


def bench_config(params, variant: str, data: Path, steps: int, window: int, threads: int | None = None) -> dict:
    config = train.loop_config(params, variant, None, f"bench-{variant}")
    config["prepared"], config["masks"] = str(data / "prepared"), str(data / "masks" / "train")
    config["train"] = {**config["train"], "steps": steps, "log_every": window, "checkpoint_every": steps,
                       "image_every": steps + 1,
                       "num_workers": 1}  # the Ray side: one worker (not the smoke profile's in-process 0)
    if threads:
        config["train"]["torch_threads"] = threads
    return config


def plain(config: dict) -> tuple[float, float]:
    """images per wall second and per CPU second over the window, in a fresh process (`plain_child`)."""
    out = subprocess.run([sys.executable, __file__, "--plain-child"], input=json.dumps(config), text=True,
                         capture_output=True)
    if out.returncode:
        sys.exit(f"the plain loop failed:\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["images_per_s"], report["images_per_cpu_s"]


def plain_child() -> None:
    """The plain side's process: the loop config on stdin, the last report as JSON on stdout."""
    session = train.LocalSession()
    train.train_loop(json.loads(sys.stdin.read()), session)
    print(json.dumps({k: session.reports[-1][k] for k in ("images_per_s", "images_per_cpu_s")}))


def through_ray(params, config: dict, storage: Path) -> tuple[float, float, float]:
    """The same window's images per wall and per CPU second inside the Ray worker, and the fit's wall time."""
    start = time.perf_counter()
    result = train.make_trainer(params, config, name=config["fingerprint"], storage_path=storage).fit()
    return result.metrics["images_per_s"], result.metrics["images_per_cpu_s"], time.perf_counter() - start


def window_steps(params, variant: str, data: Path, window_s: float, threads: int | None) -> int:
    """Steps that fill about `window_s` seconds of the plain loop, from a short timed run whose second window
    of 6 steps is measured (the first steps of a process run at a third of the steady rate or less, so a
    shorter calibration gives windows several times too short)."""
    images_per_s, _ = plain(bench_config(params, variant, data, 12, 6, threads))
    return max(4, round(window_s * images_per_s / params.train.batch_size))


def main() -> None:
    if sys.argv[1:] == ["--plain-child"]:
        return plain_child()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(FAMILIES))
    ap.add_argument("--window-s", type=float, default=6.0,
                    help="seconds of plain training the measured window should last (sets its steps)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating plain / Ray rounds (the ratio is their median)")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="intra-op threads of both sides (default: the profile's train.torch_threads)")
    args = ap.parse_args()
    if args.window_s <= 0:
        ap.error(f"--window-s must be positive, got {args.window_s}")
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.torch_threads is not None and args.torch_threads < 1:
        ap.error(f"--torch-threads must be at least 1, got {args.torch_threads}")
    params = load_params(REPO_ROOT / "params.yaml")
    unknown = set(args.variants) - set(params.variants)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; params.yaml has {', '.join(params.variants)}")
    print(f"profile {params.profile}: {params.data.image_size} px, global batch {params.train.batch_size}, "
          f"{args.torch_threads or params.train.torch_threads} threads, "
          f"windows of ~{args.window_s:g} s after a warm-up window, "
          f"{args.rounds} rounds")
    # variant -> per round: (plain img/s, plain img/CPU s, Ray img/s, Ray img/CPU s, Ray start-up s)
    runs = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(params.data, data / "prepared")
        build_mask_sets(params.masks.model_copy(update={"train_per_bin": 100, "test_per_bin": 4}),
                        params.data.image_size, data / "masks")
        windows = {v: window_steps(params, v, data, args.window_s, args.torch_threads) for v in args.variants}
        print("window steps: " + ", ".join(f"{v} {n}" for v, n in windows.items()), flush=True)
        cluster.connect(params.ray.address)
        for r in range(args.rounds):
            for variant in args.variants:
                steps = 2 * windows[variant]
                config = bench_config(params, variant, data, steps, windows[variant], args.torch_threads)
                ray_first = r % 2 == 1
                if ray_first:
                    ray_rate, ray_cpu, fit_s = through_ray(params, config, data / "ray" / str(r))
                local, local_cpu = plain(config)
                if not ray_first:
                    ray_rate, ray_cpu, fit_s = through_ray(params, config, data / "ray" / str(r))
                startup = fit_s - steps * params.train.batch_size / ray_rate
                runs[variant].append((local, local_cpu, ray_rate, ray_cpu, startup))
                print(f"round {r + 1}: {variant} plain {local:.2f} img/s ({local_cpu:.2f} per CPU s), "
                      f"Ray {ray_rate:.2f} img/s ({ray_cpu:.2f} per CPU s), fit {fit_s:.1f} s", flush=True)
    print(f"\n{'variant':<18}{'plain img/s':>12}{'Ray img/s':>11}{'Ray/plain wall':>22}{'Ray/plain CPU':>22}"
          f"{'overhead':>10}{'Ray start-up':>14}")
    for variant, rows in runs.items():
        wall = sorted(r[2] / r[0] for r in rows)
        cpu = sorted(r[3] / r[1] for r in rows)
        ratio = statistics.median(wall)
        print(f"{variant:<18}{statistics.median(r[0] for r in rows):>12.2f}{statistics.median(r[2] for r in rows):>11.2f}"
              f"{ratio:>9.3f} ({wall[0]:.3f}-{wall[-1]:.3f}){statistics.median(cpu):>9.3f} ({cpu[0]:.3f}-{cpu[-1]:.3f})"
              f"{1 - ratio:>10.1%}{statistics.median(r[4] for r in rows):>13.1f}s")


if __name__ == "__main__":
    main()
