"""`dvc plots show` renders with no network: dvc.yaml declares only image plots (the report's figures), whose
HTML loads no script; the per-variant CSVs (loss curves, metrics per bin) are outputs, not Vega plots, which
would load Vega from a CDN."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from inpaint.paths import REPO_ROOT


def test_plots_html_loads_no_remote_script(tmp_path):
    for f in ("dvc.yaml", "params.yaml", "studies/dvc.yaml", ".dvc/config", *(
            p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "profiles").glob("*.yaml"))):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / f, tmp_path / f)
    for png in ("reports/figures/loss_curves.png", "reports/figures/psnr_vs_ratio.png",
                "reports/masks/ratio_histogram.png"):
        (tmp_path / png).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "white").save(tmp_path / png)
    (tmp_path / "runs" / "gdn_det").mkdir(parents=True)  # what the train and evaluate stages write
    (tmp_path / "runs" / "gdn_det" / "loss.csv").write_text("step,loss_g\n1,0.5\n2,0.4\n")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "gdn_det_per_bin.csv").write_text("bin,hole_ratio_bin,psnr\n0,1-10%,30.0\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    out = subprocess.run([dvc, "plots", "show", "-o", "html"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "html" / "index.html").read_text()
    assert page.count("<img") == 3 and "loss_curves.png" in page
    assert not re.search(r"<script[^>]*src=[\"']?(https?:)?//", page), "a plot loads a script from the network"
    assert "loss.csv" not in page and "per_bin.csv" not in page
