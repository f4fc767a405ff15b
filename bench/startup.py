"""A train stage's start-up: in the stage's process (`train.num_workers: 0`, Ray Train's local mode, the
smoke profile's) against one Ray Train worker, at the smoke profile.

    python bench/startup.py                        # gdn_weight, 3 rounds
    python bench/startup.py --variants gdn_weight pennet --rounds 5

Each side runs what `dvc repro` runs for a train stage, `python pipelines/train.py VARIANT`, in a scratch
copy of the repository (its tracked files, prepared data and masks made once), with `train.resume: never`
so that every run trains. The worker side shares the copy's local Ray head, as the stages of a `dvc repro`
do: the first run starts it, the rounds then measure a warm head (its start is printed apart). Per run:
the stage's wall time, the start-up until the first step (`startup_*_s` of runs/VARIANT/train_metrics.json:
the driver's imports and set-up, Ray's worker group, the loop's networks and data) and its share of the
stage, and the machine's CPU time over the run (every process, Ray's daemons and workers included).
The sides alternate, and which goes first alternates by round. Goal: start-up at most 8 s, or at most
25 % of the stage.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint import cluster  # noqa: E402
from inpaint.paths import REPO_ROOT  # noqa: E402

SIDES = {"in-process": 0, "1 Ray worker": 1}
STARTUP = ("startup_driver_s", "startup_ray_s", "startup_setup_s")


def scratch_copy(folder: Path) -> dict:
    """The repository's tracked files in `folder` and an environment that runs them there."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    for f in files.split():
        if (REPO_ROOT / f).is_file():
            (folder / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / f, folder / f)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "INPAINT_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def set_workers(folder: Path, num_workers: int) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["train"] = {**(params.get("train") or {}), "num_workers": num_workers, "resume": "never"}
    params["ray"] = {**(params.get("ray") or {}), "keep_alive_s": 600}  # warm between the rounds
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent not idle since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def train_stage(folder: Path, env: dict, variant: str) -> dict:
    """One run of the train stage: its wall and machine CPU seconds and its train_metrics.json."""
    cpu, start = busy_cpu_s(), time.perf_counter()
    out = subprocess.run([sys.executable, "pipelines/train.py", variant], cwd=folder, env=env,
                         capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, busy_cpu_s() - cpu
    if out.returncode:
        sys.exit(f"bench: pipelines/train.py {variant} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    summary = json.loads((folder / "runs" / variant / "train_metrics.json").read_text())
    startup = sum(summary[k] for k in STARTUP)
    return {"wall": wall, "cpu": cpu, "startup": startup, "share": startup / wall,
            **{k: summary[k] for k in STARTUP}}


def spread(values: list[float], fmt: str = "5.1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=["gdn_weight"])
    ap.add_argument("--rounds", type=int, default=3, help="alternating in-process / Ray worker rounds")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        env = scratch_copy(folder)
        unknown = set(args.variants) - set(yaml.safe_load((folder / "params.yaml").read_text())["variants"])
        if unknown:
            sys.exit(f"bench: unknown variant(s) {', '.join(sorted(unknown))}; see params.yaml variants")
        for stage in ("prepare", "masks"):
            subprocess.run([sys.executable, "-m", "inpaint.cli", stage], cwd=folder, env=env, check=True,
                           capture_output=True)
        try:
            set_workers(folder, 1)
            start = time.perf_counter()
            train_stage(folder, env, args.variants[0])
            print(f"first Ray worker run, the head's start included: {time.perf_counter() - start:.1f} s wall")
            for variant in args.variants:
                runs = {side: [] for side in SIDES}
                for r in range(args.rounds):
                    order = list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
                    for side in order:
                        set_workers(folder, SIDES[side])
                        runs[side].append(train_stage(folder, env, variant))
                        print(f"  {variant} round {r + 1} {side}: {runs[side][-1]['wall']:.1f} s", flush=True)
                print(f"{variant}: train stage at the smoke profile, median (range) of {args.rounds} rounds")
                for side, found in runs.items():
                    col = {k: [run[k] for run in found] for k in found[0]}
                    print(f"  {side:>12}: stage wall {spread(col['wall'])} s, machine CPU {spread(col['cpu'])} s, "
                          f"start-up {spread(col['startup'])} s = {spread([100 * s for s in col['share']], '.0f')} % "
                          f"(driver {spread(col['startup_driver_s'])}, Ray {spread(col['startup_ray_s'])}, "
                          f"setup {spread(col['startup_setup_s'])})  (goal <= 8 s or <= 25 %)")
                ratio = [a["wall"] / b["wall"] for a, b in zip(*runs.values())]
                print(f"  in-process / 1 Ray worker, stage wall: {spread(ratio, '.2f')}x")
        finally:
            cluster.stop_head(folder)


if __name__ == "__main__":
    main()
