"""Three real Raft node processes: crash the leader under load, restart, converge.

What must hold (issue 2):
- kill -9 of the leader while clients write: a new leader takes over and
  writes are acknowledged again;
- every acknowledged write survives (each writer owns one key and writes
  1, 2, 3, ... in order, so the key's final value is at least the last
  acknowledged one, and at most the last one attempted);
- the restarted node catches up and all nodes converge on one commit index;
- a cluster restarted from snapshot plus log has exactly the state it
  acknowledged.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest
import zmq

from harness.cluster import LocalCluster
from nodes.client import request
from nodes.common.clusterfile import write_cluster
from nodes.common.wire import call

pytestmark = pytest.mark.process

# The same contract holds for any system: NODE_PROCESS_SYSTEM=paxos runs these on Paxos.
SYSTEM = os.environ.get("NODE_PROCESS_SYSTEM", "raft")
RAFT = [sys.executable, "-m", "nodes", SYSTEM]


def raft_available() -> bool:
    try:
        module = importlib.import_module(f"nodes.{SYSTEM}")
    except ImportError:
        return False
    return getattr(module, "PROTOCOL", None) is not None


needs_raft = pytest.mark.skipif(not raft_available(), reason="nodes.raft.PROTOCOL not there yet")


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    options = getattr(request, "param", None) or {}
    cj = write_cluster(tmp_path, 3, options=options)
    lc = LocalCluster(cj, RAFT, tmp_path / "logs")
    try:  # close() ends every process it started, by PID, even if the test failed
        lc.start_all()
        lc.wait_ready(30)
        yield lc
    finally:
        lc.close()


def statuses(lc: LocalCluster) -> dict[str, dict[str, Any] | None]:
    return {n: (call(lc.client_addrs[n], {"op": "status"}, 0.5) if lc.is_running(n) else None)
            for n in lc.node_ids}


def wait_for_leader(lc: LocalCluster, timeout: float, not_node: str | None = None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node, st in statuses(lc).items():
            if st and st.get("role") == "leader" and node != not_node:
                return node
        time.sleep(0.02)
    raise AssertionError(f"no leader (other than {not_node}) within {timeout} s: {statuses(lc)}")


def wait_converged(lc: LocalCluster, timeout: float) -> dict[str, dict[str, Any]]:
    """All nodes report the same commit index and have applied it."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = statuses(lc)
        if all(last.values()):
            commits = {st["commit_index"] for st in last.values()}
            applied = {st["last_applied"] for st in last.values()}
            if len(commits) == 1 and applied == commits:
                return last  # type: ignore[return-value]
        time.sleep(0.05)
    raise AssertionError(f"nodes did not converge within {timeout} s: {last}")


class Writer(threading.Thread):
    """Writes 1, 2, 3, ... to its own key, one at a time, until stopped."""

    def __init__(self, lc: LocalCluster, key: str) -> None:
        super().__init__(daemon=True)
        self.addrs = dict(lc.client_addrs)
        self.key = key
        self.acked = 0  # highest acknowledged value
        self.attempted = 0  # highest value ever sent
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            value = self.attempted + 1
            self.attempted = value
            _, reply = request(self.addrs, {"op": "write", "key": self.key, "value": value}, 2.0)
            if reply is not None and reply.get("ok"):
                self.acked = value
            elif reply is None:
                time.sleep(0.01)  # unknown outcome: move on to a new value


def read_key(lc: LocalCluster, key: str) -> Any:
    _, reply = request(dict(lc.client_addrs), {"op": "read", "key": key}, 10.0)
    assert reply is not None and reply["ok"], f"read of {key} failed: {reply}"
    return reply["value"]


@needs_raft
@pytest.mark.timeout(150)
def test_kill_leader_under_writes_survives_and_converges(cluster: LocalCluster) -> None:
    lc = cluster
    leader = wait_for_leader(lc, 15)
    writers = [Writer(lc, f"w{i}") for i in range(4)]
    for w in writers:
        w.start()
    try:
        deadline = time.monotonic() + 10
        while min(w.acked for w in writers) < 20:
            assert time.monotonic() < deadline, "writes are not being acknowledged"
            time.sleep(0.01)
        lc.kill(leader)
        before = {w.key: w.acked for w in writers}
        new_leader = wait_for_leader(lc, 10, not_node=leader)
        assert new_leader != leader
        deadline = time.monotonic() + 10
        while not all(w.acked > before[w.key] + 10 for w in writers):
            assert time.monotonic() < deadline, f"writes stalled after the kill: {statuses(lc)}"
            time.sleep(0.01)
        lc.start(leader)  # the old leader comes back and must catch up
        lc.wait_ready(10)
        before = {w.key: w.acked for w in writers}
        deadline = time.monotonic() + 10
        while not all(w.acked > before[w.key] for w in writers):  # writes go on while it rejoins
            assert time.monotonic() < deadline, f"writes stalled on rejoin: {statuses(lc)}"
            time.sleep(0.01)
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(10)
    wait_converged(lc, 20)
    for w in writers:
        value = read_key(lc, w.key)
        assert w.acked <= value <= w.attempted, (
            f"{w.key}: acknowledged up to {w.acked}, attempted up to {w.attempted}, read {value}")


@needs_raft
@pytest.mark.timeout(150)
@pytest.mark.parametrize("cluster", [{"snapshot_entries": 50}], indirect=True)
def test_restart_from_snapshot_plus_log_has_exactly_the_acknowledged_state(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    lc = cluster
    wait_for_leader(lc, 15)
    acked: dict[str, int] = {}
    for i in range(230):  # several snapshots' worth, plus a log tail past the last one
        key = f"k{i % 17}"
        _, reply = request(dict(lc.client_addrs), {"op": "write", "key": key, "value": i}, 5.0)
        assert reply is not None and reply["ok"], f"write {i} failed: {reply}"
        acked[key] = i
    wait_converged(lc, 20)
    for node in lc.node_ids:
        assert (tmp_path / "data" / node / "snapshot").exists(), f"{node} never snapshotted"
    for node in lc.node_ids:
        lc.kill(node)
    for node in lc.node_ids:
        lc.start(node)
    lc.wait_ready(30)
    wait_for_leader(lc, 15)
    assert {k: read_key(lc, k) for k in acked} == acked
    # Every node replayed the same state: each applies everything the leader committed.
    wait_converged(lc, 20)
    # And a node that restarts alone, from its own snapshot and log, rejoins without loss.
    leader = wait_for_leader(lc, 15)
    lc.kill(leader)
    wait_for_leader(lc, 15, not_node=leader)
    assert {k: read_key(lc, k) for k in acked} == acked
    lc.start(leader)
    wait_converged(lc, 20)


# -- process life cycle (the driver, with the trivial tests/solo_core.py protocol) ----

SOLO = [sys.executable, str(Path(__file__).resolve().parent / "solo_core.py")]


def wait_status(addr: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = call(addr, {"op": "status"}, 0.3)
        if st is not None:
            return st
    raise AssertionError(f"no status from {addr} within {timeout} s")


@pytest.mark.timeout(60)
def test_sigterm_is_a_clean_exit_0(tmp_path: Path) -> None:
    cj = write_cluster(tmp_path, 1)
    proc = subprocess.Popen(SOLO + ["--id", "n1", "--cluster", str(cj)],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_status(json.loads(cj.read_text())["nodes"]["n1"]["client_bind"], 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "stopped (SIGTERM)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(60)
def test_node_exits_when_its_parent_dies(tmp_path: Path) -> None:
    cj = write_cluster(tmp_path, 1)
    # A parent that starts the node (without PR_SET_PDEATHSIG) and reports its pid.
    parent_code = (
        "import subprocess, sys; "
        f"p = subprocess.Popen({SOLO + ['--id', 'n1', '--cluster', str(cj)]!r}, "
        "stderr=subprocess.DEVNULL); print(p.pid, flush=True); p.wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    node: psutil.Process | None = None
    try:
        node = psutil.Process(int(parent.stdout.readline()))
        wait_status(json.loads(cj.read_text())["nodes"]["n1"]["client_bind"], 20)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(node):
            assert time.monotonic() < deadline, "node outlived its parent by 10 s"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if node is not None and alive(node):
            node.kill()


@pytest.mark.timeout(60)
def test_pipelined_writes_share_fsyncs(tmp_path: Path) -> None:
    """Group commit end to end: 90 writes sent at once land in a few log frames."""
    from nodes.common.storage import HEADER

    cj = write_cluster(tmp_path, 1)
    addr = json.loads(cj.read_text())["nodes"]["n1"]["client_bind"]
    with LocalCluster(cj, SOLO, tmp_path / "logs") as lc:
        lc.start_all()
        lc.wait_ready(20)
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(addr)
            for i in range(90):  # below the default snapshot interval: no compaction
                sock.send(msgpack.packb({"id": i, "op": "write", "key": f"k{i}", "value": i}))
            replies = set()
            while len(replies) < 90:
                assert sock.poll(10_000), f"only {len(replies)} of 90 replies"
                reply = msgpack.unpackb(sock.recv())
                assert reply["ok"], reply
                replies.add(reply["id"])
        finally:
            sock.close()
    blob = (tmp_path / "data" / "n1" / "log").read_bytes()
    frames, pos = 0, 0
    while pos < len(blob):
        frames += 1
        pos += HEADER.size + HEADER.unpack_from(blob, pos)[1]
    assert frames < 30, f"90 pipelined writes took {frames} fsynced frames"
    print(f"90 pipelined writes: {frames} log frames (fsyncs)")


@pytest.mark.timeout(90)
def test_mkcluster_and_client_cli_by_hand(tmp_path: Path) -> None:
    """The README's by-hand session, on the trivial protocol: mkcluster, write, read, cas."""
    root = Path(__file__).resolve().parents[1]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], cwd=root, capture_output=True,
                              text=True, timeout=30, check=False)

    made = cli("nodes.mkcluster", "--nodes", "1", "--dir", str(tmp_path))
    assert made.returncode == 0 and "python -m nodes raft --id n1" in made.stdout
    cj = str(tmp_path / "cluster.json")
    with LocalCluster(Path(cj), SOLO, tmp_path / "logs") as lc:
        lc.start_all()
        lc.wait_ready(20)
        client = ("nodes.client", "--cluster", cj)
        w = cli(*client, "write", "greeting", "hello")
        assert w.returncode == 0 and json.loads(w.stdout) == {"node": "n1", "ok": True}
        r = cli(*client, "read", "greeting")
        assert json.loads(r.stdout)["value"] == "hello"
        c = cli(*client, "cas", "greeting", "nope", "bye")
        assert c.returncode == 1 and json.loads(c.stdout)["error"] == "cas_mismatch"
        c = cli(*client, "cas", "greeting", "hello", "[1, 2]")
        assert c.returncode == 0
        assert json.loads(cli(*client, "read", "greeting").stdout)["value"] == [1, 2]
        s = cli(*client, "status")
        assert s.returncode == 0 and s.stdout.startswith("n1: {") and '"pid"' in s.stdout
    bad = cli("nodes.client", "--cluster", str(tmp_path / "missing.json"), "status")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
