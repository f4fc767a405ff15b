"""The command line: every command documents itself; bad params stop before any work, naming the key."""
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from inpaint.cli import main
from inpaint.paths import REPO_ROOT

COMMANDS = ["prepare", "masks", "pairs", "baselines", "train", "evaluate", "report", "results", "ui", "weights", "models",
            "fill", "params"]


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
    ("variants:\n  v: {framework: det, optimiser: {lr_g: -0.001}}\n", "variants.v.optimiser.lr_g"),
    ("variants:\n  v: {framework: det, exp_base: 0.5}\n", "variants.v.exp_base"),
    ("variants:\n  v: {framework: pix2pix}\n", "variants.v"),
])
def test_bad_params_stop_before_any_work(tmp_path, capsys, bad, key):
    shutil.copytree(REPO_ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "params.yaml").write_text("profile: ci\n" + bad)
    assert main(["--params", str(tmp_path / "params.yaml"), "prepare"]) == 2
    err = capsys.readouterr().err
    assert key in err and "params.yaml" in err
    assert not (tmp_path / "data").exists()


def test_help_imports_no_framework():
    """`inpaint --help` stays fast because it imports neither torch nor Ray, MLflow or pydantic."""
    code = ("import sys\nfrom inpaint.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'pydantic', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_params_is_compact_yaml_and_json_on_request(capsys):
    assert main(["params"]) == 0
    text = capsys.readouterr().out
    assert main(["params", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert yaml.safe_load(text) == full  # the same values, only shorter
    assert len(text.splitlines()) < len(json.dumps(full, indent=2).splitlines()) / 3
    assert all(line.count(":") > 2 for line in text.split("variants:\n")[1].splitlines())  # one line per variant
    assert main(["params", "evaluate"]) == 0
    assert list(yaml.safe_load(capsys.readouterr().out)) == ["evaluate"]


def test_models_summary_json(capsys):
    assert main(["models", "summary", "--size", "64", "--json", "--only", "gdn_generator", "sn_patchgan"]) == 0
    out = capsys.readouterr()
    assert "[1/2] gdn_generator" in out.err and "[2/2] sn_patchgan" in out.err  # progress while it measures
    rows = {r["name"]: r for r in json.loads(out.out)}
    assert rows["gdn_generator"]["params"] == 10_779_328
    assert rows["gdn_generator"]["gflops"] > 0
    assert rows["sn_patchgan"]["output_shapes"] == [1, 1, 3, 3]


def test_models_summary_rejects_unknown_names():
    with pytest.raises(KeyError, match="unknown model 'resnet'"):
        main(["models", "summary", "--only", "resnet"])


def test_ctrl_c_ends_a_command_and_a_stage_with_one_line(monkeypatch, capsys):
    """KeyboardInterrupt (SIGINT) anywhere in a command or a DVC stage: one line on stderr, exit 130."""
    from inpaint import cli, stages

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_show", interrupted)
    assert main(["params"]) == 130
    assert capsys.readouterr().err == "interrupted: inpaint params (a training resumes from its last checkpoint)\n"
    monkeypatch.setattr(stages, "run", interrupted)
    monkeypatch.setattr(stages.lifetime, "die_with_parent", lambda: None)  # not this test process
    assert stages.main("prepare", []) == 130
    assert capsys.readouterr().err == "interrupted: stage prepare (a train stage resumes from its last checkpoint)\n"


def test_an_interrupted_study_ends_with_its_own_line(monkeypatch, capsys):
    """tune.StudyInterrupted, raised once an interrupted study has written its partial results: its message
    as the one `error:` line, exit 130, from the command and from the stage."""
    from inpaint import cli, stages
    from inpaint.training.tune import StudyInterrupted

    def interrupted(*_args, **_kwargs):
        raise StudyInterrupted("tune s: interrupted before every trial finished: 1 not run (batch_size=2)")

    monkeypatch.setattr(cli, "_show", interrupted)
    assert main(["params"]) == 130
    assert capsys.readouterr().err == "error: tune s: interrupted before every trial finished: 1 not run (batch_size=2)\n"
    monkeypatch.setattr(stages, "run", interrupted)
    monkeypatch.setattr(stages.lifetime, "die_with_parent", lambda: None)  # not this test process
    assert stages.main("tune", ["s"]) == 130
    assert capsys.readouterr().err.startswith("error: tune s: interrupted before every trial finished")
