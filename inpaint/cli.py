"""`inpaint`: the pipeline's stages and tools from one command line. Every stage reads params.yaml."""
from __future__ import annotations

# Only the standard library at the top: torch, Ray, MLflow and pydantic are imported inside the command that
# needs them, so that `inpaint --help` (and a mistyped command) answers in well under a second instead of the
# 7-27 s that importing the frameworks takes.
import argparse
import json
import os
import sys
import time
from pathlib import Path


def _params(args):
    from inpaint.config import load_params

    return load_params(Path(args.params) if args.params else None)


def _stage(name: str, takes_variant: bool):
    def run(args) -> None:
        from inpaint import stages

        stages.run(name, _params(args), *([args.variant] if takes_variant else []))
    return run


def _tune(args) -> None:
    from inpaint import stages, weights

    params = _params(args)
    weights.preflight(params)
    start = time.perf_counter()
    stages.tune(params, args.study, samples=args.samples, restart=args.restart)
    print(f"tune {args.study}: done in {time.perf_counter() - start:.1f} s")


def _ui(args) -> None:
    """The MLflow UI on 127.0.0.1:PORT, and the address of the experiment's headline view (the ranked runs,
    in MLflow's model-training view); --open opens it in a browser once the server answers."""
    from inpaint.lifetime import run_group
    from inpaint.provenance import tracking

    params = _params(args)
    uri = tracking.tracking_uri(params.tracking.uri)
    base = f"http://127.0.0.1:{args.port}"
    url = _headline_url(uri, params.tracking.experiment, base)
    print(f"MLflow UI at {base} (store {uri}); Ctrl-C stops it", flush=True)
    print(f"the ranked runs (variants and classical fills): {url}" if url != base else
          f"no experiment {params.tracking.experiment!r} in the store yet: run `dvc repro` first", flush=True)
    if args.open:
        import threading

        threading.Thread(target=_open_when_up, args=(base, url), daemon=True).start()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    run_group([sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(args.port),
               "--backend-store-uri", uri], env=env)  # SIGTERM / Ctrl-C stop the server and its workers


def _headline_url(uri: str, experiment: str, base: str) -> str:
    """The headline view's address, or `base` when the store has no such experiment yet."""
    from mlflow.tracking import MlflowClient

    from inpaint.provenance import tracking

    found = MlflowClient(uri).get_experiment_by_name(experiment)
    return base if found is None else tracking.headline_url(base, found.experiment_id)


def _open_when_up(base: str, url: str, timeout_s: float = 120) -> None:
    """Open `url` in the default browser as soon as the server at `base` answers (within `timeout_s`)."""
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).close()
            webbrowser.open(url)
            return
        except OSError:
            time.sleep(0.5)
    print(f"MLflow did not answer at {base} within {timeout_s:.0f} s: open {url} yourself", file=sys.stderr)


def _plan(args) -> None:
    import yaml

    from inpaint.config import ParamsError, resolve
    from inpaint.training import plan

    path = Path(args.params) if args.params else None
    if args.profile:
        from inpaint.paths import REPO_ROOT

        path = path or REPO_ROOT / "params.yaml"
        raw = {**yaml.safe_load(path.read_text()), "profile": args.profile}
        params = resolve(raw, source=f"{path} with profile {args.profile}", profiles_dir=path.parent / "profiles")
    else:
        params = _params(args)
    if args.gpus is None and args.cpus is None:
        if not os.environ.get("RAY_ADDRESS"):
            raise ParamsError("inpaint plan: give the cluster as --gpus N and/or --cpus M, or set RAY_ADDRESS")
        clusters, where = [plan.cluster_capacity(None)], f"the cluster at {os.environ['RAY_ADDRESS']}"
    else:
        clusters, where = [{"GPU": g, "CPU": args.cpus or 0.0} for g in args.gpus or [0.0]], "as given"
    items, device = plan.measure(params, args.calibration_steps, args.calibration_batch)
    for capacity in clusters:
        try:
            makespan = plan.schedule(items, capacity)
        except ValueError as e:  # a variant larger than the whole cluster
            raise ParamsError(f"inpaint plan: {e}") from None
        print(plan.table(params, items, makespan, capacity, where))


def _results(args) -> None:
    """The ranked headline from evals/ (what the report stage writes as reports/tables/headline.md), in the
    terminal's width."""
    import shutil

    from inpaint import paths
    from inpaint.results import report as rp

    params = _params(args)
    runs, missing = rp.load_results(params, paths.EVALS, paths.RUNS, paths.TEST_PAIRS)
    if runs.empty:
        raise FileNotFoundError(f"no variant of params.yaml has an evaluation in {paths.EVALS}: run `dvc repro` first")
    baselines = rp.load_baselines(paths.EVALS / "baselines", paths.TEST_PAIRS)
    head = rp.headline(runs, baselines, params, rp.load_pair_scores(runs, baselines, paths.EVALS, params))
    print(rp.terminal_text(head, shutil.get_terminal_size((120, 40)).columns))
    for note in missing:
        print(f"({note})")


def _weights(args) -> None:
    from inpaint import weights

    if args.action == "import":
        for p in weights.import_dir(Path(args.dir)):
            print(f"imported {p}")
        return
    for row in weights.status():
        mark = "present" if row["present"] else "MISSING"
        print(f"{mark:8} {row['file']:42} {row['expected_at']}  ({row['used_by']})")


def _ray(args) -> None:
    from inpaint import cluster

    if args.action == "stop":
        print("stopped the local Ray head" if cluster.stop_head() else "no local Ray head of this repository")
        return
    head = cluster.running_head()
    print(f"local Ray head on {head['address']} (stops {head['keep_alive_s']} s after its last use)" if head
          else "no local Ray head of this repository is running")


def _models(args) -> None:
    """Measured one model at a time, each printed as soon as it is done (all of them take ~20 s)."""
    from inpaint.models.registry import registered
    from inpaint.models.summary import summarise

    names = args.only or sorted(registered())
    if not args.json:
        print("GFLOPs: torch.utils.flop_counter, 1 multiply-add = 2 FLOPs; Table IV's count: inpaint/models/summary.py")
    rows = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        (r,) = summarise(args.size, only=[name])
        rows.append(r)
        if not args.json:
            paper = f"{r['paper_params'] / 1e6:.2f} M" if r["paper_params"] else "-"
            paper_flops = f"{r['paper_gflops']:.2f} G" if r["paper_gflops"] else "-"
            print(f"{r['name']:24} {r['role']:13} {r['params'] / 1e6:8.2f} M (paper {paper:>9})  "
                  f"{r['gflops']:8.2f} GFLOPs, {r['gmacs_table_iv']:7.2f} G in Table IV's count (paper {paper_flops:>8})  "
                  f"out {r['output_shapes']}" + (f"  [published count: {r['source']}]" if r["source"] else ""), flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


def _fill(args) -> None:
    from inpaint.evaluation.fill import fill

    result = fill(args.checkpoint, Path(args.image), Path(args.mask), Path(args.out))
    print(f"filled {result['hole_ratio']:.1%} of a {result['size'][0]}x{result['size'][1]} photo with "
          f"{result['generator']} (trained at {result['model_size']}px) -> {result['out']} in {result['seconds']:.1f} s")


def _show(args) -> None:
    """Compact YAML of the resolved params (defaults included; one line per variant, study or list);
    --json for everything as JSON."""
    import yaml

    resolved = _params(args).model_dump(mode="json")
    if args.json:
        print(json.dumps(resolved, indent=2))
        return
    class Flow(dict):  # one variant or study per line
        pass

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
    Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    resolved["variants"] = {k: Flow(v) for k, v in resolved["variants"].items()}
    resolved["tune"]["studies"] = {k: Flow(v) for k, v in resolved["tune"]["studies"].items()}
    section = {k: v for k, v in resolved.items() if not args.section or k in args.section}
    print(yaml.dump(section, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100000).rstrip())


def _stage_epilog(name: str) -> str | None:
    """The params a stage reads, from the schema's own docs (so the help cannot drift from the code)."""
    if name != "masks":
        return None
    import inspect

    from inpaint.masks.settings import MaskSettings

    return ("params (the `masks:` section of params.yaml; `inpaint params` shows the resolved values):\n"
            + inspect.cleandoc(MaskSettings.__doc__).split("\n", 1)[1])


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line; the masks stage's long epilog (it imports the params schema) only when asked for."""
    wants_epilog = "masks" in (sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="inpaint", description=__doc__)
    p.add_argument("--params", help="params file (default: params.yaml at the repository root)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stage_help = {
        "prepare": "datasets -> data/prepared (images at the working resolution, manifest)",
        "masks": "training and test masks (shards + manifests), leak check, pictures",
        "pairs": "the fixed test pairs: per bin, test image k with the bin's k-th test mask",
        "baselines": "classical fills (OpenCV Telea, Navier-Stokes, mean colour) on the test pairs -> evals/baselines",
        "report": "the papers' tables from evals/ and runs/ -> reports/, mirrored in an MLflow report run",
    }
    for name, text in stage_help.items():
        s = sub.add_parser(name, help=text, description=text, epilog=_stage_epilog(name) if wants_epilog else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.set_defaults(func=_stage(name, takes_variant=False))
    for name, text in {"train": "train one variant on Ray Train -> runs/VARIANT/model.pt",
                       "evaluate": "score one trained variant on the test pairs of every bin"}.items():
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("variant", help="a key of `variants` in params.yaml")
        s.set_defaults(func=_stage(name, takes_variant=True))
    text = ("run (or resume) a Ray Tune study of `tune.studies`, score its completed trials on the test pairs -> "
            "reports/tune/STUDY/ (results, the paper's table) and an MLflow parent run")
    s = sub.add_parser("tune", help=text, description=text + " with one nested run per trial")
    s.add_argument("study", help="a key of `tune.studies` in params.yaml (exp_base, detector_loss, lgnet_loss_weights)")
    s.add_argument("--samples", type=int, help="override the study's number of samples (a new study only)")
    s.add_argument("--restart", action="store_true", help="discard the study's saved state and start afresh")
    s.set_defaults(func=_tune)
    text = ("what training every variant costs on a cluster: each variant's request, steps and seconds per step, "
            "and the makespan of training them at once beside one after another")
    s = sub.add_parser("plan", help=text, description=text + " (inpaint/training/plan.py; docs/cluster.md)")
    s.add_argument("--gpus", type=float, nargs="+", help="the cluster's GPUs; several sizes: a plan for each, one "
                   "calibration (default: RAY_ADDRESS's cluster)")
    s.add_argument("--cpus", type=float, help="the cluster's CPUs (default: RAY_ADDRESS's cluster)")
    s.add_argument("--profile", help="plan this profile instead of params.yaml's (e.g. paper)")
    s.add_argument("--calibration-steps", type=int, default=2, help="timed steps per variant without an earlier run")
    s.add_argument("--calibration-batch", type=int, help="calibrate on this many images and scale to the variant's "
                   "micro-batch (default: the micro-batch itself)")
    s.set_defaults(func=_plan)
    text = "print the ranked headline: every variant and classical fill, 95%% intervals, the verdict"
    s = sub.add_parser("results", help=text, description=text + " (from evals/; paired bootstrap over the test pairs)")
    s.set_defaults(func=_results)
    s = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1", description="start the MLflow UI on 127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--open", action="store_true", help="open the headline view in a browser once the server is up")
    s.set_defaults(func=_ui)
    s = sub.add_parser("weights", help="pretrained weight files: status, or import from a folder",
                       description="status: where each file is expected and whether it is there; "
                                   "import DIR: copy files downloaded elsewhere into the torch cache")
    s.add_argument("action", choices=["status", "import"])
    s.add_argument("dir", nargs="?", help="for import: the folder holding the files")
    s.set_defaults(func=_weights)
    text = "the local Ray head the stages share (ray.keep_alive_s): status, or stop it now"
    s = sub.add_parser("ray", help=text, description=text)
    s.add_argument("action", choices=["status", "stop"])
    s.set_defaults(func=_ray)
    s = sub.add_parser("models", help="the model zoo: parameters, FLOPs, output shapes",
                       description="summary: every registered model with its parameter count (and the paper's), "
                                   "FLOPs counted by torch.utils.flop_counter and output shapes")
    s.add_argument("action", choices=["summary"])
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--only", nargs="*", help="model names (default: all)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_models)
    text = "object removal: fill the white part of MASK in IMAGE with a trained model"
    s = sub.add_parser("fill", help=text,
                       description=f"{text} (see inpaint/evaluation/fill.py for how sizes are handled)")
    s.add_argument("--checkpoint", required=True, help="runs/VARIANT/model.pt, or an MLflow run id of a train run")
    s.add_argument("--image", required=True, help="the photo, any size")
    s.add_argument("--mask", required=True, help="same size as the photo; white (255) = remove, black (0) = keep")
    s.add_argument("--out", required=True, help="the result, a .png (unmasked pixels stay bit-identical)")
    s.set_defaults(func=_fill)
    s = sub.add_parser("params", help="print the resolved params (profile + params.yaml) as compact YAML",
                       description="print the resolved params (profile + params.yaml) as compact YAML")
    s.add_argument("section", nargs="*", help="only these top-level sections (e.g. train evaluate)")
    s.add_argument("--json", action="store_true", help="everything, as indented JSON")
    s.set_defaults(func=_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser(argv).parse_args(argv)
    if args.command == "weights" and args.action == "import" and not args.dir:
        parser(argv).error("weights import needs DIR")
    from inpaint.config import ParamsError  # after parsing: see the note on imports at the top
    from inpaint.evaluation.fill import FillError
    from inpaint.lifetime import Busy
    from inpaint.weights import MissingWeights

    try:
        args.func(args)
    except (ParamsError, MissingWeights, FillError, Busy, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C: one line, no traceback; outputs are written whole or not at all
        print(f"error: {e}" if str(e) else  # what an interrupted command wrote (tune.StudyInterrupted)
              f"interrupted: inpaint {args.command} (a training resumes from its last checkpoint)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`inpaint params | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
