"""The local Ray default: a head on the loopback address only, shared by the stages, stopped by its session
id (its processes and nobody else's), its Ray client server on a port of its own."""
import os
import shutil
import time

import pytest

pytestmark = pytest.mark.slow


def test_stages_share_one_local_head_that_stops_when_idle(tmp_path):
    """With ray.keep_alive_s, the first process starts a head on 127.0.0.1, the next one joins the same head
    (token-authenticated), a task of each runs on the loopback address, and the watchdog stops the head once
    nobody has used it for keep_alive_s seconds."""
    import subprocess
    import sys
    import time

    from inpaint import cluster

    code = ("import ray; from inpaint import cluster; cluster.connect(None, keep_alive_s=4); "
            "ip = ray.get(ray.remote(ray.util.get_node_ip_address).remote()); "
            "print(ray.get_runtime_context().gcs_address, *cluster.node_addresses(), ip)")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["INPAINT_ROOT"] = str(tmp_path)
    try:
        outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
                for _ in range(2)]
        for out in outs:
            assert out.returncode == 0, out.stderr[-4000:]
        assert "started a local head" in outs[0].stdout and "started a local head" not in outs[1].stdout
        seen = [out.stdout.split()[-3:] for out in outs]
        head = cluster.running_head(tmp_path)
        assert head and seen[0] == seen[1] == [head["address"], "127.0.0.1", "127.0.0.1"], (seen, head)
        deadline = time.monotonic() + 90
        while cluster.running_head(tmp_path) and time.monotonic() < deadline:
            time.sleep(1)
        assert cluster.running_head(tmp_path) is None, "the watchdog did not stop the idle head"
    finally:
        cluster.stop_head(tmp_path)


def test_two_heads_have_their_own_ports_and_stop_by_session(tmp_path):
    """Two clones' heads at once: no shared port (Ray's client server would take 10001 in both), every
    port on loopback, and stopping one stops all of its processes (agents included) and none of the other's."""
    import psutil

    from inpaint import cluster

    heads = {}
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            heads[name] = cluster.start_head(60, root=tmp_path / name)
        ports = {}
        for name, head in heads.items():
            procs = cluster.session_processes(head["session"])
            assert len(procs) >= 3, procs  # gcs_server, raylet, dashboard and its agents
            pids = {p.pid for p in procs}
            listening = {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
                         if c.pid in pids and c.status == psutil.CONN_LISTEN}
            outside = [a for a in listening if not cluster.is_loopback(a[0])]
            assert not outside, outside
            ports[name] = {port for _, port in listening}
        assert ports["a"] and not ports["a"] & ports["b"], ports
        assert 10001 not in ports["a"] | ports["b"]
        a_procs = cluster.session_processes(heads["a"]["session"])
        assert cluster.stop_head(tmp_path / "a")
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in a_procs)
        assert cluster.session_processes(heads["a"]["session"]) == []
        assert cluster.running_head(tmp_path / "b") is not None
        b_procs = cluster.session_processes(heads["b"]["session"])
        shutil.rmtree(tmp_path / "b")  # the repository deleted under a live head: its watchdog stops it
        deadline = time.monotonic() + 30
        while cluster.session_processes(heads["b"]["session"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in b_procs)
    finally:
        for name in heads:
            cluster.stop_head(tmp_path / name)

