"""LocalCluster and write_cluster: ports, cluster.json, and process control by PID.

These tests use a tiny stand-in node (written to tmp_path) that keeps the node
contract's ``status`` part, so they need neither Raft nor Paxos.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.cluster import ClusterError, LocalCluster
from nodes.common.clusterfile import free_ports, write_cluster
from nodes.common.wire import call

pytestmark = pytest.mark.process

STUB_NODE = r'''
import argparse, json, os, sys, time
import msgpack, zmq
p = argparse.ArgumentParser()
p.add_argument("--id"); p.add_argument("--cluster")
a = p.parse_args()
spec = json.load(open(a.cluster))["nodes"][a.id]
if os.environ.get("STUB_EXIT"):
    print(f"{a.id}: bad data directory", file=sys.stderr); sys.exit(2)
sock = zmq.Context.instance().socket(zmq.ROUTER)
sock.bind(spec["client_bind"])
print(f"{a.id} serving on {spec['client_bind']}", flush=True)
parent = os.getppid()
while os.getppid() == parent:
    if sock.poll(100):
        rid, frame = sock.recv_multipart()
        req = msgpack.unpackb(frame)
        reply = {"id": req["id"], "ok": True, "role": "follower", "pid": os.getpid()}
        sock.send_multipart([rid, msgpack.packb(reply)])
'''


@pytest.fixture
def stub(tmp_path: Path) -> list[str]:
    script = tmp_path / "stub_node.py"
    script.write_text(STUB_NODE)
    return [sys.executable, str(script)]


def gone(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and
                 psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(1024 < p < 65536 for p in ports)


def test_write_cluster_direct_routes_point_at_peers(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, 3, timing={"heartbeat_ms": 20}, options={"bugs": ["x"]})
    doc = json.loads(path.read_text())
    assert list(doc["nodes"]) == ["n1", "n2", "n3"]
    assert doc["routes"]["n1"] == {
        "n2": doc["nodes"]["n2"]["peer_bind"], "n3": doc["nodes"]["n3"]["peer_bind"]}
    assert doc["timing"] == {"heartbeat_ms": 20}
    assert doc["options"]["bugs"] == ["x"]
    assert "proxy" not in doc
    addrs = [s["peer_bind"] for s in doc["nodes"].values()] + [
        s["client_bind"] for s in doc["nodes"].values()]
    assert len(set(addrs)) == 6 and all(a.startswith("tcp://127.0.0.1:") for a in addrs)
    assert all(Path(s["data_dir"]).is_dir() for s in doc["nodes"].values())


def test_write_cluster_proxy_routes_every_source_to_the_destination_listener(
        tmp_path: Path) -> None:
    doc = json.loads(write_cluster(tmp_path, 3, net="proxy").read_text())
    listen = doc["proxy"]["listen"]
    for src, routes in doc["routes"].items():
        assert src not in routes
        for dest, addr in routes.items():
            assert addr == listen[dest]
    assert doc["proxy"]["control"] not in listen.values()


def test_write_cluster_refuses_nonsense(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_cluster(tmp_path, 0)
    with pytest.raises(ValueError):
        write_cluster(tmp_path, 3, net="carrier-pigeon")


@pytest.mark.timeout(60)
def test_start_kill_pause_resume_close(tmp_path: Path, stub: list[str]) -> None:
    path = write_cluster(tmp_path, 3)
    doc = json.loads(path.read_text())
    cluster = LocalCluster(path, stub, tmp_path / "nodes")
    started: list[int] = []
    try:
        cluster.start_all()
        cluster.wait_ready(20)
        started = [cluster.pid(n) for n in cluster.node_ids]
        assert all(started)
        addr = doc["nodes"]["n2"]["client_bind"]

        old = cluster.pid("n2")
        cluster.kill("n2")
        assert not cluster.is_running("n2") and cluster.pid("n2") is None
        assert not psutil.pid_exists(old)
        assert call(addr, {"op": "status"}, timeout=0.3) is None
        cluster.start("n2")
        cluster.wait_ready(20)
        assert cluster.pid("n2") != old
        started.append(cluster.pid("n2"))
        assert call(addr, {"op": "status"}, timeout=2)["pid"] == cluster.pid("n2")

        cluster.pause("n3")
        assert psutil.Process(cluster.pid("n3")).status() == psutil.STATUS_STOPPED
        assert call(doc["nodes"]["n3"]["client_bind"], {"op": "status"}, timeout=0.3) is None
        cluster.resume("n3")
        assert call(doc["nodes"]["n3"]["client_bind"], {"op": "status"}, timeout=5) is not None

        cluster.pause("n1")  # close() must end a paused process too
        cluster.stop("n3")
        assert not cluster.is_running("n3")
    finally:
        cluster.close()
    assert gone(started), "a process of the cluster outlived close()"
    assert "n1 serving on" in (tmp_path / "nodes" / "n1.log").read_text()


@pytest.mark.timeout(60)
def test_a_node_that_exits_at_once_is_a_one_line_error(tmp_path: Path, stub: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_EXIT", "1")
    path = write_cluster(tmp_path, 2)
    with LocalCluster(path, stub, tmp_path / "nodes") as cluster:
        cluster.start_all()
        with pytest.raises(ClusterError) as info:
            cluster.wait_ready(20)
    message = str(info.value)
    assert "exited with code 2" in message and "bad data directory" in message
    assert "\n" not in message


@pytest.mark.timeout(60)
def test_nodes_die_with_a_sigkilled_harness(tmp_path: Path, stub: list[str]) -> None:
    """The parent-death signal ends the nodes even when close() never runs."""
    path = write_cluster(tmp_path, 2)
    script = (
        "import sys, time\n"
        "from harness.cluster import LocalCluster\n"
        f"c = LocalCluster({str(path)!r}, {stub!r}, {str(tmp_path / 'nodes')!r})\n"
        "c.start_all(); c.wait_ready(20)\n"
        "print(' '.join(str(c.pid(n)) for n in c.node_ids), flush=True)\n"
        "time.sleep(60)\n"
    )
    import subprocess
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert gone(pids), "node processes outlived their SIGKILLed harness"
    finally:
        for pid in pids:  # by PID, and only if it is still this test's stub node
            try:
                proc = psutil.Process(pid)
                if stub[1] in proc.cmdline():
                    proc.kill()
            except psutil.Error:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()
