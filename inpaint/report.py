"""Tables in the papers' layout from the MLflow runs that exist (protocol.md section 5).

Each table is a `Spec`: which evaluated runs it shows and how it lays them out. Our rows are marked
"(ours)", the published rows beside them "(published)" (inpaint/paper_tables.py, of the dataset in use).
A table with no matching run is skipped with a note; one whose runs were evaluated with different weight
settings or on different datasets is refused (MixedSettingsError).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from inpaint import bins, paper_tables as pt, tracking
from inpaint.models.lgnet import TABLE_VI

METRICS = {"l1": "l1 (%)", "psnr": "PSNR", "ssim": "SSIM", "fid": "FID", "kid": "KID", "lpips": "LPIPS"}
GDN_FRAMEWORKS = ("weight", "adv", "det")
# the train run's params each table groups by (tracking.flatten of the variant and data sections)
RUN_PARAMS = {"generator": "variant.generator", "detector_loss": "variant.detector_loss",
              "hole_weight": "variant.hole_weight", "perceptual_weight": "variant.perceptual_weight",
              "style_weight": "variant.style_weight", "dataset": "data.dataset"}
# data.dataset -> the published tables' dataset; sample and folder data are compared with CelebA-HQ's rows
PUBLISHED_DATASET = {"celeba_hq": "celeba_hq", "places2_gdn": "places2", "places2_lgnet": "places2",
                     "paris": "paris", "sample": "celeba_hq", "folder": "celeba_hq"}
DATASET_NAMES = {"celeba_hq": "CelebA-HQ", "places2": "Places2", "paris": "Paris StreetView"}
FULL_LGNET = {"lgnet": "LGNet", "lgnet_c_l_g_att": "LGNet", "lgnet_light": "LGNet_light",
              "lgnet_share": "LGNet_share"}
TABLE_VI_GENERATORS = {f"lgnet_{arch.lower().replace('+', '_')}": arch for arch in TABLE_VI} | {"lgnet": "C+L+G_att"}
DETECTOR_LOSSES = {"ce": "CE", "bce": "BCE", "focal": "Focal"}  # GDN Table 2's rows


class MixedSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Table:
    name: str  # reports/tables/<name>.md/.html/.csv
    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...]


def evaluated_runs(client, experiment_id: str) -> pd.DataFrame:
    """One row per evaluated variant (its latest train run): variant, framework, pretrained flag, the
    params of RUN_PARAMS, every `test/...` metric (as `metric/bin key`) and `complexity/...`."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{tracking.TAG_KIND}` = 'train'")
    rows = []
    for run in runs:
        m = {k[len("test/"):]: v for k, v in run.data.metrics.items() if k.startswith("test/")}
        if not m:
            continue
        rows.append({"run_id": run.info.run_id, "variant": run.data.tags.get(tracking.TAG_VARIANT),
                     "framework": run.data.tags.get(tracking.TAG_FRAMEWORK),
                     "pretrained": run.data.tags.get("eval.pretrained", "unknown"),
                     "start_time": run.info.start_time,
                     **{k: run.data.params.get(p) for k, p in RUN_PARAMS.items()}, **m,
                     **{k: v for k, v in run.data.metrics.items() if k.startswith("complexity/")}})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("start_time").drop_duplicates("variant", keep="last").reset_index(drop=True)


def _value(run: pd.Series, column: str) -> float:
    v = run.get(column, math.nan)
    return math.nan if v is None else float(v)


def _weights(run: pd.Series) -> tuple[float, float, float]:
    return tuple(float(run[f"{w}_weight"]) for w in ("hole", "perceptual", "style"))


def _weights_label(w: tuple[float, float, float]) -> str:
    return f"λh={w[0]:g}, λper={w[1]:g}, λsty={w[2]:g}"


def method_table(ours: list[tuple[str, pd.Series]], published: dict[str, dict[str, list[float]]],
                 metrics: tuple[str, ...]) -> pd.DataFrame:
    """GDN Table 1's layout: rows = methods, columns = (hole-ratio bin, metric). `ours`: (row label, run);
    `published`: row label -> metric -> six values (a metric the paper lacks prints as a dash)."""
    columns = pd.MultiIndex.from_tuples([(bins.label(b), METRICS[m]) for b in range(len(bins.BINS)) for m in metrics])
    rows = {label: [_value(run, f"{m}/{bins.key(b)}") for b in range(len(bins.BINS)) for m in metrics]
            for label, run in ours}
    rows |= {label: [values[m][b] if m in values else math.nan for b in range(len(bins.BINS)) for m in metrics]
             for label, values in published.items()}
    return pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), name="method"), columns=columns)


def _published(table: dict[str, dict[str, list[float]]], label: Callable[[str], str]) -> dict:
    """Pivot a paper method table (metric -> row -> values) to printed row label -> metric -> values."""
    rows: dict[str, dict[str, list[float]]] = {}
    for metric, by_row in table.items():
        for row, values in by_row.items():
            rows.setdefault(f"{label(row)} (published)", {})[metric] = values
    return rows


def _ours(label: str, run: pd.Series) -> tuple[str, pd.Series]:
    return f"{label} ({run.variant}, ours)", run


def _dataset_note(table: str, dataset: str, used: str) -> list[str]:
    """A note when the published rows are not of our runs' dataset."""
    if PUBLISHED_DATASET[used] == dataset and used not in ("sample", "folder"):
        return []
    return [f"Our runs use data.dataset = {used}; the published rows are {table}'s {DATASET_NAMES[dataset]} "
            "numbers, printed for orientation, not as a like-for-like comparison."]


def _gdn_dataset(dataset: str) -> str:
    """GDN Table 1 has CelebA-HQ and Places2 only: any other data is compared with CelebA-HQ's rows."""
    return PUBLISHED_DATASET[dataset] if PUBLISHED_DATASET[dataset] in pt.GDN_TABLE1 else "celeba_hq"


def gdn_table1(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    ds = _gdn_dataset(dataset)
    order = list(pt.GDN_TABLE1_OURS)
    ours = ours.sort_values("framework", key=lambda s: s.map(order.index), kind="stable")
    rows = [_ours(pt.GDN_TABLE1_OURS[r.framework], r) for _, r in ours.iterrows()]
    published = _published(pt.GDN_TABLE1[ds], lambda row: "GDN (Det)" if row == "Ours" else row)
    return method_table(rows, published, ("l1", "psnr", "ssim", "fid")), _dataset_note("GDN Table 1", ds, dataset)


def gdn_table2(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    order = list(DETECTOR_LOSSES)
    ours = ours.sort_values("detector_loss", key=lambda s: s.map(order.index))
    rows = [_ours(DETECTOR_LOSSES[r.detector_loss], r) for _, r in ours.iterrows()]
    return (method_table(rows, _published(pt.GDN_TABLE2, str), ("psnr", "ssim")),
            _dataset_note("GDN Table 2", "celeba_hq", dataset))


def weight_adv_det(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """GDN Sec. 4.3: Weight / Adv / Det, with GDN Table 1's Det row ("Ours") beside them."""
    ds = _gdn_dataset(dataset)
    ours = ours.sort_values("framework", key=lambda s: s.map(GDN_FRAMEWORKS.index))
    rows = [_ours(r.framework.capitalize(), r) for _, r in ours.iterrows()]
    published = {"Det (GDN Table 1, published)": {m: v["Ours"] for m, v in pt.GDN_TABLE1[ds].items()}}
    return (method_table(rows, published, ("l1", "psnr", "ssim", "fid", "kid", "lpips")),
            _dataset_note("GDN Table 1", ds, dataset))


def lgnet_table5(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    rows = [_ours(FULL_LGNET[r.generator], r) for _, r in ours.iterrows()]
    return (method_table(rows, _published(pt.LGNET_TABLE5, str), ("l1", "psnr", "ssim", "fid", "lpips")),
            _dataset_note("LGNet Table V", "paris", dataset))


def lgnet_table6(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """LGNet Table VI's layout: rows = hole-ratio bins, columns = architectures (FID)."""
    ds = PUBLISHED_DATASET[dataset]
    columns = {}
    ours = ours.assign(arch=ours.generator.map(TABLE_VI_GENERATORS))
    for _, run in ours.sort_values("arch", key=lambda s: s.map(TABLE_VI.index)).iterrows():
        arch = run.arch
        columns[f"{arch} ({run.variant}, ours)"] = [_value(run, f"fid/{bins.key(b)}") for b in range(len(bins.BINS))]
        columns[f"{arch} (published)"] = pt.LGNET_TABLE6[ds][arch]
    index = pd.Index([bins.percent_label(b) for b in range(len(bins.BINS))], name="FID per hole ratio")
    return pd.DataFrame(columns, index=index), _dataset_note("LGNet Table VI", ds, dataset)


def lgnet_table7(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """The loss-weight ablation: our full-LGNet runs by (hole, perceptual, style) weight."""
    ours = ours.assign(weights=[_weights(r) for _, r in ours.iterrows()]).sort_values("weights")
    rows = [_ours(_weights_label(r.weights), r) for _, r in ours.iterrows()]
    published = _published(pt.LGNET_TABLE7, lambda row: _weights_label(pt.LGNET_TABLE7_WEIGHTS[row]))
    return (method_table(rows, published, ("l1", "psnr", "ssim", "fid", "lpips")),
            _dataset_note("LGNet Table VII", "paris", dataset))


def complexity_table(ours: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """LGNet Table IV: parameters, FLOPs at 256 x 256 in Table IV's own count and in ours, CPU time per image."""
    columns = ["#Parameters (M)", "GFLOPs @256", "GFLOPs @256, all matmuls x 2", "CPU ms / image"]
    rows = {f"{r.variant} ({r.generator}, ours)": [
        _value(r, "complexity/params_m"), _value(r, "complexity/gmacs_table_iv_256"),
        _value(r, "complexity/gflops_256"), _value(r, "complexity/infer_ms_cpu")] for _, r in ours.iterrows()}
    rows |= {f"{name} (published)": [v["params_m"], v["gflops"], math.nan, v["cpu_ms"]]
             for name, v in pt.LGNET_TABLE4.items()}
    sizes = sorted({int(_value(r, "complexity/infer_size")) for _, r in ours.iterrows()})
    notes = ["GFLOPs @256 is Table IV's own count (the thop profiler's layer hooks: conv and BatchNorm modules "
             "only, a stride-2 transposed conv counted 4x, functional attention not counted); it reproduces "
             "LGNet 69.62, LGNet_light 53.73 and LGNet_share 69.62 exactly. PEN-Net in that count is 4.81, "
             "not the published 48.07, which we could not reproduce (docs/departures.md).",
             "'all matmuls x 2' counts every convolution and matrix product, attention included, 2 per "
             "multiply-add (torch.utils.flop_counter).",
             f"Our CPU time: batch 1 at {', '.join(map(str, sizes))} px on this machine (median of 2 after a "
             "warm-up); the published times are at 256 px on the authors' CPU."]
    return pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), name="model"), columns=columns), notes


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    selects: Callable[[pd.DataFrame], pd.Series]  # the runs the table shows
    build: Callable[[pd.DataFrame, str], tuple[pd.DataFrame, list[str]]]  # (those runs, data.dataset)


SPECS = (
    Spec("gdn_table1", "GDN Table 1: methods x metrics x hole-ratio bins",
         lambda r: r.framework.isin(list(pt.GDN_TABLE1_OURS)), gdn_table1),
    Spec("gdn_table2", "GDN Table 2: detector loss ablation (PSNR, SSIM)", lambda r: r.framework == "det", gdn_table2),
    Spec("weight_adv_det", "Weight / Adv / Det (GDN Sec. 4.3)", lambda r: r.framework.isin(GDN_FRAMEWORKS),
         weight_adv_det),
    Spec("lgnet_table5", "LGNet Table V: LGNet, LGNet_light, LGNet_share", lambda r: r.generator.isin(FULL_LGNET),
         lgnet_table5),
    Spec("lgnet_table6", "LGNet Table VI: FID per architecture", lambda r: r.generator.isin(TABLE_VI_GENERATORS),
         lgnet_table6),
    Spec("lgnet_table7", "LGNet Table VII: loss weights", lambda r: (r.framework == "lgnet") & r.generator.isin(
        ["lgnet", "lgnet_c_l_g_att"]), lgnet_table7),
    Spec("complexity", "LGNet Table IV: model complexity",
         lambda r: r.filter(like="complexity/params_m").notna().any(axis=1), complexity_table),
)


def check_one_setting(runs: pd.DataFrame, title: str) -> None:
    """Rows evaluated with different metric weights, or trained on different datasets, cannot share a table."""
    for column, what in (("pretrained", "weight settings (pretrained"), ("dataset", "datasets (data.dataset")):
        values = set(runs[column].astype(str))
        if len(values) > 1:
            raise MixedSettingsError(f"{title}: runs evaluated with different {what} = {sorted(values)}): they "
                                     "cannot share a table; re-run them with the same settings")


def build_tables(runs: pd.DataFrame) -> tuple[list[Table], list[str]]:
    """Every table some run fits, and a note per skipped table."""
    tables, skipped = [], []
    for spec in SPECS:
        ours = runs[spec.selects(runs)]
        if ours.empty:
            skipped.append(f"{spec.title}: no matching evaluated run, skipped")
            continue
        check_one_setting(ours, spec.title)
        frame, notes = spec.build(ours, ours.dataset.iloc[0])
        tables.append(Table(spec.name, spec.title, frame, tuple(notes)))
    return tables, skipped


def _cell(v) -> str:
    return "-" if (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def to_markdown(table: pd.DataFrame, footnotes: list[str]) -> str:
    head = [" ".join(c) if isinstance(c, tuple) else str(c) for c in table.columns]
    lines = [f"| {table.index.name or ''} | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    lines += [f"| {name} | " + " | ".join(_cell(v) for v in row) + " |" for name, row in table.iterrows()]
    notes = "".join(f"\n{i + 1}. {n}" for i, n in enumerate(footnotes))
    return "\n".join(lines) + ("\n\nNotes:" + notes if footnotes else "") + "\n"
