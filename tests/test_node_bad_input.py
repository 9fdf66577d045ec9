"""A node facing bad input: cluster files, damaged data dirs, garbage on its sockets.

The driver and storage are shared by every protocol, so most of this runs
with ``tests/solo_core.py`` (a trivial protocol); the socket test also runs
against the real Raft and Paxos nodes once their cores exist.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster
from nodes.common.storage import HEADER
from nodes.common.wire import call

ROOT = Path(__file__).resolve().parents[1]
SOLO = [sys.executable, str(ROOT / "tests" / "solo_core.py")]

pytestmark = pytest.mark.process


def run_node(argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
    """Run a node that is expected to exit by itself (killed by PID on timeout)."""
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def protocol_available(name: str) -> bool:
    try:
        mod = __import__(f"nodes.{name}", fromlist=["PROTOCOL"])
    except ImportError:
        return False
    return getattr(mod, "PROTOCOL", None) is not None


# -- cluster files ------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", ["{garbage", "[]", '{"nodes": {}}', "\x00\xff\x10" * 20])
def test_garbage_cluster_file_is_one_line_and_exit_2(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "cluster.json"
    bad.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    res = run_node([sys.executable, "-m", "nodes", "raft", "--id", "n1", "--cluster", str(bad)])
    assert res.returncode == 2
    assert str(bad) in one_line(res.stderr)


@pytest.mark.timeout(60)
def test_unknown_id_system_and_missing_file(tmp_path: Path) -> None:
    cj = write_cluster(tmp_path, 3)
    res = run_node([sys.executable, "-m", "nodes", "raft", "--id", "n9", "--cluster", str(cj)])
    assert res.returncode == 2 and "not a node of" in one_line(res.stderr)
    res = run_node([sys.executable, "-m", "nodes", "zab", "--id", "n1", "--cluster", str(cj)])
    assert res.returncode == 2 and "unknown system 'zab'" in one_line(res.stderr)
    res = run_node([sys.executable, "-m", "nodes", "raft", "--id", "n1",
                    "--cluster", str(tmp_path / "nope.json")])
    assert res.returncode == 2 and "cannot read cluster file" in one_line(res.stderr)
    res = run_node([sys.executable, "-m", "nodes", "raft", "--cluster", str(cj)])
    assert res.returncode == 2 and "--id" in one_line(res.stderr)


# -- damaged data directories -------------------------------------------------


def fill_node(tmp_path: Path, writes: int) -> tuple[Path, Path]:
    """Start one solo node, make ``writes`` acknowledged writes (one frame each),
    kill -9 it, and return (cluster.json, its log file)."""
    cj = write_cluster(tmp_path, 1)
    with LocalCluster(cj, SOLO, tmp_path / "logs") as lc:
        lc.start_all()
        lc.wait_ready(20)
        addr = lc.client_addrs["n1"]
        for i in range(writes):
            reply = call(addr, {"op": "write", "key": "k", "value": i}, 15)
            assert reply and reply["ok"], reply
        lc.kill("n1")
    return cj, tmp_path / "data" / "n1" / "log"


def frame_offsets(log: Path) -> list[int]:
    blob = log.read_bytes()
    pos, out = 0, []
    while pos < len(blob):
        out.append(pos)
        pos += HEADER.size + HEADER.unpack_from(blob, pos)[1]
    return out


@pytest.mark.timeout(90)
def test_truncated_log_tail_starts_without_the_torn_write(tmp_path: Path) -> None:
    cj, log = fill_node(tmp_path, 5)
    with open(log, "r+b") as f:  # tear the last write, as a power cut mid-write would
        f.truncate(log.stat().st_size - 3)
    with LocalCluster(cj, SOLO, tmp_path / "logs") as lc:
        lc.start_all()
        lc.wait_ready(20)
        reply = call(lc.client_addrs["n1"], {"op": "read", "key": "k"}, 15)
        assert reply is not None, "no reply to a read after the restart"
        assert reply == {"id": reply["id"], "ok": True, "value": 3}
    assert "dropped a torn log tail" in (tmp_path / "logs" / "n1.log").read_text()


@pytest.mark.timeout(90)
def test_corrupted_log_record_refuses_to_start(tmp_path: Path) -> None:
    cj, log = fill_node(tmp_path, 5)
    offsets = frame_offsets(log)
    data = bytearray(log.read_bytes())
    data[offsets[2] + HEADER.size + 3] ^= 0x20
    log.write_bytes(bytes(data))
    res = run_node(SOLO + ["--id", "n1", "--cluster", str(cj)])
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert line.startswith(f"n1: log record 2 at byte {offsets[2]} ") and "corrupt" in line
    assert log.read_bytes() == bytes(data)  # the evidence is left as it was


@pytest.mark.timeout(60)
def test_corrupted_meta_refuses_to_start(tmp_path: Path) -> None:
    cj = write_cluster(tmp_path, 1)
    (tmp_path / "data" / "n1" / "meta").write_bytes(b"\x52\x4c" + os.urandom(40))
    res = run_node(SOLO + ["--id", "n1", "--cluster", str(cj)])
    assert res.returncode == 2 and "meta file" in one_line(res.stderr)


# -- garbage on the sockets ---------------------------------------------------


def garbage_frames(rng: random.Random) -> list[list[bytes]]:
    """Multipart messages a confused or hostile sender might produce."""
    out: list[list[bytes]] = []
    for _ in range(200):
        out.append([rng.randbytes(rng.randint(0, 300))])
    for obj in (None, 1, "x", [1, 2], {"type": "nope"}, {"id": "1", "op": "write"},
                {"id": 1, "op": "cas", "key": "k"}, {"id": True, "op": "read", "key": "k"},
                {"id": 2, "op": "read", "key": 7}, {"type": "append", "src": 3, "dest": []},
                {"id": 3, "op": "shutdown"}, {"id": 4}):
        out.append([msgpack.packb(obj)])
    out.append([b"a", b"b", b"c"])
    out.append([msgpack.packb({"id": 5, "op": "read", "key": "k"}) + b"trailing"])
    return out


COMMANDS = {
    "solo": SOLO,
    "raft": [sys.executable, "-m", "nodes", "raft"],
    "paxos": [sys.executable, "-m", "nodes", "paxos"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("system", ["solo", "raft", "paxos"])
def test_random_bytes_on_both_sockets_do_not_stop_the_node(tmp_path: Path, system: str) -> None:
    if system != "solo" and not protocol_available(system):
        pytest.skip(f"nodes.{system}.PROTOCOL is not there yet")
    cj = write_cluster(tmp_path, 3)
    nodes = json.loads(cj.read_text())["nodes"]
    rng = random.Random(7)
    ctx = zmq.Context.instance()
    with LocalCluster(cj, COMMANDS[system], tmp_path / "logs") as lc:
        lc.start_all()
        lc.wait_ready(30)
        socks = []
        try:
            for target in ("n1", "n2"):
                for addr, ident in ((nodes[target]["client_bind"], None),
                                    (nodes[target]["peer_bind"], b"n3"),
                                    (nodes[target]["peer_bind"], None)):
                    s = ctx.socket(zmq.DEALER)
                    s.setsockopt(zmq.LINGER, 0)
                    if ident:
                        s.setsockopt(zmq.ROUTING_ID, ident)  # pretend to be a peer
                    s.connect(addr)
                    socks.append(s)
                    for frames in garbage_frames(rng):
                        s.send_multipart(frames)
            # Malformed client requests get a definite "malformed" reply.
            reply = call(nodes["n1"]["client_bind"], {"id": 99, "op": "cas", "key": "k"}, 5)
            assert reply is not None and reply["error"] == "malformed" and reply["definite"]
            # And every node still serves real requests through consensus.
            deadline = time.monotonic() + 20
            ok = None
            while time.monotonic() < deadline and ok is None:
                for node in ("n1", "n2", "n3"):
                    r = call(nodes[node]["client_bind"],
                             {"op": "write", "key": "k", "value": "after-garbage"}, 2)
                    if r and r.get("ok"):
                        ok = node
                        break
                time.sleep(0.05)
            assert ok is not None, "no node accepted a write after the garbage"
            for node in ("n1", "n2", "n3"):
                assert lc.is_running(node), f"{node} died from garbage input"
                assert call(nodes[node]["client_bind"], {"op": "status"}, 5) is not None
        finally:
            for s in socks:
                s.close(linger=0)
    logs = (tmp_path / "logs" / "n1.log").read_text()
    assert "dropped malformed input" in logs
    assert "Traceback" not in logs


@pytest.mark.timeout(60)
def test_state_the_core_cannot_use_refuses_to_start(tmp_path: Path) -> None:
    # A checksummed, well-formed snapshot whose data is not a key-value store.
    from nodes.common.storage import _packb, write_atomic

    cj = write_cluster(tmp_path, 1)
    write_atomic(tmp_path / "data" / "n1" / "snapshot", _packb([5, 1, b"\x01not a store"]))
    res = run_node(SOLO + ["--id", "n1", "--cluster", str(cj)])
    assert res.returncode == 2, res.stderr
    assert "core cannot use" in one_line(res.stderr)
