"""Faults without Ray: a stage dies with its parent, one trainer per variant, resume from the newest
checkpoint on disk that loads (a truncated newest one falls back to the one before)."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from pydantic import TypeAdapter

from inpaint import checkpoints, cluster
from inpaint.checkpoints import STATE_FILE, load_state, save_state
from inpaint.config import Variant
from inpaint.frameworks import build_framework, build_networks
from inpaint.lifetime import Busy, exclusive
from inpaint.training.train import RaySession

HOLD = ("import sys, time; from pathlib import Path; from inpaint.lifetime import exclusive\n"
        "with exclusive(Path(sys.argv[1]), 'training of variant x'):\n"
        "    print('held', flush=True); time.sleep(600)\n")


def _wait_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def test_a_second_trainer_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    lock = tmp_path / "gdn_adv" / "train.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match=rf"training of variant x is already running \(pid {holder.pid}, lock "):
            with exclusive(lock, "training of variant x"):
                pass
    finally:
        holder.kill()  # -9: no clean-up code runs, the kernel still releases the lock
        holder.wait()
    with exclusive(lock, "training of variant x"):
        assert lock.read_text().strip() == str(os.getpid())


def test_a_stage_dies_when_its_parent_is_killed(tmp_path):
    """`kill -9` of the process that started a stage (DVC) stops the stage: it does not keep training."""
    child = ("import time; from inpaint.lifetime import die_with_parent; die_with_parent(); "
             "print('child', flush=True); time.sleep(600)")
    parent = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]]); "
              "print(p.pid, flush=True); p.wait()")
    dvc = subprocess.Popen([sys.executable, "-c", parent, child], stdout=subprocess.PIPE, text=True)
    stage_pid = int(dvc.stdout.readline())
    assert dvc.stdout.readline().strip() == "child"
    os.kill(dvc.pid, signal.SIGKILL)
    dvc.wait()
    try:
        assert _wait_gone(stage_pid), "the stage outlived its parent"
    finally:
        if psutil.pid_exists(stage_pid):
            os.kill(stage_pid, signal.SIGKILL)


@pytest.fixture
def framework():
    cfg = TypeAdapter(Variant).validate_python({"framework": "weight"})
    fw = build_framework(cfg, build_networks(cfg, 64))
    fw.make_optimisers()
    return fw


META = {"variant": "gdn_weight", "framework": "weight", "fingerprint": "abc"}


def _checkpoint(run, attempt: str, name: str, fw, step: int):
    d = run / attempt / f"{checkpoints.PREFIX}{name}"
    d.mkdir(parents=True)
    save_state(d, fw, step, META)
    return d


def test_checkpoints_on_disk_newest_first_and_pruned_across_attempts(tmp_path, framework):
    run = tmp_path / "gdn_weight" / "gdn_weight-abc"
    a = _checkpoint(run, "attempt-1", "2026-12-01_10-00-00.000001", framework, 10)
    b = _checkpoint(run, "attempt-1", "2026-12-01_10-00-05.000001", framework, 20)
    c = _checkpoint(run, "attempt-2", "2026-12-01_11-00-00.000001", framework, 30)  # the killed re-run's
    (run / "attempt-3").mkdir()  # an attempt killed before its first checkpoint
    assert checkpoints.on_disk(run) == [c, b, a]
    assert checkpoints.prune(run) == [a]
    assert checkpoints.on_disk(run) == [c, b] and not (run / "attempt-3").exists()
    checkpoints.prune(run, keep=[c])
    assert checkpoints.on_disk(run) == [c] and not (run / "attempt-1").exists()


def test_an_in_process_checkpoint_is_named_only_when_complete_and_the_run_keeps_two(tmp_path, framework):
    """`publish` (train.num_workers 0, where Ray stores nothing): a write that fails half-way leaves a hidden
    folder that no listing takes for a checkpoint; complete ones sort after Ray's older ones, and the run
    keeps its two newest across attempts, as Ray's num_to_keep=2 would."""
    run = tmp_path / "gdn_weight" / "gdn_weight-abc"
    ray_s = _checkpoint(run, "attempt-1", "2026-12-01_10-00-00.000001", framework, 10)  # an earlier attempt
    attempt = run / "attempt-2"

    def killed_half_way(d):
        (d / STATE_FILE).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoints.publish(attempt, killed_half_way)
    assert checkpoints.on_disk(run) == [ray_s] and len(list(attempt.glob(".partial-*"))) == 1
    first = checkpoints.publish(attempt, lambda d: save_state(d, framework, 20, META))
    assert checkpoints.on_disk(run) == [first, ray_s]
    second = checkpoints.publish(attempt, lambda d: save_state(d, framework, 30, META))
    assert checkpoints.on_disk(run) == [second, first] and not ray_s.exists()
    assert load_state(second / STATE_FILE, expect=META)["step"] == 30
    checkpoints.prune(run, keep=[])  # the finished run: nothing left, the hidden leftover included
    assert not run.exists() or not any(run.iterdir())


def test_a_variant_keeps_its_most_recently_used_run_folders(tmp_path):
    """ray.keep_runs: the run folders (one per fingerprint) beyond the most recently used are deleted, the
    current one always stays (even if older), and nothing else in the variant's folder is touched."""
    import os

    variant = tmp_path / "gdn_weight"
    runs = [variant / f"gdn_weight-{i:012x}" for i in range(5)]
    for age, run in enumerate(runs):
        (run / "attempt-1").mkdir(parents=True)
        (run / "model.pt").write_bytes(b"x")
        os.utime(run, (1_000_000 - age * 100, 1_000_000 - age * 100))  # runs[0] the most recently used
    (variant / "train.lock").write_text("1\n")
    (variant / "notes").mkdir()  # not a run folder
    removed = checkpoints.prune_runs(variant, current=runs[4], keep=3)
    assert sorted(removed) == sorted(runs[2:4])
    assert [r.exists() for r in runs] == [True, True, False, False, True]
    assert (variant / "train.lock").is_file() and (variant / "notes").is_dir()
    assert checkpoints.prune_runs(variant, current=runs[4], keep=3) == []


class _NoRayCheckpoint:
    """What RaySession.restore needs of ray.train: no checkpoint of Ray's own (a fresh attempt), and
    Checkpoint(path) for the ones found on disk."""

    from ray.train import Checkpoint

    @staticmethod
    def get_checkpoint():
        return None


def test_a_truncated_newest_checkpoint_falls_back_to_the_older_one(tmp_path, framework, capfd):
    run = tmp_path / "run"
    old = _checkpoint(run, "attempt-1", "2026-12-01_10-00-00.000001", framework, 10)
    new = _checkpoint(run, "attempt-2", "2026-12-01_10-00-05.000001", framework, 20)
    state = new / STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # killed while Ray copied it
    session = RaySession.__new__(RaySession)
    session._train, session.rank = _NoRayCheckpoint, 0
    restored = session.restore(META, [str(p) for p in checkpoints.on_disk(run)])
    assert restored["step"] == 10
    assert f"{state}: not a readable checkpoint" in capfd.readouterr().out  # printed to the process's stdout
    (old / STATE_FILE).unlink()
    assert session.restore(META, [str(new), str(old)]) is None


@pytest.mark.slow
def test_inpaint_ui_stops_its_server_on_sigterm(tmp_path):
    """SIGTERM to `inpaint ui` stops the MLflow server and all of its workers (nothing keeps answering)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    ui = subprocess.Popen([sys.executable, "-m", "inpaint.cli", "ui", "--port", str(port)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # the MLflow server starts slowly on a loaded machine
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert ui.poll() is None and time.monotonic() < deadline, f"the MLflow UI did not start ({ui.poll()})"
            time.sleep(0.5)
        group = [p for p in psutil.process_iter() if p.pid != ui.pid and _safe_pgid(p.pid) not in (None, os.getpgid(0))
                 and ui.pid in {a.pid for a in p.parents()}]
        assert group, "no server process under `inpaint ui`"
        ui.send_signal(signal.SIGTERM)
        ui.wait(30)  # exits (it does not wait for a server that no longer answers)
        _, alive = psutil.wait_procs(group, timeout=15)
        assert not alive, f"left running after SIGTERM: {alive}"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the MLflow server still answers"
    finally:
        if ui.poll() is None:
            ui.kill()


def _safe_pgid(pid: int):
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _rank(rank: int, port_queue, result_queue) -> None:
    import torch
    import torch.distributed as dist

    from inpaint.training import rendezvous

    if rank == 0:
        port = rendezvous._listen()
        port_queue.put(port)
    else:
        port = port_queue.get(timeout=60)
    rendezvous._join(world_rank=rank, world=2, port=port, backend="gloo", timeout_s=60)
    me = psutil.Process()
    listening = [(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
                 if c.pid == me.pid and c.status == psutil.CONN_LISTEN]
    value = torch.tensor([rank + 1.0])
    dist.all_reduce(value)
    result_queue.put((rank, value.item(), listening))
    dist.barrier()
    rendezvous._leave()


def test_the_process_group_of_two_local_workers_listens_on_loopback_only():
    """What LoopbackBackend sets up in two Ray Train workers, here in two plain processes: the store and
    gloo listen on 127.0.0.1 only, and an all-reduce works across them."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ports, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, ports, results)) for r in (0, 1)]
    for p in procs:
        p.start()
    try:
        got = sorted(results.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert [(rank, total) for rank, total, _ in got] == [(0, 3.0), (1, 3.0)]
    listening = [addr for _, _, addrs in got for addr in addrs]
    assert listening, "nothing listened: the store should, on loopback"
    outside = [a for a in listening if not cluster.is_loopback(a[0])]
    assert not outside, outside

