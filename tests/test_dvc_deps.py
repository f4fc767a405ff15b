"""dvc.yaml and studies/dvc.yaml list every `inpaint` file each stage runs (inpaint/provenance/codegraph.py reads the
imports from the code, lazy ones included), so that an edit anywhere in a stage's code re-runs that stage;
studies/dvc.yaml has a stage for every study of params.yaml."""
import os
from pathlib import Path

import pytest
import yaml

from inpaint.paths import REPO_ROOT
from inpaint.provenance import codegraph

DVC_FILES = ("dvc.yaml", "studies/dvc.yaml")


def _dvc(file: str) -> dict:
    return yaml.safe_load((REPO_ROOT / file).read_text())["stages"]


def _stages() -> dict[str, tuple[str, list[str]]]:
    """{dvc file:stage: (inpaint.stages function it runs, its deps)}; foreach stages read through their `do`."""
    out = {}
    for file in DVC_FILES:
        for name, stage in _dvc(file).items():
            body = stage.get("do", stage)
            script = body["cmd"].split()[2]  # exec python pipelines/<function>.py ...
            out[f"{file}:{name}"] = (Path(script).stem, body.get("deps", []))
    return out


@pytest.mark.parametrize("file", DVC_FILES)
def test_every_stage_execs_its_script_so_it_dies_with_dvc(file):
    """/bin/sh (dash) keeps itself between DVC and a lone command; without `exec` the stage's parent is the
    shell, which outlives a `kill -9` of DVC, and so does the stage (PR_SET_PDEATHSIG watches the parent)."""
    cmds = {name: stage.get("do", stage)["cmd"] for name, stage in _dvc(file).items()}
    bad = {name: cmd for name, cmd in cmds.items() if not cmd.startswith("exec python pipelines/")}
    assert not bad, f"{file}: these stage cmds do not start with `exec python pipelines/`: {bad}"


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_module_a_stage_imports_is_a_dep(stage):
    function, deps = _stages()[stage]
    code = [p.relative_to(REPO_ROOT).as_posix() for p in codegraph.stage_files(function)]
    missing = [p for p in [f"pipelines/{function}.py", *code] if not _covered(p, deps)]
    assert not missing, (f"dvc.yaml stage {stage} misses deps {missing} "
                         f"(python -m inpaint.provenance.codegraph {function})")
    stale = [d for d in deps if d.startswith("inpaint/") and not any(_covered(p, [d]) for p in code)]
    assert not stale, f"dvc.yaml stage {stage} lists {stale}, which the stage does not run"


def test_the_graph_sees_lazy_imports_and_lazy_package_attributes():
    train = codegraph.stage_modules("train")
    assert "inpaint.losses.detector" in train  # frameworks import it inside functions
    assert "inpaint.masks.store" in train  # `from inpaint.masks import MaskStore`: a lazily exported attribute
    assert "inpaint.results.report" not in train  # stages.py's other stages do not count for train
    assert "inpaint.masks.generate" not in train


def test_a_missing_dep_is_caught(tmp_path):
    function, deps = _stages()["dvc.yaml:train"]
    code = [p.relative_to(REPO_ROOT).as_posix() for p in codegraph.stage_files(function)]
    trimmed = [d for d in deps if d != "inpaint/losses"]
    assert [p for p in code if not _covered(p, trimmed)] == sorted(
        p for p in code if p.startswith("inpaint/losses/"))


def imports_outside_deps(records: Path, file: str = "dvc.yaml") -> dict[str, list[str]]:
    """{stage: the source files of the inpaint modules it imported at run time (codegraph.write_imports'
    records in `records`) that its deps in `file` do not cover}; stages with none left out."""
    stages = {key.split(":")[1]: deps for key, (_, deps) in _stages().items() if key.startswith(f"{file}:")}
    found: dict[str, set[str]] = {}
    for record in sorted(Path(records).glob("*.txt")):
        stage = record.stem.rsplit("-", 1)[0]
        for name in record.read_text().split():
            path = codegraph.module_file(name).relative_to(REPO_ROOT).as_posix()
            if not _covered(path, stages[stage]):
                found.setdefault(stage, set()).add(path)
    return {stage: sorted(paths) for stage, paths in found.items()}


def test_an_import_by_computed_name_is_caught_at_run_time(tmp_path):
    """The static graph cannot see `import_module("inpaint." + name)`; the run-time record of the stage's
    process does, and the check names the file that the stage's deps lack."""
    import subprocess
    import sys

    def record(extra: str) -> dict:
        folder = tmp_path / str(len(extra))
        code = (f"import importlib; from inpaint import stages; from inpaint.provenance import codegraph; "
                f"codegraph.record_imports('pairs'); {extra}")
        subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True,
                       env={**os.environ, codegraph.RECORD_ENV: str(folder)})
        return imports_outside_deps(folder)

    assert record("") == {}
    assert "inpaint/results/figures.py" in record("importlib.import_module('inpaint.results.' + 'figures')")["pairs"]


def test_every_study_has_a_stage():
    studies = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["tune"]["studies"]
    assert set(_dvc("studies/dvc.yaml")["tune"]["foreach"]) == set(studies)
