"""The local head's start and watchdog (inpaint/cluster.py), on a stand-in head. A `ray start` that gives up
(a loaded machine) is tried once more. The watchdog runs on a stand-in head: a `sleep` in a session of its own
with a head record whose GCS port nobody answers on, as a GCS too loaded to accept a connection in time. The
watchdog must keep watching while the record is there and the session lives, stop the session once the last
lease has ended for keep_alive_s, and stop it at once when the record is gone or names another head."""
import json
import os
import subprocess
import threading
import time

import pytest

from inpaint import cluster
from nodes import free_port

KEEP_ALIVE_S = 1


@pytest.fixture
def stand_in(tmp_path):
    """(head directory, the head's session process, a leasing process): the record points at a closed port."""
    head = subprocess.Popen(["sleep", "600"], start_new_session=True)
    user = subprocess.Popen(["sleep", "600"])
    directory = tmp_path / cluster.HEAD_DIR
    (directory / "leases").mkdir(parents=True)
    (directory / "leases" / str(user.pid)).touch()
    record = {"address": f"127.0.0.1:{free_port()}", "session": head.pid, "keep_alive_s": KEEP_ALIVE_S,
              "dir": str(directory), "token": "t"}
    record["port"] = int(record["address"].rsplit(":", 1)[1])
    (directory / "head.json").write_text(json.dumps(record))
    yield directory, head, user
    for proc in (head, user):
        proc.kill()
        proc.wait()


def _watching(directory):
    thread = threading.Thread(target=cluster.watch, args=(directory, 0.05), daemon=True)
    thread.start()
    return thread


def _until(condition, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_head_whose_gcs_does_not_answer_keeps_its_watchdog_until_idle(stand_in):
    directory, head, user = stand_in
    assert cluster.running_head(directory.parent) is None  # the GCS does not answer
    thread = _watching(directory)
    time.sleep(3 * KEEP_ALIVE_S)
    assert thread.is_alive() and head.poll() is None, "the watchdog left a head that is still leased"
    user.kill()
    user.wait()
    assert _until(lambda: head.poll() is not None), "the watchdog did not stop the head once its lease ended"
    assert _until(lambda: not thread.is_alive()) and not (directory / "head.json").exists()


@pytest.mark.parametrize("record", ["deleted", "another head's"])
def test_a_head_nobody_can_find_is_stopped_at_once(stand_in, record):
    directory, head, _ = stand_in
    thread = _watching(directory)
    time.sleep(0.3)
    if record == "deleted":
        (directory / "head.json").unlink()
    else:
        other = json.loads((directory / "head.json").read_text()) | {"session": head.pid + 100_000}
        (directory / "head.json").write_text(json.dumps(other))
    assert _until(lambda: head.poll() is not None), f"a head whose record is {record} kept running"
    assert _until(lambda: not thread.is_alive())
    if record != "deleted":
        assert json.loads((directory / "head.json").read_text())["session"] == head.pid + 100_000  # not ours


def test_a_ray_start_that_gives_up_is_tried_once_more(tmp_path, monkeypatch, capsys):
    head = subprocess.Popen(["sleep", "600"], start_new_session=True)
    calls = []

    def ray_start(directory, keep_alive_s):
        calls.append(directory)
        if len(calls) == 1:
            raise RuntimeError("could not start a local Ray head (ray start ...):\nException: The current node "
                               "timed out during startup.")
        return {"address": "127.0.0.1:1", "port": 1, "dir": str(directory), "keep_alive_s": 0, "token": "t",
                "session": head.pid}, dict(os.environ)

    monkeypatch.setattr(cluster, "_ray_start", ray_start)
    try:
        record = cluster.start_head(0, root=tmp_path)
        assert len(calls) == 2 and record["session"] == head.pid
        assert json.loads((tmp_path / cluster.HEAD_DIR / "head.json").read_text())["session"] == head.pid
        out = capsys.readouterr().out
        assert "WARNING ray: the local head did not start (Exception: The current node timed out during startup.); " \
               "trying again" in out, out
    finally:  # its watchdog leaves once the stand-in's session is gone
        head.kill()
        head.wait()
