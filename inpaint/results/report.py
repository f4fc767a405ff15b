"""Tables in the papers' layouts, from the DVC outputs of the variants in params.yaml (docs/protocol.md section 5).

The source is the files DVC tracks: evals/<variant>.json and runs/<variant>/train_metrics.json of each
variant params.yaml names, and evals/baselines/<name>.json (the classical fills, inpaint/evaluation/baselines.py); a
variant removed from params.yaml is gone from every table. MLflow receives copies (inpaint/results/publish.py).

Each table is a `Spec`: which of our variants it shows and how it names them. A table is long data (one row
per method x metric x hole-ratio bin) rendered as one block per metric: rows = methods (ours, published,
baseline), columns = bins. Footnotes are one per distinct cause (random metric weights, a metric not
computed, a loss term switched off, settings that differ from the papers'), naming the rows they affect.
"""
from __future__ import annotations

import html
import json
import math
import re
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from inpaint import bins
from inpaint.evaluation import compare
from inpaint.io import atomic_path, write_text
from inpaint.models.lgnet import TABLE_VI
from inpaint.results import paper_tables as pt
from inpaint.variants.registry import in_table

METRICS = {"l1": "l1 (%)", "psnr": "PSNR (dB)", "ssim": "SSIM", "fid": "FID", "kid": "KID", "lpips": "LPIPS"}
HIGHER_IS_BETTER = compare.HIGHER_IS_BETTER
DECIMALS = {"l1": 2, "psnr": 2, "ssim": 3, "lpips": 3}  # FID and KID span decades: 4 significant digits
SET_METRICS = ("fid", "kid")  # computed over a bin's sample, not per image: no interval
BIN_LABELS = tuple(bins.percent_label(b) for b in range(len(bins.BINS)))  # the one label style of every table
FID_MIN_SAMPLES = 2048  # below the Inception feature dimension the covariance is singular (biased FID)
# data.dataset -> the published tables' dataset; sample and folder data are compared with CelebA-HQ's rows
PUBLISHED_DATASET = {"celeba_hq": "celeba_hq", "places2_gdn": "places2", "places2_lgnet": "places2",
                     "paris": "paris", "sample": "celeba_hq", "folder": "celeba_hq"}
DATASET_NAMES = {"celeba_hq": "CelebA-HQ", "places2": "Places2", "paris": "Paris StreetView"}
FULL_LGNET = {"lgnet": "LGNet", "lgnet_c_l_g_att": "LGNet", "lgnet_light": "LGNet_light",
              "lgnet_share": "LGNet_share"}
TABLE_VI_GENERATORS = {f"lgnet_{arch.lower().replace('+', '_')}": arch for arch in TABLE_VI} | {"lgnet": "C+L+G_att"}
DETECTOR_LOSSES = {"ce": "CE", "bce": "BCE", "focal": "Focal"}  # GDN Table 2's rows
VARIANT_PARAMS = ("framework", "generator", "detector_loss", "hole_weight", "perceptual_weight", "style_weight")
# Each framework-selected table's published rows in their printed order: a registered framework's rows stand
# in the order of the rows it reproduces (inpaint/variants/registry.py `tables`)
PUBLISHED_ORDER = {"gdn_table1": list(pt.GDN_TABLE1["celeba_hq"]["psnr"]), "weight_adv_det": ["Ours"],
                   "lgnet_table7": list(pt.LGNET_TABLE7["l1"])}


def framework_rows(table: str) -> dict[str, str]:
    """The frameworks whose variants `table` shows, {framework: label of their rows}, in the table's order."""
    return in_table(table, PUBLISHED_ORDER[table])


class MixedSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Note:
    """One footnote: a cause, the rows it affects (empty: the whole table) and the metric blocks it concerns
    (empty: every block)."""
    text: str
    rows: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str  # reports/tables/<name>.md/.html/.csv
    title: str
    rows: pd.DataFrame  # long: method, kind, variant, metric, bin ('' when the table has no bins), value, ci_low, ci_high
    notes: tuple[Note, ...] = ()
    sizes: str = ""  # the sample size per bin, in words
    # paired differences of our rows (mean over the bins): method, metric, against (a row's label), value, low, high
    comparison: pd.DataFrame | None = None
    numbers: tuple[int, ...] = ()  # the notes' numbers, shared by every table of a report (default 1, 2, ...)
    verdict: str = ""  # the headline's one-line conclusion

    def number(self, i: int) -> int:
        return self.numbers[i] if self.numbers else i + 1

    @property
    def by_bin(self) -> bool:
        return bool((self.rows["bin"] != "").any())

    def block(self, metric: str) -> pd.DataFrame:
        """One metric's values: rows = methods in table order, columns = bins."""
        rows = self.rows[self.rows.metric == metric]
        return rows.pivot(index="method", columns="bin", values="value").reindex(
            index=list(dict.fromkeys(rows.method)), columns=[b for b in BIN_LABELS if b in set(rows["bin"])])


# ---------------------------------------------------------------- reading the DVC outputs

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); re-run the stage that writes it") from None


def pairs_per_bin(record: dict, pairs: pd.DataFrame | None) -> dict[str, int]:
    """Bin label -> number of test pairs scored: `n/<bin key>` when the evaluator recorded it, else the
    recorded test pairs of the bin cut to evaluate.pairs_per_bin (what the evaluator scores)."""
    metrics = record.get("metrics", {})
    if all(f"n/{bins.key(b)}" in metrics for b in range(len(bins.BINS))):
        return {BIN_LABELS[b]: int(metrics[f"n/{bins.key(b)}"]) for b in range(len(bins.BINS))}
    if pairs is None:
        return {}
    cap = (record.get("settings") or {}).get("pairs_per_bin")
    counts = pairs.groupby("bin").size()
    return {BIN_LABELS[b]: int(min(counts.get(b, 0), cap) if cap else counts.get(b, 0)) for b in range(len(bins.BINS))}


def result_row(record: dict, pairs: pd.DataFrame | None) -> dict:
    """The table columns of one evaluation record (evals/<variant>.json's layout)."""
    return {"pretrained": str(record.get("pretrained", "unknown")).lower(),
            "set_metrics": record.get("set_metrics", {}), "provenance": record.get("provenance", {}),
            "n": pairs_per_bin(record, pairs), **record.get("metrics", {}),
            **{f"complexity/{k}": v for k, v in record.get("complexity", {}).items()}}


def load_results(params, evals: Path, runs: Path, pairs_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per variant of params.yaml with an evals/<variant>.json, in params order: the variant's
    settings, its metrics (`metric/bin key`), complexity, steps trained, status of the set metrics and
    provenance. Also a note per variant left out (not evaluated yet)."""
    pairs = pd.read_csv(pairs_path) if pairs_path.is_file() else None
    rows, missing = [], []
    for variant, cfg in params.variants.items():
        path = evals / f"{variant}.json"
        if not path.is_file():
            missing.append(f"{path} missing: {variant} is left out of the tables (run `dvc repro evaluate@{variant}`)")
            continue
        train = runs / variant / "train_metrics.json"
        steps = _read_json(train).get("steps") if train.is_file() else None
        rows.append({"variant": variant, "kind": "ours", "dataset": params.data.dataset, "steps": steps,
                     **{k: getattr(cfg, k, None) for k in VARIANT_PARAMS}, **result_row(_read_json(path), pairs)})
    return pd.DataFrame(rows), missing


def load_baselines(folder: Path, pairs_path: Path) -> pd.DataFrame:
    """One row per evals/baselines/<name>.json (the classical fills), labelled as the file says."""
    pairs = pd.read_csv(pairs_path) if pairs_path.is_file() else None
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = _read_json(path)
        rows.append({"variant": path.stem, "label": record.get("label", path.stem), "kind": "baseline",
                     **result_row(record, pairs)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- table layouts

def _num(run: pd.Series, column: str) -> float:
    v = run.get(column, math.nan)
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def method_rows(ours: list[tuple[str, pd.Series]], published: dict[str, dict[str, list[float]]],
                metrics: tuple[str, ...], baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """The long rows of a paper table: `ours` as (row label, result row), then the baselines, then
    `published` (row label -> metric -> six values; a metric the paper lacks is left out)."""
    rows = []
    runs = [(label, run, "ours") for label, run in ours]
    if baselines is not None:
        runs += [(f"{r.label} (baseline)", r, "baseline") for _, r in baselines.iterrows()]
    for label, run, kind in runs:
        for m in metrics:
            for b in range(len(bins.BINS)):
                rows.append({"method": label, "kind": kind, "variant": run.variant, "metric": m, "bin": BIN_LABELS[b],
                             "value": _num(run, f"{m}/{bins.key(b)}"), "ci_low": _num(run, f"{m}_ci_low/{bins.key(b)}"),
                             "ci_high": _num(run, f"{m}_ci_high/{bins.key(b)}")})
    for label, values in published.items():
        for m in metrics:
            if m in values:
                rows += [{"method": label, "kind": "published", "variant": None, "metric": m, "bin": BIN_LABELS[b],
                          "value": float(values[m][b]), "ci_low": math.nan, "ci_high": math.nan}
                         for b in range(len(bins.BINS))]
    return pd.DataFrame(rows, columns=["method", "kind", "variant", "metric", "bin", "value", "ci_low", "ci_high"])


def _published(table: dict[str, dict[str, list[float]]], label: Callable[[str], str]) -> dict:
    """Pivot a paper method table (metric -> row -> values) to printed row label -> metric -> values."""
    rows: dict[str, dict[str, list[float]]] = {}
    for metric, by_row in table.items():
        for row, values in by_row.items():
            rows.setdefault(f"{label(row)} (published)", {})[metric] = values
    return rows


def _ours(label: str, run: pd.Series) -> tuple[str, pd.Series]:
    return f"{label} ({run.variant}, ours)", run


def _published_rows(rows: pd.DataFrame) -> tuple[str, ...]:
    return tuple(dict.fromkeys(rows.method[rows.kind == "published"]))


def _dataset_note(table: str, dataset: str, used: str, rows: pd.DataFrame) -> list[Note]:
    """A note on the published rows when they are not of our runs' dataset."""
    if not _published_rows(rows) or (PUBLISHED_DATASET[used] == dataset and used not in ("sample", "folder")):
        return []
    return [Note(f"{table}'s {DATASET_NAMES[dataset]} numbers, printed for orientation; our rows use "
                 f"data.dataset = {used}, so this is not a like-for-like comparison", _published_rows(rows))]


def _gdn_dataset(dataset: str) -> str:
    """GDN Table 1 has CelebA-HQ and Places2 only: any other data is compared with CelebA-HQ's rows."""
    return PUBLISHED_DATASET[dataset] if PUBLISHED_DATASET[dataset] in pt.GDN_TABLE1 else "celeba_hq"


def gdn_table1(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    ds = _gdn_dataset(dataset)
    labels = framework_rows("gdn_table1")
    ours = ours.sort_values("framework", key=lambda s: s.map(list(labels).index), kind="stable")
    rows = [_ours(labels[r.framework], r) for _, r in ours.iterrows()]
    published = _published(pt.GDN_TABLE1[ds], lambda row: "GDN (Det)" if row == "Ours" else row)
    frame = method_rows(rows, published, ("psnr", "ssim", "l1", "fid"), base)
    return frame, _dataset_note("GDN Table 1", ds, dataset, frame)


@dataclass(frozen=True)
class Published:
    """A paper table's own side: its name, the metrics it reports (in its order), its published rows (printed
    label -> metric -> six values, possibly none) and the dataset they were measured on. Our rows go beside
    them (`table`); the report's variants and the tune studies' trials share it (inpaint/results/study_table.py)."""
    paper: str
    metrics: tuple[str, ...]
    rows: dict[str, dict[str, list[float]]]
    dataset: str

    def table(self, ours: list[tuple[str, pd.Series]], dataset: str,
              base: pd.DataFrame | None) -> tuple[pd.DataFrame, list[Note]]:
        frame = method_rows(ours, self.rows, self.metrics, base)
        return frame, _dataset_note(self.paper, self.dataset, dataset, frame)


GDN_TABLE2 = Published("GDN Table 2", ("psnr", "ssim"), _published(pt.GDN_TABLE2, str), "celeba_hq")


def gdn_table2(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    order = list(DETECTOR_LOSSES)
    ours = ours.sort_values("detector_loss", key=lambda s: s.map(order.index), kind="stable")
    return GDN_TABLE2.table([_ours(DETECTOR_LOSSES[r.detector_loss], r) for _, r in ours.iterrows()], dataset, base)


def weight_adv_det(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    """GDN Sec. 4.3: Weight / Adv / Det, with GDN Table 1's Det row ("Ours") beside them."""
    ds = _gdn_dataset(dataset)
    labels = framework_rows("weight_adv_det")
    ours = ours.sort_values("framework", key=lambda s: s.map(list(labels).index), kind="stable")
    rows = [_ours(labels[r.framework], r) for _, r in ours.iterrows()]
    published = {"Det (GDN Table 1, published)": {m: v["Ours"] for m, v in pt.GDN_TABLE1[ds].items()}}
    frame = method_rows(rows, published, ("psnr", "ssim", "l1", "lpips", "fid", "kid"), base)
    return frame, _dataset_note("GDN Table 1", ds, dataset, frame)


def lgnet_table5(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    rows = [_ours(FULL_LGNET[r.generator], r) for _, r in ours.iterrows()]
    frame = method_rows(rows, _published(pt.LGNET_TABLE5, str), ("psnr", "ssim", "l1", "lpips", "fid"), base)
    return frame, _dataset_note("LGNet Table V", "paris", dataset, frame)


def lgnet_table6(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    """LGNet Table VI (FID per architecture), in the common layout: rows = architectures, columns = bins."""
    ds = PUBLISHED_DATASET[dataset]
    ours = ours.assign(arch=ours.generator.map(TABLE_VI_GENERATORS))
    ours = ours.sort_values("arch", key=lambda s: s.map(TABLE_VI.index), kind="stable")
    rows = [_ours(r.arch, r) for _, r in ours.iterrows()]
    published = {f"{arch} (published)": {"fid": pt.LGNET_TABLE6[ds][arch]} for arch in TABLE_VI}
    frame = method_rows(rows, published, ("fid",), base)
    return frame, _dataset_note("LGNet Table VI", ds, dataset, frame)


def _weights(run: pd.Series) -> tuple[float, float, float]:
    return tuple(float(run[f"{w}_weight"]) for w in ("hole", "perceptual", "style"))


def _weights_label(w: tuple[float, float, float], off: bool = False) -> str:
    """Table VII's row label; `off`: the perceptual and style terms were switched off in training (their
    weights did nothing), said instead of their values."""
    return f"λh={w[0]:g}, λper and λsty off" if off else f"λh={w[0]:g}, λper={w[1]:g}, λsty={w[2]:g}"


def _perceptual_style_off(run: pd.Series) -> bool:
    """The run trained without its perceptual and style terms (provenance.switched_off: no VGG-16 file, or
    weights 0), not merely with an uncalibrated VGG-16 (weights: random)."""
    return any("perceptual" in term and not reason.startswith("uncalibrated")
               for term, reason in _switched_off((run.get("provenance") or {}).get("switched_off")))


LGNET_TABLE7 = Published("LGNet Table VII", ("psnr", "ssim", "l1", "lpips", "fid"), _published(
    pt.LGNET_TABLE7, lambda row: _weights_label(pt.LGNET_TABLE7_WEIGHTS[row])), "paris")


def lgnet_table7(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    """The loss-weight ablation: our full-LGNet runs by (hole, perceptual, style) weight."""
    ours = ours.assign(weights=[_weights(r) for _, r in ours.iterrows()]).sort_values("weights", kind="stable")
    return LGNET_TABLE7.table([_ours(_weights_label(r.weights, _perceptual_style_off(r)), r)
                               for _, r in ours.iterrows()], dataset, base)


COMPLEXITY = {"params_m": "#Parameters (M)", "gmacs_table_iv_256": "GFLOPs @256 (Table IV's count)",
              "gflops_256": "GFLOPs @256, all matmuls x 2", "infer_ms_cpu": "CPU ms / image"}
COMPLEXITY_PUBLISHED = {"params_m": "params_m", "gmacs_table_iv_256": "gflops", "infer_ms_cpu": "cpu_ms"}


def complexity_table(ours: pd.DataFrame, dataset: str, base: pd.DataFrame) -> tuple[pd.DataFrame, list[Note]]:
    """LGNet Table IV: parameters, FLOPs at 256 x 256 in Table IV's own count and in ours, CPU time per image
    (no bins)."""
    rows = [{"method": f"{r.variant} ({r.generator}, ours)", "kind": "ours", "variant": r.variant, "metric": m,
             "bin": "", "value": _num(r, f"complexity/{m}"), "ci_low": math.nan, "ci_high": math.nan}
            for _, r in ours.iterrows() for m in COMPLEXITY]
    rows += [{"method": f"{name} (published)", "kind": "published", "variant": None, "metric": m, "bin": "",
              "value": float(v[COMPLEXITY_PUBLISHED[m]]) if m in COMPLEXITY_PUBLISHED else math.nan,
              "ci_low": math.nan, "ci_high": math.nan}
             for name, v in pt.LGNET_TABLE4.items() for m in COMPLEXITY]
    frame = pd.DataFrame(rows)
    sizes = sorted({int(_num(r, "complexity/infer_size")) for _, r in ours.iterrows()
                    if math.isfinite(_num(r, "complexity/infer_size"))})
    ours_rows = tuple(dict.fromkeys(frame.method[frame.kind == "ours"]))
    notes = [Note(f"CPU time: batch 1 at {', '.join(map(str, sizes))} px on this machine (the faster of 2 passes, "
                  "the first of which warms up); the published times are at 256 px on the authors' CPU", ours_rows,
                  ("infer_ms_cpu",)),
             Note("Table IV's count is the thop profiler's layer hooks: conv and BatchNorm modules only, a stride-2 "
                  "transposed conv counted 4x, functional attention not counted; it reproduces LGNet 69.62, "
                  "LGNet_light 53.73 and LGNet_share 69.62 exactly. PEN-Net in that count is 4.81, not the "
                  "published 48.07, which we could not reproduce (docs/departures.md)", ours_rows,
                  ("gmacs_table_iv_256",)),
             Note("'all matmuls x 2' counts every convolution and matrix product, attention included, 2 FLOPs per "
                  "multiply-add (torch.utils.flop_counter)", ours_rows, ("gflops_256",))]
    return frame, notes


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    selects: Callable[[pd.DataFrame], pd.Series]  # our variants the table shows
    build: Callable[[pd.DataFrame, str, pd.DataFrame], tuple[pd.DataFrame, list[Note]]]  # (ours, dataset, baselines)
    quality: bool = True  # a quality table carries the baseline rows, the per-variant footnotes, paired differences
    # the row of ours the others are compared with (the paper's baseline of the table), among the table's variants
    reference: Callable[[pd.DataFrame], pd.Series] | None = None


SPECS = (
    Spec("gdn_table1", "GDN Table 1: methods per hole ratio",
         lambda r: r.framework.isin(list(framework_rows("gdn_table1"))), gdn_table1,
         reference=lambda r: r.framework == "pen"),
    Spec("gdn_table2", "GDN Table 2: detector loss ablation", lambda r: r.framework == "det", gdn_table2,
         reference=lambda r: r.detector_loss == "ce"),
    Spec("weight_adv_det", "GDN Sec. 4.3: Weight / Adv / Det",
         lambda r: r.framework.isin(list(framework_rows("weight_adv_det"))), weight_adv_det,
         reference=lambda r: r.framework == "weight"),
    Spec("lgnet_table5", "LGNet Table V: LGNet, LGNet_light, LGNet_share", lambda r: r.generator.isin(FULL_LGNET),
         lgnet_table5, reference=lambda r: r.generator.isin(["lgnet", "lgnet_c_l_g_att"])),
    Spec("lgnet_table6", "LGNet Table VI: FID per architecture", lambda r: r.generator.isin(TABLE_VI_GENERATORS),
         lgnet_table6, reference=lambda r: r.generator == "lgnet_c"),
    Spec("lgnet_table7", "LGNet Table VII: loss weights",
         lambda r: r.framework.isin(list(framework_rows("lgnet_table7"))) & r.generator.isin(["lgnet", "lgnet_c_l_g_att"]),
         lgnet_table7,
         reference=lambda r: pd.Series([_weights(x) == pt.LGNET_TABLE7_WEIGHTS["Ours"] for _, x in r.iterrows()],
                                       index=r.index, dtype=bool)),
    Spec("complexity", "LGNet Table IV: model complexity", lambda r: r.filter(like="complexity/params_m").notna().any(axis=1),
         complexity_table, quality=False),
)


# ---------------------------------------------------------------- footnotes

@dataclass(frozen=True)
class Setting:
    """What the papers did, to flag our rows that differ (from profiles/paper.yaml and the papers)."""
    image_size: int = 256
    steps: int = 337_500
    test_source: str = "liu"  # GDN and LGNet test on Liu et al.'s irregular masks


def causes(run: pd.Series, params, paper: Setting = Setting()) -> list[tuple[str, tuple[str, ...]]]:
    """The distinct reasons a row is not the papers' measurement: (text, metric blocks it concerns)."""
    out = []
    statuses = run.get("set_metrics") or {}
    if not statuses and run.get("pretrained") == "false":
        statuses = {"fid": "random", "lpips": "random"}
    for name, status in statuses.items():
        concerned = ("fid", "kid") if name == "fid" else (name,)
        names = " and ".join(m.upper() for m in concerned)
        if str(status).startswith("random"):
            out.append((f"{names} computed with random weights (weights: random, tests only): uncalibrated, not "
                        "comparable with anything", concerned))
        elif str(status).startswith("not computed"):
            out.append((f"{names} not computed: its pretrained file is missing (`inpaint weights status` says "
                        "where it goes)", concerned))
    for term, reason in _switched_off((run.get("provenance") or {}).get("switched_off")):
        out.append((f"loss term {term} switched off in training: {brief(reason)}", ()))
    if run.kind == "ours":
        if run.dataset in ("sample", "folder"):
            out.append((f"trained and tested on data.dataset = {run.dataset}, not one of the papers' datasets", ()))
        steps = run.get("steps")
        if steps is not None and not (isinstance(steps, float) and math.isnan(steps)) and int(steps) < paper.steps:
            out.append((f"trained {int(steps):,} steps, the papers {paper.steps:,}", ()))
    if params.data.image_size != paper.image_size:
        out.append((f"images at {params.data.image_size} px, the papers' at {paper.image_size} px", ()))
    if params.masks.test_source != paper.test_source:
        out.append((f"test masks from masks.test_source = {params.masks.test_source}, the papers use Liu et al.'s "
                    "irregular masks", ()))
    n = run.get("n") or {}
    if n and min(n.values()) < FID_MIN_SAMPLES and any(math.isfinite(_num(run, f"fid/{bins.key(b)}"))
                                                        for b in range(len(bins.BINS))):
        out.append((f"FID and KID per bin on fewer than {FID_MIN_SAMPLES:,} samples (biased upwards; compare only "
                    "rows of equal sample size)", ("fid", "kid")))
    return out


def brief(reason: str) -> str:
    """A recorded reason cut to its first clause, without file paths and URLs (`inpaint weights status`
    prints those): a note names the cause, once."""
    first = re.split(r",? expected at |\. ", reason)[0]
    text = re.sub(r"https?://\S+|(?<![\w.])~?/[^\s,;()]+", "", first)
    return re.sub(r"^off: |\s{2,}", "", text).strip(" .,;:") or reason


def _switched_off(entries) -> list[tuple[str, str]]:
    """provenance.switched_off as (term, reason): a list of {term, reason} dicts or strings, or term -> reason."""
    if not entries:
        return []
    if isinstance(entries, dict):
        return [(str(k), str(v)) for k, v in entries.items()]
    return [(str(e.get("term", e)), str(e.get("reason", "no reason recorded"))) if isinstance(e, dict)
            else (str(e), "no reason recorded") for e in entries]


def table_notes(rows: pd.DataFrame, runs: pd.DataFrame, params) -> list[Note]:
    """One note per distinct cause among the table's ours and baseline rows, naming them."""
    by_cause: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    shown = set(rows.metric)
    for (method, variant, kind), _ in rows[rows.kind != "published"].groupby(["method", "variant", "kind"], sort=False):
        run = runs[(runs.variant == variant) & (runs.kind == kind)].iloc[0]
        for text, metrics in causes(run, params):
            if not metrics or shown & set(metrics):
                by_cause.setdefault((text, metrics), []).append(method)
    return [Note(text, tuple(dict.fromkeys(methods)), metrics) for (text, metrics), methods in by_cause.items()]


def sample_sizes(rows: pd.DataFrame, runs: pd.DataFrame) -> str:
    """'n = 4 test pairs per bin' when every row of ours and baselines scored the same, else per row."""
    sizes = {}
    for (method, variant, kind), _ in rows[rows.kind != "published"].groupby(["method", "variant", "kind"], sort=False):
        n = runs[(runs.variant == variant) & (runs.kind == kind)].iloc[0].get("n") or {}
        sizes[method] = tuple(n.get(b) for b in BIN_LABELS)
    if not sizes or all(None in s for s in sizes.values()):
        return ""
    distinct = set(sizes.values())
    if len(distinct) == 1:
        (one,) = distinct
        if len(set(one)) == 1:
            rows_of = "every row of ours" + (" and every baseline" if (rows.kind == "baseline").any() else "")
            return f"Sample: n = {one[0]:,} test pairs per hole-ratio bin for {rows_of}."
        return "Sample: test pairs per bin " + ", ".join(f"{b}: {k}" for b, k in zip(BIN_LABELS, one)) + "."
    return "Sample (test pairs per bin): " + "; ".join(f"{m}: {', '.join(map(str, s))}" for m, s in sizes.items()) + "."


# ---------------------------------------------------------------- building

def check_one_setting(runs: pd.DataFrame, title: str) -> None:
    """Rows evaluated with different metric weights, or trained on different datasets, cannot share a table."""
    for column, what in (("pretrained", "weight settings (pretrained"), ("dataset", "datasets (data.dataset")):
        values = set(runs[column].astype(str))
        if len(values) > 1:
            raise MixedSettingsError(f"{title}: runs evaluated with different {what} = {sorted(values)}): they "
                                     "cannot share a table; re-run them with the same settings")


def build_tables(runs: pd.DataFrame, baselines: pd.DataFrame, params,
                 paired: compare.PairedScores | None = None) -> tuple[list[Table], list[str]]:
    """Every table some variant fits, and a note per skipped table. `runs` from load_results, `baselines`
    from load_baselines (may be empty); with `paired` (load_pair_scores), each quality table gets the paired
    differences of its rows of ours against its reference row and the best classical fill."""
    everything = pd.concat([runs, baselines], ignore_index=True)
    tables, skipped = [], []
    for spec in SPECS:
        ours = runs[spec.selects(runs)]
        if ours.empty:
            skipped.append(f"{spec.title}: no matching evaluated variant, skipped")
            continue
        check_one_setting(ours, spec.title)
        rows, notes = spec.build(ours, ours.dataset.iloc[0], baselines if spec.quality else None)
        comparison = None
        if spec.quality:
            notes = [*table_notes(rows, everything, params), *notes]
            reference = ours[spec.reference(ours)].variant.head(1).tolist() if spec.reference else []
            comparison = paired_differences(rows, reference[0] if reference else None, baselines, paired)
        tables.append(Table(spec.name, spec.title, rows, tuple(notes),
                            sample_sizes(rows, everything) if spec.quality else "", comparison))
    return tables, skipped


# ---------------------------------------------------------------- paired comparisons (inpaint/evaluation/compare.py)

def row_key(kind: str, variant: str) -> tuple[str, str]:
    """A row's key in the per-pair scores: ours and the baselines live in different folders."""
    return (kind, variant)


def load_pair_scores(runs: pd.DataFrame, baselines: pd.DataFrame, evals: Path, params) -> compare.PairedScores | None:
    """The per-pair scores of every row that has them (evals/<variant>_pairs.csv,
    evals/baselines/<name>_pairs.csv), resampled evaluate.bootstrap times from evaluate.seed; None when no row
    has them (evaluations written before the per-pair scores)."""
    scores = {}
    for frame, folder in ((runs, evals), (baselines, evals / "baselines")):
        for r in frame.itertuples():
            found = compare.read_pair_scores(compare.pairs_path(folder / f"{r.variant}.json"))
            if found is not None:
                scores[row_key(r.kind, r.variant)] = found
    if not scores:
        return None
    return compare.PairedScores(scores, params.evaluate.bootstrap, params.evaluate.seed)


def best_fill(baselines: pd.DataFrame, paired: compare.PairedScores, metric: str) -> tuple[str, str] | None:
    """(name, label) of the classical fill with the best mean of `metric`."""
    if baselines.empty:
        return None
    key = paired.best([row_key("baseline", v) for v in baselines.variant], metric)
    return None if key is None else (key[1], baselines.set_index("variant").label[key[1]])


def paired_differences(rows: pd.DataFrame, reference: str | None, baselines: pd.DataFrame,
                       paired: compare.PairedScores | None) -> pd.DataFrame | None:
    """Each row of ours minus the reference row of ours (`reference`, a variant) and minus the best classical
    fill, per per-pair metric of the table (every per-pair metric for a table of FID alone): the mean over the
    bins and its paired 95 % interval."""
    # a table of set metrics only (Table VI: FID) is compared on the per-pair metrics, which have pairs
    metrics = [m for m in dict.fromkeys(rows.metric) if m in compare.METRICS] or list(compare.METRICS)
    if paired is None:
        return None
    ours = rows[rows.kind == "ours"].drop_duplicates("method")
    labels = dict(zip(ours.variant, ours.method))
    out = []
    for m in metrics:
        fill = best_fill(baselines, paired, m)
        against = ([("reference", labels[reference], row_key("ours", reference))] if reference in labels else []) + \
            ([("best fill", fill[1], row_key("baseline", fill[0]))] if fill else [])
        for r in ours.itertuples():
            for what, label, other in against:
                key = row_key("ours", r.variant)
                if key == other or not (paired.has(key, m) and paired.has(other, m)):
                    continue
                d = paired.delta(key, other, m)
                out.append({"method": r.method, "metric": m, "against": what, "against_label": label,
                            "value": d.value, "low": d.low, "high": d.high})
    return pd.DataFrame(out, columns=["method", "metric", "against", "against_label", "value", "low", "high"])


def comparison_cells(table: Table) -> tuple[list[str], list[tuple[str, list[str]]], str]:
    """The paired-differences block of a table: column names, (method, cells) per row of ours, and the line
    naming the reference row and the best fills."""
    c = table.comparison
    if c is None or c.empty:
        return [], [], ""
    against = ("reference", "best fill")
    columns = sorted(dict.fromkeys(zip(c.metric, c.against)), key=lambda k: (list(dict.fromkeys(c.metric)).index(k[0]),
                                                                          against.index(k[1])))
    out = []
    for method in dict.fromkeys(c.method):
        cells = []
        for metric, against in columns:
            hit = c[(c.method == method) & (c.metric == metric) & (c.against == against)]
            cells.append("-" if hit.empty else compare.format_delta(
                compare.Estimate(*hit[["value", "low", "high"]].iloc[0]), DECIMALS.get(metric, 3)))
        out.append((method, cells))
    names = [f"{METRICS[m].split(' ')[0]} vs {a}" for m, a in columns]
    reference = c[c.against == "reference"].against_label.head(1).tolist()
    fills = dict(zip(c[c.against == "best fill"].metric, c[c.against == "best fill"].against_label))
    by_fill: dict[str, list[str]] = {}
    for m, label in fills.items():
        by_fill.setdefault(label, []).append(METRICS[m].split(" ")[0])
    line = " ".join(([f"Reference: {reference[0]}."] if reference else []) + (
        ["Best classical fill: " + "; ".join(f"{label} ({', '.join(ms)})" for label, ms in by_fill.items()) + "."]
        if by_fill else []))
    return names, out, line


COMPARISON_HEADING = "Paired differences from the row named (mean over the bins; ± paired 95% interval; * it excludes 0)"


HEADLINE_METRICS = ("psnr", "ssim", "l1", "lpips", "fid", "kid")
PRIMARY = "psnr"  # what the headline ranks by and the verdict counts first (higher is better)
UNITS = {"psnr": " dB", "l1": " %"}


def headline(runs: pd.DataFrame, baselines: pd.DataFrame, params, paired: compare.PairedScores | None = None) -> Table:
    """Every variant and baseline on one screen, ranked by PSNR: each metric's mean over the six bins (with
    its bootstrap interval from the per-pair scores; a metric no row has, e.g. LPIPS without its weights, is
    left out), each variant's paired difference from the best classical fill, and the verdict (how many
    variants beat that fill)."""
    rows = []
    everything = pd.concat([runs, baselines], ignore_index=True)
    for _, r in everything.iterrows():
        label = r.variant if r.kind == "ours" else f"{r.label} (baseline)"
        key = row_key(r.kind, r.variant)
        for m in HEADLINE_METRICS:
            if paired is not None and m in compare.METRICS and paired.has(key, m):
                e = paired.mean(key, m)
                value, low, high = e.value, e.low, e.high
            else:
                values = [_num(r, f"{m}/{bins.key(b)}") for b in range(len(bins.BINS))]
                value = sum(values) / len(values) if all(math.isfinite(v) for v in values) else math.nan
                low = high = math.nan
            rows.append({"method": label, "kind": r.kind, "variant": r.variant, "metric": m, "bin": "",
                         "value": value, "ci_low": low, "ci_high": high})
    frame = pd.DataFrame(rows)
    frame = frame[frame.groupby("metric").value.transform(lambda v: v.notna().any())]  # no column of dashes only
    primary = frame[frame.metric == PRIMARY].set_index("method").value
    order = primary.round(9).sort_values(ascending=PRIMARY not in HIGHER_IS_BETTER, na_position="last", kind="stable").index
    ranks = {method: f"#{i} {method}" for i, method in enumerate(order, 1)}
    frame["method"] = frame.method.map(ranks)
    frame = frame.sort_values("method", key=lambda s: s.map({m: i for i, m in enumerate(ranks.values())}), kind="stable")
    comparison = paired_differences(frame, None, baselines, paired)
    return Table("headline", "Headline: every variant and classical fill, ranked by PSNR (mean over the six "
                 "hole-ratio bins)", frame.reset_index(drop=True), tuple(table_notes(frame, everything, params)),
                 sample_sizes(frame, everything), comparison, verdict=verdict(frame, comparison))


def verdict(frame: pd.DataFrame, comparison: pd.DataFrame | None) -> str:
    """One line: how many variants are significantly better than the best classical fill, per metric, PSNR
    first (paired bootstrap, 95 %)."""
    n = frame[frame.kind == "ours"].method.nunique()
    if comparison is None or comparison.empty:
        return (f"{n} variants; no paired comparison with a classical fill (no baseline or no per-pair scores: "
                "re-run the evaluate and baselines stages)")
    parts = []
    for m in dict.fromkeys(comparison.metric):
        rows = comparison[(comparison.metric == m) & (comparison.against == "best fill")]
        told = [compare.better(m, compare.Estimate(r.value, r.low, r.high)) for r in rows.itertuples()]
        beat, worse = told.count(True), told.count(False)
        name = METRICS[m].split(" ")[0]
        if not parts:
            fill = rows.against_label.iloc[0]
            value = frame[(frame.metric == m) & frame.method.str.endswith(f" {fill} (baseline)")].value.iloc[0]
            parts.append(f"{beat} of {len(told)} variants beat the best classical fill on {name} ({fill}, "
                         f"{_fmt(m, value)}{UNITS.get(m, '')}): {worse} significantly worse, "
                         f"{len(told) - beat - worse} not told apart")
        else:
            parts.append(f"on {name} {beat} of {len(told)}")
    return "; ".join(parts) + " (paired bootstrap over the test pairs, 95%)."


def summary_metrics(head: Table) -> dict[str, float]:
    """The few numbers `dvc exp show` and the report run compare between experiments: the number of variants,
    how many beat the best classical fill on PSNR, the best PSNR of ours, the best fill's and their paired
    difference."""
    ours = head.rows[(head.rows.kind == "ours") & (head.rows.metric == PRIMARY)]
    fills = head.rows[(head.rows.kind == "baseline") & (head.rows.metric == PRIMARY)]
    out = {"variants": int(ours.method.nunique())}
    c = head.comparison
    if c is not None and not c.empty:
        rows = c[(c.metric == PRIMARY) & (c.against == "best fill")]
        out["beat_fill_psnr"] = sum(compare.better(PRIMARY, compare.Estimate(r.value, r.low, r.high)) is True
                                    for r in rows.itertuples())
    if not ours.empty and ours.value.notna().any():
        best = ours.loc[ours.value.idxmax()]
        out["best_psnr"] = round(float(best.value), 2)
        if c is not None and not c.empty:
            delta = c[(c.method == best.method) & (c.metric == PRIMARY) & (c.against == "best fill")]
            if not delta.empty:
                out["best_minus_fill_psnr"] = round(float(delta.value.iloc[0]), 2)
    if not fills.empty and fills.value.notna().any():
        out["fill_psnr"] = round(float(fills.value.max()), 2)
    return out


def number_notes(tables: list[Table]) -> list[Table]:
    """The tables with their notes numbered once for the whole report: a number means the same note in every
    table (in the order the notes first appear)."""
    numbers: dict[str, int] = {}
    for t in tables:
        for n in t.notes:
            numbers.setdefault(n.text, len(numbers) + 1)
    return [replace(t, numbers=tuple(numbers[n.text] for n in t.notes)) for t in tables]


# ---------------------------------------------------------------- rendering

def _fmt(metric: str, v: float) -> str:
    return f"{v:.{DECIMALS[metric]}f}" if metric in DECIMALS else f"{v:.4g}"


def _best(values: pd.Series, metric: str) -> float:
    """The best value of a column (KID: the closest to 0, its unbiased estimate can be slightly negative)."""
    finite = values[values.notna()]
    if finite.empty or metric not in METRICS:
        return math.nan
    if metric == "kid":
        return finite.loc[finite.abs().idxmin()]
    return finite.max() if metric in HIGHER_IS_BETTER else finite.min()


def _cells(table: Table, metric: str) -> tuple[list[str], list[tuple[str, list[tuple[str, str, bool]]]]]:
    """Column names and, per row, (value, interval, best?) cells of one block."""
    rows = table.rows[table.rows.metric == metric] if table.by_bin else table.rows
    methods = list(dict.fromkeys(rows.method))
    kinds = dict(zip(rows.method, rows.kind))
    columns = [b for b in BIN_LABELS if b in set(rows["bin"])] if table.by_bin else list(dict.fromkeys(rows.metric))
    key = "bin" if table.by_bin else "metric"
    ours = rows[rows.kind == "ours"]  # published and baseline rows are never marked best
    best = {c: _best(ours[ours[key] == c].value, metric if table.by_bin else c) for c in columns}
    out = []
    for method in methods:
        cells = []
        for c in columns:
            cell = rows[(rows.method == method) & (rows[key] == c)]
            if cell.empty or not math.isfinite(cell.value.iloc[0]):
                cells.append(("-", "", False))
                continue
            v, lo, hi = cell.value.iloc[0], cell.ci_low.iloc[0], cell.ci_high.iloc[0]
            m = metric if table.by_bin else c
            ci = f"±{_fmt(m, (hi - lo) / 2)}" if math.isfinite(lo) and math.isfinite(hi) else ""
            cells.append((_fmt(m, v), ci, v == best[c] and kinds[method] == "ours"))
        out.append((method, cells))
    return columns, out


def _collective(table: Table, note: Note) -> str | None:
    """'all of ours' / 'all of ours and the baselines' when the note covers that whole group of rows (said once
    under the table, not marked on each row), else None."""
    rows, kinds = set(note.rows), table.rows.drop_duplicates("method").set_index("method").kind
    ours, base = set(kinds.index[kinds == "ours"]), set(kinds.index[kinds == "baseline"])
    if ours and rows == ours | base:
        return "all of ours and the baselines" if base else "all of ours"
    if ours and rows == ours:
        return "all of ours"
    return None


def _markers(table: Table, method: str, metric: str | None) -> list[int]:
    return [table.number(i) for i, n in enumerate(table.notes) if method in n.rows and _collective(table, n) is None
            and (metric is None or not n.metrics or metric in n.metrics)]


def note_text(table: Table, note: Note) -> str:
    rows = _collective(table, note) or ", ".join(note.rows)
    return note.text[:1].upper() + note.text[1:] + (f". Rows: {rows}." if note.rows else ".")


def legend(table: Table, best: str = "Bold") -> str:
    kinds = set(table.rows.kind)
    parts = [f"{best}: the best of ours per column (published and baseline rows are never marked)."] \
        if "ours" in kinds and (table.by_bin or "baseline" in kinds) else []
    if not table.by_bin and set(table.rows.metric) & set(METRICS):
        parts.append("↑ higher is better, ↓ lower is better.")
    if table.rows.ci_low.notna().any():
        parts.append("±: half-width of the 95% bootstrap interval over the test pairs.")
    names = {"ours": "(ours) trained and measured here", "baseline": "(baseline) a classical fill on the same test pairs",
             "published": "(published) the paper's number"}
    rows = "; ".join(v for k, v in names.items() if k in kinds)
    return " ".join(parts + ([f"Rows: {rows}."] if rows else []))


def _blocks(table: Table) -> list[tuple[str | None, str]]:
    """(metric, heading) per block: one per metric of a binned table, a single one otherwise."""
    if table.rows.empty:  # a study none of whose trials completed, in a table with no published rows
        return []
    if not table.by_bin:
        return [(None, "")]
    metrics = list(dict.fromkeys(table.rows.metric))  # the table's order (each paper's own)
    return [(m, METRICS[m] + (" (higher is better)" if m in HIGHER_IS_BETTER else " (lower is better)"))
            for m in metrics]


def _header_label(table: Table, column: str) -> str:
    """A bin, or a metric's name with its unit and, for a quality metric, ↑ (higher is better) or ↓."""
    if table.by_bin:
        return column
    if column in METRICS:
        return f"{METRICS[column]} {'↑' if column in HIGHER_IS_BETTER else '↓'}"
    return COMPLEXITY.get(column, column)


def to_markdown(table: Table, level: int = 1) -> str:
    """Title, sample size, one block per metric (rows = methods, columns = hole-ratio bins, best in bold,
    ± the half-width of the 95% bootstrap interval), numbered notes whose markers follow the row labels."""
    out = [f"{'#' * level} {table.title}", ""]
    if table.verdict:
        out += [f"**Verdict: {table.verdict}**", ""]
    if table.sizes:
        out += [table.sizes, ""]
    for metric, heading in _blocks(table):
        columns, rows = _cells(table, metric)
        if heading:
            out += [f"**{heading}**", ""]
        out.append("| method | " + " | ".join(_header_label(table, c) for c in columns) + " |")
        out.append("|:---|" + "---:|" * len(columns))
        for method, cells in rows:
            marks = _markers(table, method, metric)
            label = method + (" " + "".join(f"[{i}]" for i in marks) if marks else "")
            out.append(f"| {label} | " + " | ".join(
                (f"**{v}**" if best else v) + (f" {ci}" if ci else "") for v, ci, best in cells) + " |")
        out.append("")
    names, rows, line = comparison_cells(table)
    if rows:
        out += [f"**{COMPARISON_HEADING}**", "", line, "", "| method | " + " | ".join(names) + " |",
                "|:---|" + "---:|" * len(names)]
        out += [f"| {method} | " + " | ".join(cells) + " |" for method, cells in rows] + [""]
    out += [legend(table), ""]
    if table.notes:
        out += ["Notes:", ""] + [f"{table.number(i)}. {note_text(table, n)}" for i, n in enumerate(table.notes)] + [""]
    return "\n".join(out)


def to_text(table: Table) -> str:
    """The blocks as fixed-width text, the best of ours marked '^', then the paired differences: for MLflow's
    run description, whose markdown tables are rendered without cell padding."""
    out = []
    for metric, heading in _blocks(table):
        columns, rows = _cells(table, metric)
        grid = [["method", *(_header_label(table, c) for c in columns)]]
        for method, cells in rows:
            marks = "".join(f"[{i}]" for i in _markers(table, method, metric))
            grid.append([f"{method} {marks}".rstrip(), *(f"{v}{'^' if best else ''}{' ' + ci if ci else ''}"
                                                          for v, ci, best in cells)])
        if heading:
            out.append(heading)
        out += text_grid(grid) + [""]
    names, rows, line = comparison_cells(table)
    if rows:
        out += [COMPARISON_HEADING, *textwrap.wrap(line, 110), *text_grid([["method", *names], *[[m, *c] for m, c in rows]]), ""]
    return "\n".join(out)


def text_grid(grid: list[list[str]]) -> list[str]:
    """Fixed-width lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in grid) for i in range(len(grid[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in grid]


HTML_STYLE = """<style>
body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 1em auto; color: #222; }
table { border-collapse: collapse; margin: 0.3em 0 1.2em; font-size: 14px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.ours td:first-child { font-weight: 600; } tr.published { color: #555; } tr.baseline { color: #805; }
td small { color: #777; } sup { color: #a00; } p.legend, ul.notes { font-size: 13px; color: #444; max-width: 1400px; }
ul.notes { list-style: none; padding-left: 0.5em; } p.verdict { font-size: 16px; font-weight: 600; }
img.ranking { max-width: 100%; }
</style>"""


def to_html(table: Table, standalone: bool = True) -> str:
    """The same blocks as to_markdown, in HTML tables narrow enough for a 1600-px window, with the notes."""
    kinds = dict(zip(table.rows.method, table.rows.kind))
    out = [f"<h2>{html.escape(table.title)}</h2>"]
    if table.verdict:
        out.append(f"<p class=\"verdict\">Verdict: {html.escape(table.verdict)}</p>")
    if table.sizes:
        out.append(f"<p>{html.escape(table.sizes)}</p>")
    for metric, heading in _blocks(table):
        columns, rows = _cells(table, metric)
        if heading:
            out.append(f"<h3>{html.escape(heading)}</h3>")
        out.append("<table><tr><th>method</th>" + "".join(f"<th>{html.escape(_header_label(table, c))}</th>"
                                                           for c in columns) + "</tr>")
        for method, cells in rows:
            marks = _markers(table, method, metric)
            sup = f"<sup>{','.join(map(str, marks))}</sup>" if marks else ""
            tds = "".join(f"<td>{'<b>' + v + '</b>' if best else v}{' <small>' + ci + '</small>' if ci else ''}</td>"
                          for v, ci, best in cells)
            out.append(f"<tr class=\"{kinds.get(method, '')}\"><td>{html.escape(method)}{sup}</td>{tds}</tr>")
        out.append("</table>")
    names, rows, line = comparison_cells(table)
    if rows:
        out += [f"<h3>{html.escape(COMPARISON_HEADING)}</h3>", f"<p>{html.escape(line)}</p>",
                "<table><tr><th>method</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"]
        out += [f"<tr class=\"ours\"><td>{html.escape(m)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                + "</tr>" for m, cells in rows] + ["</table>"]
    out.append(f"<p class=\"legend\">{html.escape(legend(table))}</p>")
    if table.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{table.number(i)}. {html.escape(note_text(table, n))}</li>"
                                                     for i, n in enumerate(table.notes)) + "</ul>")
    body = "\n".join(out)
    if not standalone:
        return body
    return f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(table.title)}</title>" \
           f"{HTML_STYLE}</head><body>\n{body}\n</body></html>\n"


def to_long(table: Table) -> pd.DataFrame:
    """Tidy rows (method x metric x bin) with the unit-bearing metric label, for the CSV and MLflow."""
    frame = table.rows.assign(table=table.name, metric_label=table.rows.metric.map(
        lambda m: COMPLEXITY.get(m, METRICS.get(m, m))))
    frame = frame.rename(columns={"bin": "hole_ratio_bin"})
    return frame[["table", "method", "kind", "variant", "metric", "metric_label", "hole_ratio_bin", "value",
                  "ci_low", "ci_high"]]


def write_table(table: Table, out: Path) -> None:
    """<name>.md, <name>.html (with the notes) and <name>.csv (tidy: one row per method x metric x bin)."""
    md = to_markdown(table)
    write_text(out / f"{table.name}.md", md)
    write_text(out / f"{table.name}.html", to_html(table))
    with atomic_path(out / f"{table.name}.csv") as tmp:
        to_long(table).to_csv(tmp, index=False)
    print(md)


def terminal_text(table: Table, width: int = 120) -> str:
    """A table for the terminal: title, verdict, sample size, the fixed-width blocks, legend and notes, the
    prose wrapped to `width` columns."""
    def wrap(text: str) -> str:
        return textwrap.fill(text, width, subsequent_indent="   ")

    notes = [wrap(f"{table.number(i)}. {note_text(table, n)}") for i, n in enumerate(table.notes)]
    return "\n".join([table.title, "", *([wrap(f"Verdict: {table.verdict}"), ""] if table.verdict else []),
                      *([wrap(table.sizes), ""] if table.sizes else []), to_text(table).rstrip(), "",
                      wrap(legend(table, best="^")), *(["", "Notes:", *notes] if notes else [])])


def description(table: Table) -> str:
    """A table as an MLflow run description: fixed-width blocks (MLflow draws markdown tables without cell
    padding), the legend and the notes."""
    notes = "".join(f"{table.number(i)}. {note_text(table, n)}\n" for i, n in enumerate(table.notes))
    verdict = f"**Verdict: {table.verdict}**\n\n" if table.verdict else ""
    return f"### {table.title}\n\n{verdict}{table.sizes}\n\n```\n{to_text(table)}```\n\n{legend(table, best='^')}\n\n{notes}"
