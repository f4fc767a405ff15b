"""What the slow tests share: a throw-away copy of the repository to run the CLI and DVC in."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inpaint.paths import REPO_ROOT


def pytest_configure(config):
    """Under pytest-xdist (the README runs two test processes on two cores) each process computes on one
    torch thread: processes of two threads each spin against each other and run several times slower."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The files that take minutes first (e2e, then slow; the order within a file kept). With the README's
    `--dist loadfile --no-loadscope-reorder` the test processes start on them and the seconds-long files fill
    the gaps at the end, instead of one process running a minutes-long file alone while the others idle."""
    def weight(item) -> int:
        return 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2

    heaviest = {}
    for item in items:
        heaviest[item.path] = min(heaviest.get(item.path, 2), weight(item))
    items.sort(key=lambda item: heaviest[item.path])


def square_hole_batch(n: int = 2, size: int = 64):
    """A seeded batch of `n` random images with one square hole each (the model tests' fixed input)."""
    import torch

    g = torch.Generator().manual_seed(1)
    image = torch.rand(n, 3, size, size, generator=g)
    mask = torch.zeros(n, 1, size, size)
    mask[..., 16:40, 20:44] = 1
    return image, mask


def untrained_model_file(path: Path) -> Path:
    """A model.pt as the train stage writes it, with GDN's generator untrained (seeded): its fills are noise,
    but fills, for the tests of what reads a model file."""
    import torch

    from inpaint import checkpoints
    from inpaint.models.registry import build

    torch.manual_seed(0)
    meta = {"variant": "v", "framework": "weight", "generator": "gdn_generator", "image_size": 64, "steps": 0,
            "run_id": "r"}
    checkpoints.write_model({"meta": meta, "generator": build("gdn_generator").state_dict()}, path)
    return path


def trained_in_this_process(work: Path, variant: str) -> dict:
    """The networks after the steps of `work`'s params.yaml, trained in this process without Ray or MLflow
    (LocalSession) on `work`'s data and masks: what an interrupted and resumed, or a distributed, run of the
    same steps must end with."""
    from inpaint.config import load_params
    from inpaint.provenance.fingerprint import fingerprint
    from inpaint.training import train

    loaded = load_params(work / "params.yaml")
    config = train.loop_config(loaded, variant, None, fingerprint(loaded, variant))
    config["prepared"], config["masks"] = str(work / "data" / "prepared"), str(work / "data" / "masks" / "train")
    session = train.LocalSession()
    train.train_loop(config, session)
    return session.state["networks"]


def run_checked(cmd, cwd, env, timeout=900) -> str:
    """Run a command; on failure, fail the test with the ends of its output."""
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-6000:]}"
    return out.stdout + out.stderr


def as_from_a_terminal(cmd: list) -> list[str]:
    """`cmd` started the way a terminal starts a command: SIGINT at its default and not blocked, whatever this
    test process inherited. A runner that starts the suite as a background job (`.ci/run &` in a script)
    passes SIGINT down ignored, and Python keeps ignoring it: a Ctrl-C test would then measure its runner. A
    small Python resets SIGINT and execs `cmd`, so the Popen's pid is `cmd`'s."""
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset, *map(str, cmd)]


def catches_sigint(pid: int) -> bool:
    """Whether process `pid` has a handler for SIGINT that is not blocked (/proc/<pid>/status bit masks)."""
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith(("SigCgt", "SigBlk")))
    bit = 1 << (signal.SIGINT - 1)
    return bool(int(fields["SigCgt"], 16) & bit) and not int(fields["SigBlk"], 16) & bit


def command_lines(procs) -> list[tuple]:
    """(process, command line) of those of `procs` still alive. Ray names an actor's process after its class
    (`ray::RayTrainWorker`), so the command line tells what a Ray process runs."""
    import psutil

    found = []
    for p in procs:
        try:
            found.append((p, " ".join(p.cmdline())))
        except psutil.NoSuchProcess:
            continue
    return found


def registered_checkpoint(storage: Path, since: float = 0.0) -> bool:
    """Whether Ray Train's controller has registered a checkpoint written under `storage` since `since` (wall
    clock): a checkpoint manager snapshot names it, and that checkpoint is on disk. A checkpoint folder alone
    is not enough: it appears while the worker is still uploading, and a worker killed then restarts from the
    previous registered checkpoint (or from step 0). The checkpoint's own time counts, not the snapshot's: a
    resumed run's first snapshot may name the checkpoint it resumed from. A Tune trial's Ray run is a folder
    of `storage`; a train run's attempts are two levels down (inpaint/checkpoints.py)."""
    for snapshot in Path(storage).rglob("checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
            if latest and (snapshot.parent / latest["checkpoint_dir_name"]).stat().st_mtime >= since:
                return True
        except (OSError, ValueError):  # being written right now, or gone: look again on the next poll
            continue
    return False


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory):
    """A function that copies the repository's files (tracked or not ignored) to a fresh folder, lets `edit`
    change its params.yaml (a dict), and returns the folder with an environment free of the caller's MLflow,
    Ray and INPAINT_ROOT settings, whose PATH finds this venv's `dvc` and `inpaint`, whose PYTHONPATH is the
    copy and whose SHELL (which DVC runs stage commands with) is /bin/sh."""

    def copy(edit) -> tuple[Path, dict]:
        work = tmp_path_factory.mktemp("repo")
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
        for f in files:
            if (REPO_ROOT / f).is_file():
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / f, work / f)
        params = yaml.safe_load((work / "params.yaml").read_text())
        edit(params)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "INPAINT_ROOT")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env["SHELL"] = "/bin/sh"  # DVC runs stages with $SHELL: the shell of a CI machine, not the developer's
        # the copy's own inpaint package, not the one the venv's editable install points at (`python
        # pipelines/X.py` puts pipelines/ first on sys.path): an edit to the repository during the run cannot
        # reach the copy's stages or change their code fingerprint
        env["PYTHONPATH"] = str(work)
        return work, env

    return copy
