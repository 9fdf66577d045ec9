"""Kernel-level partitions (--net netns), observed with real UDP packets.

Runs as root on Linux; otherwise every test skips with the reason. When
``nft`` is missing and we are root, the fixture installs Debian's nftables
package (the project's only apt dependency, needed by these tests alone).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults import netns
from faults.netns import NetnsCluster, NetnsError, cleanup_stale, unavailable_reason

pytestmark = pytest.mark.timeout(120)

IDS = ["n1", "n2", "n3"]

# A receiver bound on its namespace address counts datagrams by sender until
# the test sends b"end" from the root namespace (never cut by the rules); a
# sender fires COUNT datagrams.
PROBE = r"""
import json, socket, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "recv":
    s.bind((host, port)); s.settimeout(60.0)
    print("ready", flush=True)
    seen = {}
    while True:
        data, (src, _) = s.recvfrom(100)
        if data == b"end":
            break
        seen[src] = seen.get(src, 0) + 1
    print(json.dumps(seen), flush=True)
else:
    count = int(sys.argv[4])
    for i in range(count):
        s.sendto(b"x", (host, port))
        if i % 50 == 0:
            time.sleep(0.001)
"""


def _ensure_tools() -> str | None:
    if sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("nft") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "nftables"]
        if subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
            subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    return unavailable_reason()


@pytest.fixture(scope="module")
def usable() -> None:
    reason = _ensure_tools()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def nets(usable: None) -> Iterator[NetnsCluster]:
    n = NetnsCluster(IDS)
    n.setup()
    try:
        yield n
    finally:
        n.close()
    assert not leftovers(n.tag), "namespaces or links left behind"


def leftovers(tag: str) -> list[str]:
    names = [x for x in netns._namespaces() if x.startswith(f"chs-{tag}-")]
    if Path(f"/sys/class/net/chs{tag}").exists():
        names.append(f"chs{tag}")
    return names


def in_ns(nets: NetnsCluster, node: str, *args: str) -> subprocess.Popen:
    """Run the probe inside ``node``'s namespace through the node launcher."""
    cmd = nets.command([sys.executable, "-c", PROBE, *args, "--id", node])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def end(nets: NetnsCluster, dest: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"end", (nets.addr(dest), port))
    s.close()


def receive(nets: NetnsCluster, dest: str, senders: dict[str, int], port: int = 9000) -> dict:
    """Datagrams ``dest`` received from each sender after each sent ``count``."""
    recv = in_ns(nets, dest, "recv", nets.addr(dest), str(port))
    try:
        assert recv.stdout is not None
        assert recv.stdout.readline().strip() == "ready"
        procs = [in_ns(nets, src, "send", nets.addr(dest), str(port), str(count))
                 for src, count in senders.items()]
        for p in procs:
            assert p.wait(60) == 0
        time.sleep(0.2)  # let the last datagrams cross the bridge
        end(nets, dest, port)
        out, _ = recv.communicate(timeout=30)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    by_addr = {nets.addr(n): n for n in IDS}
    return {by_addr.get(a, a): c for a, c in json.loads(out).items()}


def test_refuses_clearly_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in (unavailable_reason() or "")
    with pytest.raises(NetnsError, match="needs root"):
        NetnsCluster(IDS).setup()


def test_refuses_clearly_when_tools_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "nft" else "/bin/x")
    if sys.platform.startswith("linux"):
        assert "apt-get install nftables" in (unavailable_reason() or "")


def test_nodes_reach_each_other_and_the_partition_cuts_one_direction(nets: NetnsCluster) -> None:
    assert receive(nets, "n2", {"n1": 100, "n3": 100}) == {"n1": 100, "n3": 100}
    state = nets.network().set_grudge({"n2": ["n1"]})  # n2 cannot hear n1
    assert state["grudge"] == {"n2": ["n1"]}, "the rules read back match the grudge"
    assert receive(nets, "n2", {"n1": 100, "n3": 100}) == {"n3": 100}
    assert receive(nets, "n1", {"n2": 100}) == {"n2": 100}, "n2 -> n1 stays open"
    nets.network().heal()
    assert nets.network().state() == {"grudge": {}, "loss": []}
    assert receive(nets, "n2", {"n1": 100}) == {"n1": 100}


def test_measured_loss_is_close_to_the_configured_rate(nets: NetnsCluster) -> None:
    net = nets.network()
    net.set_links({"loss": 0.3}, [("n1", "n3")])
    assert net.state()["loss"] == [{"src": "n1", "dest": "n3", "loss": 0.3}]
    got = receive(nets, "n3", {"n1": 3000, "n2": 500})
    loss = 1 - got.get("n1", 0) / 3000
    assert abs(loss - 0.3) < 0.05, f"measured loss {loss:.3f}, configured 0.3"
    assert got["n2"] == 500, "other links are untouched"
    with pytest.raises(NetnsError, match="only loss"):
        net.set_links({"delay_ms": 10})


def test_host_reaches_every_node_and_cluster_json_is_rewritten(
    nets: NetnsCluster, tmp_path: Path
) -> None:
    doc = {
        "nodes": {n: {"peer_bind": f"tcp://127.0.0.1:{4000 + i}",
                      "client_bind": f"tcp://127.0.0.1:{5000 + i}", "data_dir": "x"}
                  for i, n in enumerate(IDS)},
        "routes": {},
        "proxy": {"control": "tcp://127.0.0.1:1"},
    }
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(doc))
    nets.rewrite_cluster(path)
    new = json.loads(path.read_text())
    assert "proxy" not in new
    assert new["nodes"]["n2"]["peer_bind"] == f"tcp://{nets.addr('n2')}:4001"
    assert new["routes"]["n1"]["n3"] == new["nodes"]["n3"]["peer_bind"]
    assert new["netns"]["namespaces"]["n1"] == nets.ns("n1")
    # the root namespace (where the harness's clients live) reaches a node
    recv = in_ns(nets, "n1", "recv", nets.addr("n1"), "9100")
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            s.sendto(b"x", (nets.addr("n1"), 9100))
        s.close()
        time.sleep(0.2)
        end(nets, "n1", 9100)
        out, _ = recv.communicate(timeout=30)
        assert json.loads(out) == {nets.host_addr: 20}
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


def test_launcher_keeps_the_pid(nets: NetnsCluster) -> None:
    code = "import os, sys; print(os.getpid(), os.readlink('/proc/self/ns/net'), flush=True)"
    p = subprocess.Popen(nets.command([sys.executable, "-c", code, "--id", "n3"]),
                         stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=30)
    pid, ns = out.split()
    assert int(pid) == p.pid, "signals to the PID reach the node itself"
    assert ns != os.readlink("/proc/self/ns/net")


def test_nothing_left_after_ctrl_c(usable: None) -> None:
    nets = NetnsCluster(IDS)
    with pytest.raises(KeyboardInterrupt), nets:
        nets.network().set_grudge({"n1": ["n2"]})
        raise KeyboardInterrupt
    assert not leftovers(nets.tag)


def test_a_killed_owner_is_cleaned_up_next_time(usable: None, tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from faults.netns import NetnsCluster\n"
        "n = NetnsCluster(['n1', 'n2']); n.setup()\n"
        "print(n.tag, flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        tag = p.stdout.readline().strip()
        assert tag and leftovers(tag)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        assert leftovers(tag), "a SIGKILLed owner cannot clean up itself"
        cleanup_stale()
        assert not leftovers(tag)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
