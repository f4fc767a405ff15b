"""How long a stage's work may live, and who may do it: a stage process dies with the process that started
it (`dvc repro` killed with -9 must not leave a trainer running), and one trainer per variant at a time,
held by a lock the kernel releases when its holder dies (no stale lock file to clean up by hand)."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Busy(RuntimeError):
    """Another live process holds the lock this work needs."""


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent exits (a no-op elsewhere). SIGTERM lets Ray's
    own handler shut the local Ray down; the processes Ray starts share the driver's fate already."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block; raise Busy (naming the holder's pid) if another
    process holds it. The lock is the kernel's, so it is released when the holder exits, however it exits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise Busy(f"{what} is already running (pid {holder}, lock {path}); wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def run_group(cmd: list[str], env: dict | None = None) -> int:
    """Run a server `cmd` in a process group of its own until it exits, or until this process is told to
    stop (SIGTERM, SIGINT): then the whole group stops, the server's own workers included. The group is
    found by the child's pid (its group id), never by a command line."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=die_with_parent)

    def stop(signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    import psutil

    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == proc.pid:
                members.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    stop(members)
    proc.wait()


def stop(procs: list, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`, to these processes (psutil checks each is still the process
    it was, so a reused pid is left alone)."""
    import psutil

    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)  # SIGKILL is delivered asynchronously
