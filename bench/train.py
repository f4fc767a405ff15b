"""Ray Train's cost per training step: the same loop in a Ray Train worker and in a plain process, both alive,
taking turns window by window.

    python bench/train.py                                  # every model family, 6 pairs of ~5 s windows
    python bench/train.py --variants pennet --window-s 10 --pairs 10
    python bench/train.py --variants gdn_det --torch-threads 1     # both sides on one intra-op thread

Both sides run `inpaint.training.train.train_loop` on the same prepared data and masks, at the smoke profile's
resolution, batch and thread count: the plain side with `LocalSession` in a fresh Python process, the Ray
side in one CPU worker of the project's `TorchTrainer` (`train.make_trainer`). Each side stops at the end of
every window of steps and waits until the bench lets it run the next one, so exactly one side trains at a
time. The windows go plain, Ray, Ray, plain, plain, Ray, ... (an ABBA order, so that a steady drift of the
machine favours neither side), after warm-up windows that are not counted. A pair is a plain window and the
Ray window next to it; its ratio is Ray's images per second over plain's. Printed: the median over the
pairs and their range, for wall time and for each process's CPU time.

Why turns rather than runs: on this 2-core virtual machine the same plain loop runs at 12 images a second
one minute and 17 the next, per CPU second too (the host, not the process). Separate runs a minute apart
give ratios from 0.5 to 1.2 for unchanged code (docs/performance.md). Windows seconds apart, in two
warm processes, see the same machine.

A window counts its steps and its own process's wall and CPU time, from the moment the bench lets it go to
its last step. The Ray worker's CPU time includes Ray's threads inside the worker. Left out, by design:
start-up (bench/startup.py measures it) and checkpoints (a cost per checkpoint, not per step; the gated
sides report without one). Ray's other processes (raylet, GCS, dashboard, agents, the Train controller) run
during both sides' windows, so the ratio cannot see them; their CPU time during the windows is measured
apart, as a share of the machine's cores, and the overhead column adds it:
overhead = 1 - (Ray/plain wall) + that share. Goal: at most 5 % for every family.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint import cluster  # noqa: E402
from inpaint.config import load_params  # noqa: E402
from inpaint.data.prepare import prepare  # noqa: E402
from inpaint.masks import build_mask_sets  # noqa: E402
from inpaint.paths import REPO_ROOT  # noqa: E402
from inpaint.training import train  # noqa: E402

FAMILIES = ("gdn_weight", "gdn_adv", "gdn_det", "lgnet_c_l_g_att", "pennet")  # GDN's three frameworks, LGNet, PEN-Net
SIDES = ("plain", "ray")
WAIT_S = 900  # how long a side or the bench waits for the other before it gives up
POLL_S = 0.02


class Gate:
    """One side's turns, through files in a directory both processes see: the side starts window n once
    `<side>.go<n>` exists, and appends each finished window to `<side>.jsonl`. An `abort` file, or the death
    of the process that started this one (the bench, or Ray's raylet), stops it."""

    def __init__(self, directory: str, side: str, last_step: int):
        self.directory, self.side, self.last_step, self.window = Path(directory), side, last_step, 0
        self.parent = os.getppid()
        self.wait()

    def wait(self) -> None:
        go, deadline = self.directory / f"{self.side}.go{self.window}", time.monotonic() + WAIT_S
        while not go.exists():
            if (self.directory / "abort").exists() or os.getppid() != self.parent or time.monotonic() > deadline:
                raise RuntimeError(f"bench/train.py: {self.side} side stopped waiting for {go.name}")
            time.sleep(POLL_S)
        self.started = time.perf_counter(), time.process_time()

    def ended(self, step: int) -> dict:
        return {"step": step, "wall_s": time.perf_counter() - self.started[0],
                "cpu_s": time.process_time() - self.started[1], "pid": os.getpid()}

    def record(self, window: dict) -> None:
        with open(self.directory / f"{self.side}.jsonl", "a") as f:
            f.write(json.dumps(window) + "\n")
        self.window += 1
        if window["step"] < self.last_step:
            self.wait()


class Gated:
    """A session whose every report ends a window: it reports without the checkpoint, then waits its turn."""

    gate: Gate

    def report(self, metrics: dict, framework=None, step: int = 0, meta: dict | None = None) -> None:
        window = self.gate.ended(step)
        super().report(metrics)
        self.gate.record(window)


class GatedLocal(Gated, train.LocalSession):
    pass


class GatedRay(Gated, train.RaySession):
    pass


def gated_train_func(config: dict) -> None:
    """The Ray side's per-worker function: the project's loop with its RaySession, gated."""
    session = GatedRay(config.get("attempt"))
    session.gate = Gate(config["gate"], "ray", config["train"]["steps"])
    train.train_loop(config, session)


def plain_child() -> None:
    """The plain side's process: the loop config on stdin. Gated when the config names a gate directory;
    otherwise (calibration) one ungated run whose last report goes to stdout as JSON."""
    config = json.loads(sys.stdin.read())
    if "gate" in config:
        session = GatedLocal()
        session.gate = Gate(config["gate"], "plain", config["train"]["steps"])
        return train.train_loop(config, session)
    session = train.LocalSession()
    train.train_loop(config, session)
    print(json.dumps({"images_per_s": session.reports[-1]["images_per_s"]}))


def bench_config(params, variant: str, data: Path, steps: int, window: int, threads: int | None = None) -> dict:
    config = train.loop_config(params, variant, None, f"bench-{variant}")
    config["prepared"], config["masks"] = str(data / "prepared"), str(data / "masks" / "train")
    config["train"] = {**config["train"], "steps": steps, "log_every": window, "checkpoint_every": window,
                       "image_every": steps + 1,
                       "num_workers": 1}  # the Ray side: one worker (not the smoke profile's in-process 0)
    if threads:
        config["train"]["torch_threads"] = threads
    return config


def plain_env() -> dict:
    """The plain side's environment: this one with the OMP_NUM_THREADS that Ray gives a worker of 1 CPU when
    it is unset (1), so that the two sides differ by Ray and not by their environments."""
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def window_steps(params, variant: str, data: Path, window_s: float, threads: int | None) -> int:
    """Steps that fill about `window_s` seconds of the plain loop, from an ungated run of 12 steps whose
    second half is timed (a process's first steps run at a third of its steady rate or less)."""
    config = bench_config(params, variant, data, 12, 6, threads)
    out = subprocess.run([sys.executable, __file__, "--plain-child"], input=json.dumps(config), text=True,
                         capture_output=True, env=plain_env())
    if out.returncode:
        sys.exit(f"the plain loop failed:\n{out.stderr[-3000:]}")
    images_per_s = json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]
    return max(4, round(window_s * images_per_s / params.train.batch_size))


def others_cpu(head_session: int | None, exclude: set[int]) -> dict[int, float]:
    """CPU seconds so far of each process of the local Ray head's session (its daemons, the Train controller
    and workers), except `exclude`; empty when Ray is not this repository's local head."""
    found = {}
    for proc in cluster.session_processes(head_session) if head_session else []:
        try:
            if proc.pid not in exclude:
                times = proc.cpu_times()
                found[proc.pid] = times.user + times.system
        except psutil.Error:  # gone between listing and reading
            continue
    return found


def turns(params, config: dict, directory: Path, warmup: int, pairs: int) -> list[dict]:
    """Run both sides of one variant window by window; returns every window, in order, with its side, its
    images and the CPU seconds Ray's other processes used meanwhile."""
    directory.mkdir(parents=True)
    config = {**config, "gate": str(directory)}
    head = cluster.running_head()
    head_session = head["session"] if head else None
    with open(directory / "plain.log", "w") as log:
        plain = subprocess.Popen([sys.executable, __file__, "--plain-child"], stdin=subprocess.PIPE,
                                 stdout=log, stderr=log, text=True, env=plain_env())
    plain.stdin.write(json.dumps(config))
    plain.stdin.close()
    failure = []

    def fit() -> None:
        try:
            train.make_trainer(params, config, name=config["fingerprint"], storage_path=directory / "ray",
                               train_fn=gated_train_func).fit()
        except Exception as e:  # the loop below reports it
            failure.append(f"{type(e).__name__}: {e}")

    fitting = threading.Thread(target=fit, daemon=True)
    fitting.start()
    order = list(SIDES) * warmup + [s for i in range(pairs) for s in (SIDES if i % 2 == 0 else SIDES[::-1])]
    windows, last_step, exclude = [], dict.fromkeys(SIDES, 0), {os.getpid(), plain.pid}
    try:
        for n, side in enumerate(order):
            done = directory / f"{side}.jsonl"
            count = len(done.read_text().splitlines()) if done.exists() else 0
            before, start = others_cpu(head_session, exclude), time.perf_counter()
            (directory / f"{side}.go{count}").touch()
            while not done.exists() or len(done.read_text().splitlines()) == count:
                if plain.poll() is not None or failure or time.perf_counter() > start + WAIT_S:
                    log_tail = (directory / "plain.log").read_text()[-3000:]
                    sys.exit(f"bench/train.py: the {side} side stopped before window {count + 1}: "
                             f"{failure or ''}\nplain side's log:\n{log_tail}")
                time.sleep(POLL_S)
            elapsed, window = time.perf_counter() - start, json.loads(done.read_text().splitlines()[-1])
            exclude.add(window["pid"])
            after = others_cpu(head_session, exclude)
            window.update(side=side, counted=n >= 2 * warmup, elapsed_s=elapsed,
                          images=(window["step"] - last_step[side]) * params.train.batch_size,
                          others_cpu_s=sum(t - before.get(pid, 0.0) for pid, t in after.items()))
            last_step[side] = window["step"]
            windows.append(window)
    except BaseException:
        (directory / "abort").touch()
        plain.kill()
        raise
    fitting.join()
    plain.wait()
    if failure:
        sys.exit(f"bench/train.py: the Ray side failed: {failure[0]}")
    return windows


def paired(counted: list[dict]) -> list[tuple[dict, dict]]:
    """The counted windows as (plain, Ray) pairs, in the order they ran."""
    pairs = [counted[i:i + 2] for i in range(0, len(counted), 2)]
    return [tuple(sorted(p, key=lambda w: SIDES.index(w["side"]))) for p in pairs]


def neighbours(counted: list[dict]) -> list[float]:
    """Rate ratios of the counted windows that ran back to back on the same side (the ABBA order's middles):
    how much this machine moves between two neighbouring windows of identical work."""
    return [rate(counted[i + 1]) / rate(counted[i]) for i in range(1, len(counted) - 1, 2)]


def rate(window: dict) -> float:
    return window["images"] / window["wall_s"]


def summary(values: list[float]) -> str:
    values = sorted(values)
    return f"{statistics.median(values):.3f} ({values[0]:.3f}-{values[-1]:.3f})"


def main() -> None:
    if sys.argv[1:] == ["--plain-child"]:
        return plain_child()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(FAMILIES))
    ap.add_argument("--window-s", type=float, default=5.0,
                    help="seconds of plain training a window should last (sets its steps)")
    ap.add_argument("--pairs", type=int, default=6, help="counted pairs of windows (the ratio is their median)")
    ap.add_argument("--warmup", type=int, default=2, help="uncounted windows of each side before the pairs")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="intra-op threads of both sides (default: the profile's train.torch_threads)")
    args = ap.parse_args()
    if args.window_s <= 0:
        ap.error(f"--window-s must be positive, got {args.window_s}")
    for name in ("pairs", "warmup", "torch_threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    params = load_params(REPO_ROOT / "params.yaml")
    unknown = set(args.variants) - set(params.variants)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; params.yaml has {', '.join(params.variants)}")
    cores = os.cpu_count()
    print(f"profile {params.profile}: {params.data.image_size} px, global batch {params.train.batch_size}, "
          f"{args.torch_threads or params.train.torch_threads} threads, {cores} cores; "
          f"{args.warmup} warm-up windows a side, then {args.pairs} pairs of ~{args.window_s:g} s windows")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare(params.data, data / "prepared")
        build_mask_sets(params.masks.model_copy(update={"train_per_bin": 100, "test_per_bin": 4}),
                        params.data.image_size, data / "masks")
        cluster.connect(params.ray.address)
        for variant in args.variants:
            steps_per_window = window_steps(params, variant, data, args.window_s, args.torch_threads)
            config = bench_config(params, variant, data, (args.warmup + args.pairs) * steps_per_window,
                                  steps_per_window, args.torch_threads)
            windows = turns(params, config, data / "turns" / variant, args.warmup, args.pairs)
            counted = [w for w in windows if w["counted"]]
            pairs = paired(counted)
            results[variant] = pairs, neighbours(counted)
            for i, (p, r) in enumerate(pairs):
                print(f"{variant} pair {i + 1} ({steps_per_window} steps a window): plain {rate(p):.2f} img/s, "
                      f"Ray {rate(r):.2f} img/s, Ray/plain {rate(r) / rate(p):.3f} wall, "
                      f"{p['cpu_s'] / r['cpu_s']:.3f} CPU", flush=True)
    print(f"\nRay / plain images per second (per wall and per CPU second of each side's process), median (range) "
          f"over the pairs.\n'same side': the ratio of two neighbouring windows of the same side, the machine's "
          f"own noise at this scale.\n'Ray others': CPU time of Ray's other processes during the windows, as a "
          f"share of the {cores} cores; 'overhead' = 1 - Ray/plain wall + Ray others.")
    print(f"{'variant':<18}{'plain img/s':>12}{'Ray img/s':>11}{'Ray/plain wall':>22}{'Ray/plain CPU':>22}"
          f"{'same side':>22}{'Ray others':>12}{'overhead':>10}")
    for variant, (pairs, same_side) in results.items():
        wall = [rate(r) / rate(p) for p, r in pairs]
        cpu = [p["cpu_s"] / r["cpu_s"] for p, r in pairs]  # equal images per window
        counted = [w for pair in pairs for w in pair]
        others = sum(w["others_cpu_s"] for w in counted) / (cores * sum(w["elapsed_s"] for w in counted))
        print(f"{variant:<18}{statistics.median(rate(p) for p, _ in pairs):>12.2f}"
              f"{statistics.median(rate(r) for _, r in pairs):>11.2f}{summary(wall):>22}{summary(cpu):>22}"
              f"{summary(same_side) if same_side else '-':>22}{others:>12.1%}"
              f"{1 - statistics.median(wall) + others:>10.1%}")

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench/train.py: interrupted; both sides stopped")
