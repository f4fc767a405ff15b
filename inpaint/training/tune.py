"""Ray Tune sweeps of the papers' ablations (GDN Fig. 3: linear or exponential weight mapping and its base;
GDN Table 2: detector loss; LGNet Table VII: loss weights) or of any user-defined space over the training
params, recorded in MLflow.

A study (`tune.studies` in params.yaml) perturbs one variant. `run_study`:
1. applies every value of the search space to a copy of the params and validates it, before Ray starts;
2. opens one MLflow parent run and lets Tune run `run_trial`, the driver function of one trial: it builds
   the trial's TorchTrainer (inpaint/training/train.py), whose workers score the validation split
   (inpaint/training/validation.py) every `tune.validation.every` steps; TuneReportCallback forwards those reports
   to Tune, so ASHA can stop a trailing trial. Each trial logs to an MLflow child run of the parent, named
   by the trial's setting (`detector_loss: focal γ=2`);
3. turns the final checkpoint of every trial that trained all its steps into a model file (the train
   stage's model.pt) and scores it on the pipeline's test pairs with `evaluate`, the evaluate stage's code
   (inpaint/evaluation/record.py, which logs the test metrics to the trial's run);
4. writes reports/tune/<study>/: results.csv (one row per trial), best_params.yaml (the best trial's
   settings as params.yaml overrides, with the `dvc exp run` line that applies them), <study>_metric.png
   (the metric against each swept param) and tables/: the paper's table of the study with the scored trials
   as our rows (inpaint/results/study_table.py); all are logged to the parent run, whose description is the table.

Tune's experiment state and each trial's Ray Train checkpoints live in tune.storage_path/<study>, so a
study whose driver stopped (Ctrl-C, kill -9) resumes where it was (`restart=True` starts it afresh): Tune
restarts its unfinished trials and each trial's Ray Train run goes on from its last checkpoint. Whether a study
finished is read from its trials: every trial Tune created and every grid point it did not create yet, each
trial's last reported step against `tune.train.steps` and whether Tune ended it (`done`). A finished study
deletes its trials' training checkpoints (`tune.keep_checkpoints`) and keeps the scored trials' model files.
"""
from __future__ import annotations

import itertools
import json
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pandas as pd
import yaml
from pydantic import ValidationError

from inpaint import paths
from inpaint.config import Params, ParamsError, Study, TuneConfig, explain, merge
from inpaint.io import atomic_dir, atomic_path, write_json, write_text
from inpaint.provenance import tracking
from inpaint.results import report, study_table

TAG_PARENT = "mlflow.parentRunId"  # MLflow's own tag: the UI nests the trials under their study
TAG_STUDY = "inpaint.tune.study"
TAG_TRIAL = "inpaint.tune.trial_id"
TAG_STATUS = "inpaint.tune.status"
TAG_MODEL = "inpaint.tune.model"  # where a completed trial's final model file is
# completed: trained all its steps; stopped early: ended by ASHA before; interrupted: its study stopped while it
# trained (at its last reported step); not run: not started (a grid point Tune had not created yet included)
STATUSES = ("completed", "stopped early", "failed", "interrupted", "not run")
UNFINISHED = ("interrupted", "not run")  # what a resume trains
CHECKPOINT_PATH = "checkpoint_path"  # where TuneReportCallback puts a report's checkpoint (ray.tune.integration.ray_train)
SWEPT_SECTIONS = {"variant": "the study's variant", "train": "the train section"}
# How a swept number reads in a trial's setting; any other key reads `key=value`
SYMBOLS = {"exp_base": "base ", "gamma": "γ=", "hole_weight": "λh=", "perceptual_weight": "λper=",
           "style_weight": "λsty=", "tv_weight": "λtv="}
# evaluate(model file, name, its meta) -> (evaluation record, per-image scores): the evaluate stage's scoring
# (inpaint/evaluation/record.py)
Evaluate = Callable[[Path, str, dict], tuple[dict, pd.DataFrame]]


def study_variant(params: Params, name: str) -> tuple[str, Any]:
    """(name, settings) of the variant a study perturbs; a variant written out in the study takes the
    study's name."""
    variant = params.tune.studies[name].variant
    return (variant, params.variants[variant]) if isinstance(variant, str) else (name, variant)


def _path(variant: str, key: str) -> list[str]:
    """params.yaml path of a swept key: `variant.exp_base` -> variants/<variant>/exp_base."""
    section, _, rest = key.partition(".")
    if section not in SWEPT_SECTIONS:
        raise ParamsError(f"{key}: only variant.* ({SWEPT_SECTIONS['variant']}) and train.* can be swept; the data "
                          "and masks are prepared once for all trials")
    head = ["variants", variant] if section == "variant" else ["train"]
    return head + (rest.split(".") if rest else [])


def _nest(path: list[str], value: Any) -> dict:
    for part in reversed(path):
        value = {part: value}
    return value


def trial_params(params: Params, name: str, overrides: dict[str, Any]) -> Params:
    """The params one trial trains with: the study's variant alone, `tune.train` laid over the variant's
    train settings (train, framework_train, its own train), then the trial's values of the swept keys."""
    variant, settings = study_variant(params, name)
    raw = params.model_dump(mode="json")
    raw["variants"] = {variant: {**settings.model_dump(mode="json"), "train": {}}}
    own = merge(raw["framework_train"].get(settings.framework, {}), settings.train)
    raw["train"], raw["framework_train"] = merge(merge(raw["train"], own), params.tune.train), {}
    raw["tune"] = {}
    for key, value in overrides.items():
        raw = merge(raw, _nest(_path(variant, key), value))
    try:
        trial = Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(f"the trial settings {overrides} are invalid:\n" + "\n".join(explain(e))) from None
    if trial.train.num_workers == 0:
        raise ParamsError("train.num_workers 0 trains in the driver's process, where Tune receives no report; "
                          "a trial needs Ray Train workers (1 or more)")
    return trial


def check_study(params: Params, name: str) -> Study:
    """Refuse, before Ray starts, a study with an unknown key or a value the params would refuse; the
    message names the study's key and the params key."""
    if name not in params.tune.studies:
        raise ParamsError(f"tune: unknown study {name!r}; params.yaml tune.studies: "
                          f"{', '.join(params.tune.studies) or 'none'}")
    study = params.tune.studies[name]
    try:
        trial_params(params, name, {})
    except ParamsError as e:
        raise ParamsError(f"tune.train: {e}") from None
    for key, domain in study.space.items():
        for value in domain.candidates:
            try:
                trial_params(params, name, {key: value})
            except ParamsError as e:
                raise ParamsError(f"tune.studies.{name}.space.{key}: value {value!r} is refused: {e}") from None
    return study


def param_space(study: Study) -> dict:
    from ray import tune

    make = {"choice": tune.choice, "grid": tune.grid_search,
            "uniform": lambda r: tune.uniform(*r), "loguniform": lambda r: tune.loguniform(*r)}
    return {key: make[d.kind](d.candidates) for key, d in study.space.items()}


def run_trial(config: dict, params: Params, study: str, parent_run_id: str, experiment_id: str,
              trials_dir: str) -> None:
    """Tune's trainable: the driver of one trial. Its TorchTrainer's reports reach Tune through
    TuneReportCallback; a training error fails the trial (and only it)."""
    import ray.tune
    from mlflow.tracking import MlflowClient
    from ray.tune.integration.ray_train import TuneReportCallback

    from inpaint.provenance.fingerprint import fingerprint
    from inpaint.training import train

    trial = trial_params(params, study, config)
    (variant,) = trial.variants  # trial_params keeps the study's variant alone
    trial_id = ray.tune.get_context().get_trial_id()
    client = MlflowClient(tracking.tracking_uri(params.tracking.uri))
    run_id = _child_run(client, experiment_id, parent_run_id, study, trial_id, config, trial, variant)
    loop = {**train.loop_config(trial, variant, run_id, fingerprint(trial, variant)),
            "validation": params.tune.validation.model_dump()}
    trainer = train.make_trainer(trial, loop, name=trial_id, storage_path=Path(trials_dir),
                                 callbacks=[TuneReportCallback()])
    trainer.fit()


def setting(config: dict) -> str:
    """A trial's swept values as the papers name a setting: words as they are, numbers with their symbol,
    e.g. `linear`, `exp base 5`, `focal γ=2`, `λh=6, λper=0.05, λsty=120, λtv=0.1`."""
    items = [(key.rpartition(".")[2], value) for key, value in config.items()]
    items = [pair for key, value in items for pair in (value.items() if isinstance(value, dict) else [(key, value)])]
    words = [str(v) for _, v in items if isinstance(v, str)]
    numbers = [SYMBOLS.get(k, f"{k}=") + (f"{v:.3g}" if isinstance(v, float) else str(v))
               for k, v in items if not isinstance(v, str)]
    return " ".join(words + ([", ".join(numbers)] if numbers else []))


def label(value: Any) -> Any:
    """How a swept value reads in results.csv and the plot: partial settings as their `setting`, numbers as
    they are."""
    return setting(value) if isinstance(value, dict) else value


def _child_run(client, experiment_id: str, parent_run_id: str, study: str, trial_id: str, config: dict,
               trial: Params, variant: str) -> str:
    """The trial's MLflow run under the study's parent run (found again when a stopped study resumes)."""
    found = client.search_runs([experiment_id], filter_string=(
        f"tags.`{TAG_PARENT}` = '{parent_run_id}' and tags.`{TAG_TRIAL}` = '{trial_id}'"), max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"{study}: {setting(config)}", tags={
        TAG_PARENT: parent_run_id, tracking.TAG_KIND: "tune_trial", TAG_STUDY: study, TAG_TRIAL: trial_id,
        tracking.TAG_VARIANT: variant, tracking.TAG_FRAMEWORK: trial.variants[variant].framework,
        "profile": trial.profile, **tracking.provenance()})
    tracking.log_params(client, run.info.run_id, {"tune": {k: str(label(v)) for k, v in config.items()},
                                                  "variant": trial.variants[variant].model_dump(mode="json"),
                                                  "train": trial.train.model_dump(mode="json")})
    return run.info.run_id


def _parent_run(client, experiment_id: str, name: str, study: Study, cfg: TuneConfig, study_dir: Path) -> str:
    """The study's MLflow run: its settings and search space as params, its id kept beside Tune's state
    so that a resumed study goes on in the same run."""
    id_file = study_dir / "mlflow_run_id"
    if id_file.is_file():
        return id_file.read_text().strip()
    run = client.create_run(experiment_id, run_name=f"tune {name}", tags={
        tracking.TAG_KIND: "tune_study", TAG_STUDY: name, **tracking.provenance()})
    rid = run.info.run_id
    settings = {"study": study.model_dump(mode="json"), "scheduler": cfg.scheduler, "grace_period": cfg.grace_period,
                "reduction_factor": cfg.reduction_factor, "concurrency": cfg.concurrency, "train": cfg.train,
                "validation": cfg.validation.model_dump(mode="json")}
    tracking.log_params(client, rid, settings)
    client.log_dict(rid, settings, "study.json")
    write_text(id_file, rid)
    return rid


def _scheduler(cfg: TuneConfig, steps: int):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="step", max_t=steps, grace_period=min(cfg.grace_period, steps),
                         reduction_factor=cfg.reduction_factor)


def _tuner(params: Params, name: str, study: Study, study_dir: Path, trainable, steps: int):
    """A new Tuner, or the stopped one restored (its unfinished trials resume from their checkpoints;
    failed trials stay failed). A study whose settings changed since is refused."""
    from ray import tune

    state, settings = study_dir / "study", study_dir / "settings.json"
    wanted = json.dumps({"study": study.model_dump(mode="json"), "tune": params.tune.model_dump(
        mode="json", exclude={"studies", "keep_checkpoints"})}, sort_keys=True)
    if tune.Tuner.can_restore(str(state)):
        if settings.is_file() and settings.read_text() != wanted:
            raise ParamsError(f"tune.studies.{name}: the study's settings changed since {study_dir} was written; "
                              "run `inpaint tune --restart` to start it afresh")
        print(f"tune {name}: resuming the study in {state}")
        return tune.Tuner.restore(str(state), trainable, resume_unfinished=True)
    write_text(settings, wanted)
    return tune.Tuner(
        trainable, param_space=param_space(study),
        tune_config=tune.TuneConfig(metric=study.metric, mode=study.direction, num_samples=study.samples,
                                    scheduler=_scheduler(params.tune, steps),
                                    max_concurrent_trials=params.tune.concurrency),
        run_config=tune.RunConfig(name=state.name, storage_path=str(study_dir),
                                  failure_config=tune.FailureConfig(max_failures=0)))


def run_study(params: Params, name: str, evaluate: Evaluate, samples: int | None = None,
              restart: bool = False) -> dict:
    """Run (or resume) the study `name`, score its completed trials with `evaluate`, write reports/tune/<name>/
    and finish its MLflow runs."""
    from ray import tune

    from inpaint import cluster

    if samples is not None and name in params.tune.studies:
        study = params.tune.studies[name].model_copy(update={"samples": samples})
        params = params.model_copy(update={"tune": params.tune.model_copy(
            update={"studies": {**params.tune.studies, name: study}})})
    study = check_study(params, name)
    steps = trial_params(params, name, {}).train.steps
    if not paths.TEST_PAIRS.is_file():  # where the completed trials are scored: refuse before hours of training
        raise FileNotFoundError(f"{paths.TEST_PAIRS}: missing; a study scores its completed trials on the test "
                                "pairs, which the pairs stage writes (`dvc repro pairs`)")
    study_dir = paths.absolute(params.tune.storage_path) / name
    if restart:
        shutil.rmtree(study_dir, ignore_errors=True)
    client, experiment_id = tracking.open_experiment(params.tracking)
    cluster.connect(params.ray.address, params.ray.keep_alive_s)
    parent = _parent_run(client, experiment_id, name, study, params.tune, study_dir)
    trainable = tune.with_parameters(run_trial, params=params, study=name, parent_run_id=parent,
                                     experiment_id=experiment_id, trials_dir=str(study_dir / "trials"))
    trainable = tune.with_resources(trainable, cluster.DRIVER_RESOURCES)
    tuner = _tuner(params, name, study, study_dir, trainable, steps)
    try:
        results = tuner.fit()  # Ctrl-C: Tune's own SIGINT handler ends the fit, saving the trials' state
    finally:  # Tune leaves that handler installed after a fit it did not interrupt: a Ctrl-C later would do nothing
        signal.signal(signal.SIGINT, signal.default_int_handler)

    children = _children(client, experiment_id, parent)
    table, trials = results_table(results, study, steps, started=set(children))
    unfinished = bool(table.status.isin(UNFINISHED).any())
    table["mlflow_run_id"] = table.trial_id.map(children)
    models = study_dir / "models"
    records = score_trials(params, name, table, trials, models, evaluate)
    table["model"] = [_shown(models / t / "model.pt") if t in records else "" for t in table.trial_id]
    _finish_children(client, children, table)
    out = paths.REPORTS / "tune" / name
    with atomic_path(out / "results.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_study(table, study, name, steps, out / f"{name}_metric.png")
    pairs = pd.read_csv(paths.TEST_PAIRS)
    paper = study_table.build(params, name, table, records, pairs, steps)
    with atomic_dir(out / "tables") as tmp:
        report.write_table(paper, tmp)
    best = None if unfinished else best_trial(table, study)  # the best of part of a study is no answer
    (out / "best_params.yaml").unlink(missing_ok=True)
    summary = {"study": name, "trials": len(table), "parent_run_id": parent, "metric": study.metric,
               "interrupted": unfinished,
               "statuses": {status: int((table.status == status).sum()) for status in STATUSES},
               "scored_on_test_pairs": len(records), "table": f"tables/{paper.name}.md"}
    if best is not None:
        summary.update(best_trial_id=best.trial_id, best_value=float(best[study.metric]), best_step=int(best.step))
        write_best_params(params, name, trials[best.trial_id].config, best, out / "best_params.yaml")
    write_json(out / "summary.json", summary)
    _finish_parent(client, parent, table, summary, out, paper, unfinished)
    if unfinished:
        raise StudyInterrupted(f"tune {name}: interrupted before every trial finished: {_unfinished(table)}; "
                               f"partial table in {_shown(out)}, no best_params.yaml; `inpaint tune {name}` resumes the "
                               "study")
    if not params.tune.keep_checkpoints:  # a finished study is not resumed: the model files are what it keeps
        shutil.rmtree(study_dir / "trials", ignore_errors=True)
    counts = ", ".join(f"{n} {status}" for status, n in summary["statuses"].items() if n)
    print(f"tune {name}: {summary['trials']} trials, {counts}; best {study.metric} = {summary.get('best_value')} "
          f"(MLflow run {parent}) -> {out}")
    print(f"tune {name}: {_shown(study_dir)} holds {disk_use(study_dir) / 2**20:.1f} MiB (" + (
        "training checkpoints kept: tune.keep_checkpoints" if params.tune.keep_checkpoints else
        f"model files of the scored trials: {len(records)}; training checkpoints deleted") + ")")
    return summary


def _unfinished(table: pd.DataFrame) -> str:
    """The unfinished trials, e.g. `2 interrupted (c2140_00000 at step 2, ...), 1 not run (batch_size=4096)`."""
    parts = []
    for status in UNFINISHED:
        rows = table[table.status == status]
        if len(rows):
            parts.append(f"{len(rows)} {status} (" + ", ".join(
                (r.trial_id or r.setting or "a sample not drawn yet")
                + (f" at step {int(r.step)}" if pd.notna(r.step) else "")
                for r in rows.itertuples()) + ")")
    return ", ".join(parts)


def disk_use(folder: Path) -> int:
    """Bytes of disk that the files under `folder` take (as `du` counts them: allocated blocks)."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C ended the study before every trial had finished: its partial results are written, and the
    command ends as an interrupted one (exit 130) with this message."""


class Trial(NamedTuple):
    config: dict  # the swept keys' values
    checkpoint: str | None  # the checkpoint its last report carried (Ray Train's path or URI)


def results_table(results, study: Study, steps: int, started: set[str] = frozenset()) -> tuple[pd.DataFrame, dict]:
    """One row per trial of the study, in trial order: its setting and swept values, the metric at its last
    evaluation, the step it stopped at, its status (STATUSES) and error; the grid points Tune has not created
    yet follow, `not run`, without a trial id. `started`: the trials that began (they have an MLflow run); one
    of them without a report is interrupted, not `not run`. Plus each trial's settings and last checkpoint by
    id."""
    rows, trials = [], {}
    for result in results:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        step = metrics.get("step")
        # `done`: Tune ended the trial (its function returned, or the scheduler stopped it), which it does not
        # for the trials it was running when the study was interrupted
        status = ("failed" if result.error else "completed" if step == steps else
                  "stopped early" if step is not None and metrics.get("done") else
                  "interrupted" if step is not None or trial_id in started else "not run")
        # a restored study's failed trials keep their settings only in their trial folder
        config = result.config or json.loads((Path(result.path) / "params.json").read_text())
        trials[trial_id] = Trial(config, metrics.get(CHECKPOINT_PATH))
        rows.append({"trial_id": trial_id, "setting": setting(config), **{k: label(config[k]) for k in study.space},
                     study.metric: metrics.get(study.metric), "step": step, "status": status,
                     "error": str(result.error).strip().splitlines()[-1][:300] if result.error else ""})
    rows.sort(key=lambda r: r["trial_id"])
    for point in uncreated_points(study, [t.config for t in trials.values()]):
        rows.append({"trial_id": "", "setting": setting(point), **{k: label(point.get(k)) for k in study.space},
                     study.metric: None, "step": None, "status": "not run", "error": ""})
    table = pd.DataFrame(rows)
    table["step"] = table["step"].astype("Int64")  # empty for a trial that failed before its first report
    return table, trials


def uncreated_points(study: Study, configs: list[dict]) -> list[dict]:
    """The trials of the study that Tune has not created yet (it creates them as earlier ones finish): every
    grid point `samples` times, less those among `configs`; only the grid keys' values (Tune draws the others
    when it creates the trial)."""
    grid = [key for key, domain in study.space.items() if domain.kind == "grid"]
    points = [dict(zip(grid, values)) for values in itertools.product(*(study.space[k].candidates for k in grid))]

    def point_of(config: dict) -> str:
        return json.dumps({k: config[k] for k in grid}, sort_keys=True)

    left = Counter({point_of(p): study.samples for p in points}) - Counter(point_of(c) for c in configs)
    return [p for p in points for _ in range(left[point_of(p)])]


def score_trials(params: Params, name: str, table: pd.DataFrame, trials: dict[str, Trial], models: Path,
                 evaluate: Evaluate) -> dict[str, dict]:
    """Each completed trial's final model, written as the train stage writes model.pt (models/<trial>/model.pt),
    scored with `evaluate` on the test pairs; trial id -> evaluation record, in trial order. A trial stopped
    early is not scored: its model is from an earlier step than the others'."""
    from inpaint.checkpoints import load_state

    records = {}
    for row in table[table.status == "completed"].itertuples():
        path = models / row.trial_id / "model.pt"
        if path.is_file():  # written when the study first saw the trial completed (its checkpoints may be gone)
            meta = load_state(path)["meta"]
        else:
            meta = trial_model(trial_params(params, name, trials[row.trial_id].config),
                               trials[row.trial_id].checkpoint, row.mlflow_run_id, path)
        records[row.trial_id], _ = evaluate(path, f"{name}: {row.setting}", meta)
    return records


def _shown(path: Path) -> str:
    """A path as results.csv records it: relative to the repository when inside it."""
    return str(path.relative_to(paths.REPO_ROOT)) if path.is_relative_to(paths.REPO_ROOT) else str(path)


def trial_model(trial: Params, checkpoint: str, run_id: str, path: Path) -> dict:
    """The model file of a trial's checkpoint (as the train stage writes model.pt); returns its meta."""
    import ray.train

    from inpaint import checkpoints

    (variant,) = trial.variants
    model = checkpoints.checkpoint_model(ray.train.Checkpoint(checkpoint), variant, trial.variants[variant],
                                         trial.data.image_size, run_id)
    checkpoints.write_model(model, path)
    return model["meta"]


def best_trial(table: pd.DataFrame, study: Study):
    """The best trial that trained to the end (a trial stopped early was measured sooner, so it is not
    comparable); None when none did."""
    done = table[(table.status == "completed") & table[study.metric].notna()]
    if done.empty:
        return None
    scores = done[study.metric]
    return done.loc[scores.idxmax() if study.direction == "max" else scores.idxmin()]


def override_lines(params: Params, name: str, config: dict) -> tuple[dict, list[str]]:
    """The best trial's settings as params.yaml overrides, and as `dvc exp run -S` arguments."""
    variant, settings = study_variant(params, name)
    overrides: dict = {}
    if not isinstance(params.tune.studies[name].variant, str):  # not in params.yaml yet: all of it
        overrides = _nest(["variants", variant], settings.model_dump(mode="json"))
    for key, value in config.items():
        overrides = merge(overrides, _nest(_path(variant, key), value))
    flat = tracking.flatten(json.loads(json.dumps(overrides)))
    args = [f"-S '++{k}={v}'" for k, v in flat.items()]
    return overrides, args


def write_best_params(params: Params, name: str, config: dict, best, path: Path) -> None:
    overrides, args = override_lines(params, name, config)
    study = params.tune.studies[name]
    header = (f"# Best trial of tune study {name}: {study.metric} = {best[study.metric]:.4f} (trial {best.trial_id}, "
              f"{int(best.step)} steps).\n# Apply it to the pipeline as an experiment:\n"
              f"#   dvc exp run {' '.join(args)}\n# or merge these keys into params.yaml.\n")
    write_text(path, header + yaml.safe_dump(overrides, sort_keys=False))


def plot_study(table: pd.DataFrame, study: Study, name: str, steps: int, path: Path) -> Path:
    """The metric at each trial's last evaluation against every swept param (one panel per param)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = table[table.status != "failed"]
    fig, axes = plt.subplots(1, len(study.space), figsize=(5 * len(study.space), 3.8), squeeze=False)
    for ax, (key, domain) in zip(axes[0], study.space.items()):
        numeric = domain.kind in ("uniform", "loguniform") or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in domain.candidates)
        order = [] if numeric else [str(label(v)) for v in domain.candidates]
        for status, marker in (("completed", "o"), ("stopped early", "x")):
            part = scored[scored.status == status]
            x = part[key] if numeric else [order.index(str(v)) for v in part[key]]
            ax.scatter(x, part[study.metric], marker=marker, label=status)
        if not numeric:
            ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
        if domain.kind == "loguniform":
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(f"{study.metric} (validation)")
        ax.legend(fontsize=8)
    fig.suptitle(f"tune {name}: {study.metric} at each trial's last evaluation (of {steps} steps)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def _children(client, experiment_id: str, parent: str) -> dict[str, str]:
    """{trial id: its MLflow run id} under the study's parent run."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_PARENT}` = '{parent}'")
    return {r.data.tags[TAG_TRIAL]: r.info.run_id for r in runs if TAG_TRIAL in r.data.tags}


def _finish_children(client, children: dict[str, str], table: pd.DataFrame) -> None:
    """Close each trial's MLflow run (its workers logged the losses and validation scores) with its status,
    stopping step and the path of its model file; an unfinished trial's run is left KILLED, for the resume to
    go on in. A run of a trial id that the study no longer has (Tune's state was saved before a kill -9 of the
    driver, and the trial was created again under a new id) is closed KILLED."""
    for trial_id in children.keys() - set(table.trial_id):
        if client.get_run(children[trial_id]).info.status == "RUNNING":
            client.set_terminated(children[trial_id], "KILLED")
    for row in table.itertuples():
        rid = children.get(row.trial_id)
        if rid is None or client.get_run(rid).info.status in ("FINISHED", "FAILED"):  # not created yet, or closed
            continue
        client.set_tag(rid, TAG_STATUS, row.status)
        if row.error:
            client.set_tag(rid, "inpaint.tune.error", row.error)
        if row.status in UNFINISHED:
            client.set_terminated(rid, "KILLED")
            continue
        if pd.notna(row.step):  # the trial reported at least once
            client.log_metric(rid, tracking.metric_key("tune", "stopped_at_step"), row.step)
        if row.model:
            client.set_tag(rid, TAG_MODEL, row.model)
        client.set_terminated(rid, "FAILED" if row.status == "failed" else "FINISHED")


def _finish_parent(client, parent: str, table: pd.DataFrame, summary: dict, out: Path, paper: report.Table,
                   unfinished: bool) -> None:
    """The study's results and its paper table as artifacts (the table's rows also as an MLflow table), the
    table as the run's description, the trial counts and the best validation score as metrics."""
    for f in sorted(f for f in out.iterdir() if f.is_file()):
        client.log_artifact(parent, str(f), artifact_path="results")
    client.log_artifacts(parent, str(out / "tables"), artifact_path="tables")
    client.log_table(parent, data=table.astype(object).where(table.notna(), ""),
                     artifact_file="results/results_table.json")
    client.log_table(parent, data=report.to_long(paper), artifact_file=f"tables/{paper.name}.json")
    client.set_tag(parent, "mlflow.note.content", report.description(paper) + (
        f"\nArtifacts: `tables/{paper.name}.md` (and .html, .csv), `results/results.csv` (every trial, validation "
        "metric, status), `results/best_params.yaml`."))
    client.log_metric(parent, tracking.metric_key("tune", "trials"), summary["trials"])
    for status, n in summary["statuses"].items():
        client.log_metric(parent, tracking.metric_key("tune", status.replace(" ", "_")), n)
    if "best_value" in summary:
        client.log_metric(parent, tracking.metric_key("tune", "best", summary["metric"]), summary["best_value"])
        client.set_tag(parent, "inpaint.tune.best_trial", summary["best_trial_id"])
    client.set_terminated(parent, "KILLED" if unfinished else "FINISHED")
