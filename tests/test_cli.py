"""The command line: every command documents itself; bad params stop before any work, naming the key."""
import json
import shutil

import pytest

from inpaint.cli import main
from inpaint.paths import REPO_ROOT

COMMANDS = ["prepare", "masks", "pairs", "train", "evaluate", "report", "ui", "weights", "models", "fill", "params"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for c in COMMANDS:
        assert c in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: inpaint" in capsys.readouterr().out


@pytest.mark.parametrize("bad, key", [
    ("variants:\n  v: {framework: det, optimiser: {lr_g: -0.001}}\n", "variants.v.det.optimiser.lr_g"),
    ("variants:\n  v: {framework: det, exp_base: 0.5}\n", "variants.v.det.exp_base"),
    ("variants:\n  v: {framework: pix2pix}\n", "variants.v"),
])
def test_bad_params_stop_before_any_work(tmp_path, capsys, bad, key):
    shutil.copytree(REPO_ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "params.yaml").write_text("profile: ci\n" + bad)
    assert main(["--params", str(tmp_path / "params.yaml"), "prepare"]) == 2
    err = capsys.readouterr().err
    assert key in err and "params.yaml" in err
    assert not (tmp_path / "data").exists()


def test_models_summary_json(capsys):
    assert main(["models", "summary", "--size", "64", "--json", "--only", "gdn_generator", "sn_patchgan"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["gdn_generator"]["params"] == 10_779_328
    assert rows["gdn_generator"]["gflops"] > 0
    assert rows["sn_patchgan"]["output_shapes"] == [1, 1, 3, 3]


def test_models_summary_rejects_unknown_names():
    with pytest.raises(KeyError, match="unknown model 'resnet'"):
        main(["models", "summary", "--only", "resnet"])
