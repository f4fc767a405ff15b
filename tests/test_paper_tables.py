"""The published numbers in inpaint/results/paper_tables.py against the transcription they were typed from
(tests/data/paper_tables.md: the tables as the papers published them), parsed here independently."""
import re
from pathlib import Path

import pytest

from inpaint.results import paper_tables as pt
from inpaint.variants.lgnet import LGNetSettings

MD = Path(__file__).parent / "data" / "paper_tables.md"
METRIC = {"ell_1": "l1", "psnr": "psnr", "ssim": "ssim", "fid": "fid", "lpips": "lpips"}


def _number(cell: str) -> float | None:
    try:
        return float(re.sub(r"\s*(G|M|ms)$", "", cell.strip()))
    except ValueError:
        return None


def parse_tables(text: str) -> dict[str, list[tuple[list[str], list[float]]]]:
    """Table name ('1', '2', 'I' ... 'VIII') -> rows of (labels, numbers); an empty leading label cell
    repeats the one above (the markdown's merged cells)."""
    tables, name, last = {}, None, []
    for line in text.splitlines():
        title = re.match(r"^(?:\*\*Table (\d+):|TABLE ([IVX]+))", line.strip())
        if title:
            name, last = title.group(1) or title.group(2), []
            tables[name] = []
            continue
        if name is None or "\t" not in line:
            continue
        cells = line.split("\t")
        values = [_number(c) for c in cells]
        first = next((i for i, v in enumerate(values) if v is not None), None)
        if first is None:
            continue  # a header row
        labels = [c.strip() for c in cells[:first]]
        labels = [lab or (last[i] if i < len(last) else "") for i, lab in enumerate(labels)]
        last = labels
        tables[name].append((labels, [v for v in values[first:] if v is not None]))
    return tables


@pytest.fixture(scope="module")
def md():
    return parse_tables(MD.read_text())


def _metric(label: str) -> str:
    return next(v for k, v in METRIC.items() if k in label.lower())


def test_gdn_table1_every_number(md):
    assert len(md["1"]) == 16
    for (metric, method), values in md["1"]:
        for i, dataset in enumerate(("celeba_hq", "places2")):
            assert pt.GDN_TABLE1[dataset][_metric(metric)][method] == values[i::2], (metric, method, dataset)


def test_gdn_table2_every_number(md):
    for (loss,), values in md["2"]:
        assert pt.GDN_TABLE2["psnr"][loss] == values[0::2] and pt.GDN_TABLE2["ssim"][loss] == values[1::2], loss


@pytest.mark.parametrize("table, dataset", [("I", "celeba_hq"), ("II", "places2"), ("III", "paris")])
def test_lgnet_comparison_tables_every_number(md, table, dataset):
    assert len(md[table]) == 30
    for (metric, method), values in md[table]:
        assert pt.LGNET_COMPARISON[dataset][_metric(metric)][method] == values, (table, metric, method)


def test_lgnet_table4_complexity(md):
    for (model,), (gflops, params_m, cpu_ms, gpu_ms) in md["IV"]:
        name = model.split(" [")[0]
        assert pt.LGNET_TABLE4[name] == {"gflops": gflops, "params_m": params_m, "cpu_ms": cpu_ms,
                                         "gpu_ms": gpu_ms}, name


def test_lgnet_table5_first_block_is_l1_not_fid(md):
    """tests/data/paper_tables.md: Table V's first block is labelled FID but repeats Table III's l1 (%) for LGNet."""
    order = ["l1", "psnr", "ssim", "fid", "lpips"]
    for k, ((_, model), values) in enumerate(md["V"]):
        assert pt.LGNET_TABLE5[order[k // 3]][model] == values, (order[k // 3], model)
    assert pt.LGNET_TABLE5["l1"]["LGNet"] == pt.LGNET_COMPARISON["paris"]["l1"]["Ours"]


def test_lgnet_table6_every_number(md):
    datasets = {"CelebA-HQ": "celeba_hq", "Places2": "places2", "Paris StreetView": "paris"}
    by_bin = {}
    for (dataset, _), values in md["VI"]:
        by_bin.setdefault(datasets[dataset], []).append(values)
    for dataset, rows in by_bin.items():
        for k, arch in enumerate(pt.LGNET_TABLE6[dataset]):
            assert pt.LGNET_TABLE6[dataset][arch] == [r[k] for r in rows], (dataset, arch)
    assert list(pt.LGNET_TABLE6["paris"]) == ["C", "C+L", "C+G_att", "C+G+G_att", "C+L+G", "C+L+G_att"]


def test_lgnet_table7_every_number_and_its_weights(md):
    rows = {"$\\lambda_h$": "lambda_h", "$\\lambda_{per}$": "lambda_per", "$\\lambda_{sty}$": "lambda_sty",
            "$\\lambda_{per}, \\lambda_{sty}$": "lambda_per+lambda_sty", "Ours": "Ours"}
    for (metric, setting), values in md["VII"]:
        assert pt.LGNET_TABLE7[_metric(metric)][rows[setting]] == values, (metric, setting)
    defaults = LGNetSettings.model_fields
    assert pt.LGNET_TABLE7_WEIGHTS["Ours"] == tuple(defaults[f"{w}_weight"].default for w in ("hole", "perceptual",
                                                                                              "style"))
    assert pt.LGNET_TABLE7_WEIGHTS["lambda_h"] == (1.0, 0.05, 120.0)
