"""Does training learn to inpaint unseen images? The `learn` profile's run, written to docs/results.md.

    python bench/learn.py --jobs 2                         # the whole run: docs/results.md, its figure and CSV
    python bench/learn.py --variants pconv --steps 40 --out /tmp/try    # a quick look, not over the committed files

In a scratch folder (--workdir, default a new temporary one) the pipeline's own stage code prepares the
data, builds the masks and records the test pairs at profiles/learn.yaml. Each variant of the profile is
then trained in this process by the train stage's loop (`train_loop`, Ray Train's local mode without Ray),
and its generator is scored on the held-out test pairs by the evaluate stage's scoring (`score_bin`: the
composite rounded to uint8; l1, PSNR, SSIM per pair) before training and at every `train.checkpoint_every`
steps; the classical fills (inpaint/evaluation/baselines.py) are scored on the same pairs. The curve only describes:
nothing is chosen from it (fixed step count, no early stopping), so the test pairs stay a test set. The table
compares each variant's final scores with the mean-colour fill's and with the best classical fill's, pair by pair,
with the report's own estimate (inpaint/evaluation/compare.py: the mean of the bin means and a bootstrap 95 %
interval that resamples the pairs within each hole-ratio bin, evaluate.bootstrap resamples from evaluate.seed). Wall and CPU time (this process and its children) are measured and written with the results.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", help="variants of the learn profile to train (default: all)")
    ap.add_argument("--steps", type=int, help="train.steps instead of the profile's (a quick look)")
    ap.add_argument("--every", type=int, help="train.checkpoint_every (scoring interval) instead of the profile's")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="dotted params laid over the profile, YAML values, e.g. variants.gdn_weight.optimiser.lr_g=1e-3")
    ap.add_argument("--jobs", type=int, default=2,
                    help="variants trained at once, each in a process of its own (with --set train.torch_threads=1)")
    ap.add_argument("--workdir", type=Path, help="scratch folder for data, masks and pairs (default: a new temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "docs", help="where results.md, results_psnr.png, results.csv go")
    return ap.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # the stages write under the repository root, which this makes the scratch folder
    ARGS.workdir = (ARGS.workdir or Path(tempfile.mkdtemp(prefix="inpaint-learn-"))).resolve()
    os.environ["INPAINT_ROOT"] = str(ARGS.workdir)
    os.environ.setdefault("TQDM_DISABLE", "1")  # one line per scoring instead of progress bars
sys.path.insert(0, str(REPO))

import datetime  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from inpaint import bins, config  # noqa: E402
from inpaint.evaluation import baselines, compare  # noqa: E402
from inpaint.io import atomic_path, write_text  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the masks stage's workers), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def learn_params(steps: int | None, every: int | None, settings: list[str]) -> config.Params:
    """The learn profile with the command line's changes laid over it."""
    import yaml

    raw: dict = {"profile": "learn", "train": {}}
    if steps:
        raw["train"]["steps"] = steps
    if every:
        raw["train"]["checkpoint_every"] = every
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            sys.exit(f"error: --set {setting!r}: expected KEY=VALUE, e.g. train.steps=100")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    try:
        return config.resolve(raw, source="bench/learn.py", profiles_dir=REPO / "profiles")
    except config.ParamsError as e:
        sys.exit(f"error: {e}")


def build_data(params: config.Params) -> None:
    """prepare, masks and pairs: the stages' own code, writing under the scratch folder."""
    from inpaint import paths, stages
    from inpaint.io import write_json
    from inpaint.masks import build_mask_sets

    stages.prepare(params)
    write_json(paths.MASKS / "summary.json", build_mask_sets(params.masks, params.data.image_size, paths.MASKS))
    stages.pairs(params)


class TestScorer:
    """The evaluate stage's per-pair scores (l1 %, PSNR, SSIM) of a generator on the recorded test pairs of
    every bin, cut to evaluate.pairs_per_bin, each row named by its pair (bin, image, mask) as the evaluate
    stage's per-pair table."""

    def __init__(self, params: config.Params):
        from inpaint import paths
        from inpaint.data.prepare import load_split
        from inpaint.data.test_pairs import read_pairs
        from inpaint.evaluation import evaluate as ev
        from inpaint.masks import MaskStore

        self.cfg = params.evaluate
        self.images, self.masks = load_split(paths.PREPARED, "test"), MaskStore(paths.MASKS / "test")
        pairs = read_pairs(paths.TEST_PAIRS)
        self.selected = [ev.bin_pairs(pairs, b, self.cfg) for b in range(len(bins.BINS))]
        self.set_metrics = types.SimpleNamespace(device=torch.device("cpu"), lpips=None)  # no LPIPS, FID: per-pair only

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module) -> pd.DataFrame:
        from inpaint.evaluation import evaluate as ev

        tables = [ev.score_bin(generator, self.images, self.masks, sel, self.cfg, self.set_metrics, None,
                               bins.label(b)).assign(bin=b, image=sel[:, 0], mask=sel[:, 1])
                  for b, sel in enumerate(self.selected)]
        return pd.concat(tables, ignore_index=True)


class CurveSession:
    """The loop's session (as train.LocalSession) that scores the generator on the test pairs at each
    checkpoint instead of storing the state; the scoring's own time is kept apart from training's."""

    rank, world = 0, 1
    device = torch.device("cpu")

    def __init__(self, scorer: TestScorer):
        self.scorer, self.points, self.notes = scorer, [], {}
        self.score_wall = self.score_cpu = 0.0

    def prepare(self, network: torch.nn.Module) -> torch.nn.Module:
        return network

    def restore(self, meta: dict, on_disk=()) -> None:
        return None

    def score(self, generator: torch.nn.Module, step: int) -> pd.DataFrame:
        wall, cpu = time.perf_counter(), cpu_seconds()
        table = self.scorer(generator).assign(step=step)
        self.points.append(table)
        self.score_wall += time.perf_counter() - wall
        self.score_cpu += cpu_seconds() - cpu
        return table

    def report(self, metrics: dict, framework=None, step: int = 0, meta: dict | None = None) -> None:
        if framework is None:
            return
        self.notes = dict(framework.notes)
        framework.train(False)
        table = self.score(framework.networks["generator"], step)
        framework.train(True)
        print(f"  {meta['variant'] if meta else ''} step {step}: test PSNR {table.psnr.mean():.2f} dB, l1 {table.l1.mean():.2f} %", flush=True)


def train_and_score(params: config.Params, variant: str, scorer: TestScorer) -> dict:
    """Train `variant` with the train stage's loop, scoring its untrained generator first (the same seed
    and build as the loop's, so the same weights) and then every train.checkpoint_every steps."""
    from pydantic import TypeAdapter

    from inpaint.frameworks import build_networks
    from inpaint.training.train import loop_config, train_loop

    cfg, tcfg = params.variants[variant], params.train_for(variant)
    session = CurveSession(scorer)
    torch.set_num_threads(tcfg.torch_threads)
    torch.manual_seed(tcfg.seed)
    untrained = build_networks(TypeAdapter(config.Variant).validate_python(cfg.model_dump()), params.data.image_size)
    session.score(untrained["generator"].eval(), 0)
    del untrained
    session.score_wall = session.score_cpu = 0.0  # from here on: the scoring inside training, subtracted below
    wall, cpu = time.perf_counter(), cpu_seconds()
    train_loop(loop_config(params, variant, run_id=None, fp="learn"), session)
    wall, cpu = time.perf_counter() - wall - session.score_wall, cpu_seconds() - cpu - session.score_cpu
    print(f"{variant}: {tcfg.steps} steps in {wall:.0f} s wall, {cpu:.0f} s CPU (scoring apart)", flush=True)
    return {"curve": pd.concat(session.points, ignore_index=True), "notes": session.notes, "steps": tcfg.steps,
            "batch_size": tcfg.batch_size, "train_wall_s": wall, "train_cpu_s": cpu}


def final(curve: pd.DataFrame) -> pd.DataFrame:
    return curve[curve.step == curve.step.max()]


def figure(curves: pd.DataFrame, base: dict[str, pd.DataFrame], path: Path) -> None:
    """Held-out PSNR and l1 against training steps, one line per variant, the classical fills as horizontal
    lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    means = curves.groupby(["variant", "step"])[["psnr", "l1"]].mean().reset_index()
    for ax, metric, label in ((axes[0], "psnr", "PSNR (dB), higher is better"),
                              (axes[1], "l1", "l1 (%), lower is better")):
        for variant, rows in means.groupby("variant", sort=False):
            ax.plot(rows.step, rows[metric], marker="o", markersize=3, label=variant)
        for (name, table), style in zip(base.items(), (":", "--", "-.")):
            ax.axhline(table[metric].mean(), color="black", linestyle=style, linewidth=1,
                       label=baselines.BASELINES[name][0])
        ax.set_xlabel("training step")
        ax.set_ylabel(f"held-out test pairs: {label}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.suptitle("Held-out scores over training (learn profile, 64x64, mean over the test pairs)")
    fig.tight_layout(rect=(0, 0.14, 1, 0.95))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def git_commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def write_results(params: config.Params, runs: dict[str, dict], base: dict[str, pd.DataFrame], timing: dict,
                  out: Path) -> None:
    cfg = params.evaluate
    curves = pd.concat([r["curve"].assign(variant=v) for v, r in runs.items()], ignore_index=True)
    with atomic_path(out / "results.csv") as tmp:
        curves.groupby(["variant", "step"], sort=False)[["psnr", "l1", "ssim"]].mean().round(4).to_csv(tmp)
    figure(curves, base, out / "results_psnr.png")
    classical = [("classical", name) for name in base]
    scores = compare.PairedScores({**{key: base[key[1]] for key in classical},
                                   **{("variant", v): final(r["curve"]) for v, r in runs.items()}},
                                  cfg.bootstrap, cfg.seed)
    best, mean_fill = scores.best(classical, "psnr"), ("classical", "mean_colour")
    best_label, mean_label = baselines.BASELINES[best[1]][0], baselines.BASELINES["mean_colour"][0]
    n_pairs = len(base["mean_colour"])

    def cells(key: tuple[str, str]) -> str:
        return " | ".join(f"{scores.mean(key, m).value:.{d}f}" for m, d in (("psnr", 2), ("l1", 2), ("ssim", 3)))

    def interval(d: compare.Estimate, unit: str) -> str:
        return f"{d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]{unit}"

    rows, verdicts = [], []
    for key in classical:
        rows.append(f"| {baselines.BASELINES[key[1]][0]} (classical) | {cells(key)} | | | | | | |")
    for variant, run in runs.items():
        key, start = ("variant", variant), run["curve"][run["curve"].step == 0]
        vs_mean = {m: scores.delta(key, mean_fill, m) for m in ("psnr", "l1")}
        vs_best = {m: scores.delta(key, best, m) for m in ("psnr", "l1")}
        rows.append(f"| {variant} | {cells(key)} | "
                    f"{interval(vs_mean['psnr'], ' dB')} | {interval(vs_mean['l1'], ' %')} | "
                    f"{interval(vs_best['psnr'], ' dB')} | {interval(vs_best['l1'], ' %')} | {run['steps']} | "
                    f"{run['train_wall_s'] / 60:.1f} / {run['train_cpu_s'] / 60:.1f} |")
        beats = all(compare.better(m, d) for m, d in vs_mean.items())
        psnr_curve = run["curve"].groupby("step").psnr.mean()
        mid = psnr_curve.index[psnr_curve.index >= run["steps"] / 2][0]
        verdicts.append(
            f"- **{variant}**: held-out PSNR {start.psnr.mean():.2f} dB untrained, {psnr_curve.max():.2f} dB at its best "
            f"point (step {psnr_curve.idxmax()}), {scores.mean(key, 'psnr').value:.2f} dB at the end "
            f"({psnr_curve[mid]:.2f} dB at step {mid}, half way); against the "
            f"mean-colour fill {'better' if beats else 'not shown better'} in both PSNR and l1 (the 95 % intervals "
            f"{'exclude' if beats else 'do not both exclude'} 0 in its favour)"
            + (f"; trained without: {'; '.join(f'{k} ({v})' for k, v in run['notes'].items() if v.startswith('off'))}"
               if any(v.startswith("off") for v in run["notes"].values()) else "") + ".")
    tcfg = params.train
    departures = []
    for variant in runs:
        settings = params.variants[variant]
        authors = type(settings).model_fields["optimiser"].default if hasattr(settings, "optimiser") else None
        if authors is not None and settings.optimiser != authors:
            changed = [f"{k} {v:g} (authors: {getattr(authors, k):g})" for k, v in settings.optimiser.model_dump().items()
                       if v != getattr(authors, k)]
            departures.append(f"{variant}: {', '.join(changed)}")
    departure_text = ("Departures from the authors' settings, this profile only: " + "; ".join(departures) + "."
                      if departures else "No departure from the authors' optimiser settings.")
    text = f"""# Results: trained models against the classical fills on unseen images

Reproduce: `{timing['command']}` (about {timing['wall_s'] / 60:.0f} minutes on this run's machine; it rewrites
this file, [results_psnr.png](results_psnr.png) and [results.csv](results.csv) from the run; nothing here is
edited by hand). Run {timing['date']} at commit `{timing['commit']}`: **{timing['wall_s'] / 60:.1f} minutes wall,
{timing['cpu_s'] / 60:.1f} minutes CPU** (this process and its children) on a 2-core machine shared with other
jobs (load average {timing['load_start']:.1f} at the start, {timing['load_end']:.1f} at the end; on an idle 2-core
machine the wall time is about half the CPU time).

## What was run

The `learn` profile (profiles/learn.yaml): the `sample` dataset, every photograph that scikit-image,
scikit-learn and matplotlib ship ({params.data.crops_per_photo} random crops of each at
{params.data.image_size}x{params.data.image_size}); {params.data.test_photos} whole scene photographs are held out
for test (data.seed {params.data.seed}), so no test crop comes from a training photograph. QD-IMD-style masks
({params.masks.train_per_bin} training masks per hole-ratio bin; test masks of their own seed). Each variant trains
for {tcfg.steps} steps of batch {tcfg.batch_size} with the train stage's loop ({timing['jobs']} variant(s) at a time, each in
a process of {tcfg.torch_threads} thread(s)), with its authors' optimiser and losses unless listed here. {departure_text} Scores: the evaluate stage's, on the composite rounded to
uint8, over the same {n_pairs} recorded test pairs ({cfg.pairs_per_bin} per bin, the six bins of 0-60 % holes),
before training and every {tcfg.checkpoint_every} steps. Means are the mean of the six bin means; differences are
paired (the same image and mask for both rows), with the report's own estimate (inpaint/evaluation/compare.py): a
percentile bootstrap 95 % interval ({cfg.bootstrap} resamples) that resamples the pairs within each hole-ratio
bin. The best classical fill on these pairs is {best_label}.

## Table

Held-out test pairs ({n_pairs}), the mean of the six bin means. "vs" columns: the variant minus the fill, mean and 95 % interval
(PSNR: positive is better; l1: negative is better). Time: training only, minutes wall / CPU.

| row | PSNR (dB) | l1 (%) | SSIM | PSNR vs {mean_label} | l1 vs {mean_label} | PSNR vs {best_label} | l1 vs {best_label} | steps | time (min) |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + """

![held-out PSNR and l1 against training steps](results_psnr.png)

## What it shows

""" + "\n".join(verdicts) + """

Why GDN's generator (Weight and Det) starts more slowly than the others at this scale, and the probes behind
that: [results_gdn.md](results_gdn.md).
"""
    write_text(out / "results.md", text)


def main() -> None:
    args = ARGS
    wall, cpu, load_start = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    params = learn_params(args.steps, args.every, args.set)
    variants = args.variants or list(params.variants)
    unknown = sorted(set(variants) - set(params.variants))
    if unknown:
        sys.exit(f"error: --variants {unknown}: not in profiles/learn.yaml (there: {', '.join(params.variants)})")
    print(f"learn: scratch folder {args.workdir}", flush=True)
    build_data(params)
    scorer = TestScorer(params)
    base = {name: scorer(baselines.build(name)) for name in baselines.BASELINES}
    for name, table in base.items():
        print(f"{name}: test PSNR {table.psnr.mean():.2f} dB, l1 {table.l1.mean():.2f} %", flush=True)
    if args.jobs > 1:  # the workers inherit INPAINT_ROOT, so they read the scratch folder's data
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {v: pool.submit(train_and_score, params, v, scorer) for v in variants}
            runs = {v: f.result() for v, f in futures.items()}
    else:
        runs = {variant: train_and_score(params, variant, scorer) for variant in variants}
    timing = {"command": " ".join(["python", "bench/learn.py", *sys.argv[1:]]), "jobs": args.jobs, "wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, "load_start": load_start,
              "load_end": os.getloadavg()[0], "commit": git_commit(),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(params, runs, base, timing, args.out)
    print(f"learn: {timing['wall_s']:.0f} s wall, {timing['cpu_s']:.0f} s CPU -> {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
