"""The network proxy, observed from outside with plain ZeroMQ sockets (no nodes).

Each test plays the nodes itself: a DEALER with routing id = src connected to
``proxy.listen[dest]`` sends, and a ROUTER bound at ``nodes[dest].peer_bind``
receives. The proxy runs as a real process (``python -m faults.netproxy``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import psutil
import pytest
import zmq

from faults.proxyctl import ProxyControl, ProxyError, request
from nodes.common import clusterfile

pytestmark = pytest.mark.timeout(60)

NODES = ["n1", "n2", "n3"]


def write_cluster(tmp: Path) -> Path:
    """A --net proxy cluster.json for NODES, as a run writes it."""
    return clusterfile.write_cluster(tmp, len(NODES), net="proxy")


class Net:
    """Fake nodes around one proxy process."""

    def __init__(self, tmp: Path, extra: list[str] | None = None) -> None:
        self.path = write_cluster(tmp)
        self.cluster = clusterfile.load_cluster(self.path)
        assert self.cluster.proxy is not None and self.cluster.proxy.control is not None
        self.ctx = zmq.Context()
        self.routers: dict[str, zmq.Socket] = {}
        for n in NODES:
            r = self.ctx.socket(zmq.ROUTER)
            r.setsockopt(zmq.LINGER, 0)
            r.bind(self.cluster.nodes[n].peer_bind)
            self.routers[n] = r
        self.dealers: dict[tuple[str, str], zmq.Socket] = {}
        self.log = open(tmp / "proxy.log", "ab")  # noqa: SIM115 -- closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faults.netproxy", "--cluster", str(self.path), "--seed", "1",
             *(extra or [])],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.control = ProxyControl(self.cluster.proxy.control)
        deadline = time.monotonic() + 15
        while not self.control.ping():
            assert self.proc.poll() is None, "proxy exited at start"
            assert time.monotonic() < deadline, "proxy never answered ping"

    def dealer(self, src: str, dest: str) -> zmq.Socket:
        if (src, dest) not in self.dealers:
            d = self.ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            d.setsockopt(zmq.ROUTING_ID, src.encode())
            d.connect(self.cluster.proxy.listen[dest])
            self.dealers[(src, dest)] = d
        return self.dealers[(src, dest)]

    def send(self, src: str, dest: str, msg: dict) -> None:
        self.dealer(src, dest).send(msgpack.packb({"src": src, "dest": dest, **msg}))

    def recv_all(self, dest: str, quiet_s: float = 0.3) -> list[tuple[str, dict]]:
        """Everything that reaches ``dest`` until it has been quiet for ``quiet_s``."""
        r = self.routers[dest]
        got = []
        while r.poll(int(quiet_s * 1000)):
            while True:
                try:
                    ident, body = r.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got.append((ident.decode(), msgpack.unpackb(body)))
        return got

    def connect_link(self, src: str, dest: str) -> None:
        """Send probes until one crosses src -> dest (the proxy connects lazily
        and drops what it cannot deliver yet), then drain."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.send(src, dest, {"type": "probe"})
            if self.routers[dest].poll(100):
                self.recv_all(dest, 0.2)
                return
        raise AssertionError(f"link {src}->{dest} never carried a message")

    def wait_counter(self, link: str, key: str, at_least: int) -> None:
        """Until the proxy has counted ``at_least`` of ``key`` on ``link``: a send
        returns once ZeroMQ queued it, before the proxy has read it."""
        deadline = time.monotonic() + 10
        while self.control.counters()["links"].get(link, {}).get(key, 0) < at_least:
            assert time.monotonic() < deadline, f"{link} never counted {at_least} {key}"
            time.sleep(0.01)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for s in [*self.routers.values(), *self.dealers.values()]:
            s.close(linger=0)
        self.ctx.destroy(linger=0)  # closes any socket a failed test left open: never hangs
        self.log.close()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path)
    try:
        yield n
    finally:
        n.close()


def test_forwards_with_the_source_as_routing_id(net: Net) -> None:
    net.connect_link("n1", "n2")
    for i in range(10):
        net.send("n1", "n2", {"type": "append", "i": i})
    got = net.recv_all("n2")
    assert [(src, m["i"]) for src, m in got] == [("n1", i) for i in range(10)]
    counters = net.control.counters()["links"]
    assert counters["n1->n2"]["delivered"] >= 10
    assert counters["n1->n2"]["dropped"] == 0


def test_a_restarted_destination_is_reached_again_and_a_restarted_source_keeps_its_id(
        net: Net) -> None:
    net.connect_link("n1", "n2")
    net.routers["n2"].close(linger=0)  # n2 dies: the proxy's connection to it breaks
    r = net.ctx.socket(zmq.ROUTER)
    r.setsockopt(zmq.LINGER, 0)
    net.routers["n2"] = r  # closed by net.close() whatever happens below
    deadline = time.monotonic() + 10
    while True:  # ... and comes back at the same address
        try:
            r.bind(net.cluster.nodes["n2"].peer_bind)
            break
        except zmq.ZMQError:  # libzmq closes the old listener in its I/O thread, later
            assert time.monotonic() < deadline, "the old listener never went away"
            time.sleep(0.05)
    net.connect_link("n1", "n2")
    old = net.dealers.pop(("n1", "n2"))
    old.close(linger=0)  # n1 restarts: a new connection with the same routing id
    net.connect_link("n1", "n2")
    net.send("n1", "n2", {"type": "append", "i": 7})
    assert [(src, m["i"]) for src, m in net.recv_all("n2")] == [("n1", 7)]


def test_grudge_drops_one_direction_and_state_matches(net: Net) -> None:
    for a, b in [("n1", "n2"), ("n2", "n1"), ("n3", "n2")]:
        net.connect_link(a, b)
    reply = net.control.set_grudge({"n2": ["n1"]})  # n2 cannot hear n1
    assert reply["grudge"] == {"n2": ["n1"]}
    assert net.control.state()["grudge"] == {"n2": ["n1"]}
    for i in range(20):
        net.send("n1", "n2", {"type": "vote", "i": i})
        net.send("n2", "n1", {"type": "vote", "i": i})
        net.send("n3", "n2", {"type": "vote", "i": i})
    to_n2 = net.recv_all("n2")
    to_n1 = net.recv_all("n1")
    assert {src for src, _ in to_n2} == {"n3"}, "n2 must hear n3 but not n1"
    assert len(to_n1) == 20, "the other direction n2 -> n1 stays open"
    counters = net.control.counters()["links"]
    assert counters["n1->n2"]["dropped"] == 20
    # the partition's evidence: cut on exactly the cut link, nowhere else
    assert {link: c["cut"] for link, c in counters.items() if c["cut"]} == {"n1->n2": 20}

    net.control.heal()
    assert net.control.state()["grudge"] == {}
    net.send("n1", "n2", {"type": "vote", "i": 99})
    assert [m["i"] for _, m in net.recv_all("n2")] == [99]


def test_measured_loss_is_close_to_the_configured_rate(net: Net) -> None:
    net.connect_link("n1", "n3")
    net.control.counters(reset=True)
    net.control.set_links({"loss": 0.3})
    total = 4000
    for i in range(total):
        net.send("n1", "n3", {"type": "append", "i": i})
    got = net.recv_all("n3", 0.5)
    loss = 1 - len(got) / total
    # binomial sd = sqrt(0.3 * 0.7 / 4000) = 0.0072; allow 5 sd
    assert abs(loss - 0.3) < 0.036, f"measured loss {loss:.3f}, configured 0.3"
    c = net.control.counters()["links"]["n1->n3"]
    assert c["delivered"] == len(got) and c["dropped"] == total - len(got)
    assert c["cut"] == 0, "a loss is not a cut"
    assert net.control.state()["default"]["loss"] == 0.3


def test_per_link_faults_leave_other_links_alone(net: Net) -> None:
    net.connect_link("n1", "n2")
    net.connect_link("n3", "n2")
    net.control.set_links({"loss": 1.0}, links=[("n1", "n2")])
    for i in range(50):
        net.send("n1", "n2", {"type": "x", "i": i})
        net.send("n3", "n2", {"type": "x", "i": i})
    got = net.recv_all("n2")
    assert {s for s, _ in got} == {"n3"} and len(got) == 50
    state = net.control.state()
    assert state["links"] == [{"src": "n1", "dest": "n2", "faults": state["links"][0]["faults"]}]
    assert state["links"][0]["faults"]["loss"] == 1.0


def test_fixed_delay_holds_messages_back(net: Net) -> None:
    net.connect_link("n2", "n3")
    net.control.set_links({"delay_ms": 200, "delay_dist": "fixed"})
    r = net.routers["n3"]
    t0 = time.monotonic()
    net.send("n2", "n3", {"type": "x"})
    assert r.poll(5000), "a delayed message must still arrive"
    elapsed = time.monotonic() - t0
    r.recv_multipart()
    assert 0.19 <= elapsed < 2.0, f"arrived after {elapsed:.3f} s, expected about 0.2 s"


@pytest.mark.parametrize("dist", ["uniform", "exponential"])
def test_random_delays_arrive_and_count(net: Net, dist: str) -> None:
    net.connect_link("n2", "n3")
    net.control.counters(reset=True)
    net.control.set_links({"delay_ms": 5, "delay_dist": dist, "delay_max_ms": 30})
    for i in range(100):
        net.send("n2", "n3", {"type": "x", "i": i})
    got = net.recv_all("n3", 0.5)
    assert sorted(m["i"] for _, m in got) == list(range(100))
    assert net.control.counters()["links"]["n2->n3"]["delayed"] == 100


def test_duplication_and_reordering(net: Net) -> None:
    net.connect_link("n1", "n2")
    net.control.set_links({"duplicate": 1.0})
    for i in range(20):
        net.send("n1", "n2", {"type": "x", "i": i})
    got = [m["i"] for _, m in net.recv_all("n2")]
    assert sorted(got) == sorted(list(range(20)) * 2), "every message arrives exactly twice"

    net.control.set_links({"reorder": 0.5, "reorder_ms": 40})
    for i in range(200):
        net.send("n1", "n2", {"type": "x", "i": i})
        time.sleep(0.001)
    got = [m["i"] for _, m in net.recv_all("n2", 0.5)]
    assert sorted(got) == list(range(200)), "reordering loses nothing"
    assert got != sorted(got), "some messages were overtaken"


def test_malformed_control_requests_get_errors_not_crashes(net: Net) -> None:
    addr = net.control.addr
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(addr)
    try:
        raw.send(b"\xc1 not msgpack")
        assert raw.poll(3000)
        reply = msgpack.unpackb(raw.recv())
        assert reply["ok"] is False and "malformed" in reply["error"]
    finally:
        raw.close()
    bad = [
        [1, 2, 3],
        {"op": "nope"},
        {"op": "grudge", "grudge": {"n9": ["n1"]}},
        {"op": "grudge", "grudge": {"n1": "n2"}},
        {"op": "links", "faults": {"loss": 2}},
        {"op": "links", "faults": {"delay_dist": "pareto"}},
        {"op": "links", "faults": {"lost": 0.1}},
        {"op": "links", "faults": {"loss": 0.1}, "links": [["n1", "n1"]]},
        {"op": "links", "faults": {"loss": 0.1}, "links": 7},
        {"op": "links", "faults": {"loss": 0.1}, "links": [[["n1"], "n2"]]},
        {"op": "links", "faults": {"delay_ms": 5, "delay_max_ms": 1, "delay_dist": "uniform"}},
        {"op": "grudge", "grudge": {"n1": [["n2"]]}},
        {1: 2},
    ]
    for req in bad:
        with pytest.raises(ProxyError, match="refused"):
            request(addr, req)  # type: ignore[arg-type]
    assert net.proc.poll() is None
    assert net.control.state()["grudge"] == {} and net.control.state()["default"] is None


def test_journal_records_each_message(tmp_path: Path) -> None:
    journal = tmp_path / "net.jsonl"
    n = Net(tmp_path, ["--journal", str(journal)])
    try:
        n.connect_link("n1", "n2")
        n.control.set_grudge({"n2": ["n1"]})
        n.send("n1", "n2", {"type": "request_vote"})
        n.wait_counter("n1->n2", "cut", 1)  # dropped under the grudge, not after the heal
        n.control.heal()
        n.send("n1", "n2", {"type": "append_entries"})
        n.recv_all("n2")
        n.proc.send_signal(signal.SIGTERM)
        assert n.proc.wait(10) == 0
        lines = [json.loads(x) for x in journal.read_text().splitlines()]
        tail = [(x["src"], x["dest"], x["type"], x["result"]) for x in lines if x["type"] != "probe"]
        assert tail == [
            ("n1", "n2", "request_vote", "dropped"),
            ("n1", "n2", "append_entries", "delivered"),
        ]
        assert all(isinstance(x["time"], int) for x in lines)
    finally:
        n.close()


def test_sigterm_exits_cleanly(net: Net) -> None:
    net.proc.send_signal(signal.SIGTERM)
    assert net.proc.wait(5) == 0


def test_exits_when_its_parent_dies(tmp_path: Path) -> None:
    path = write_cluster(tmp_path)
    # A middle process starts the proxy, prints its PID, then waits; we SIGKILL it.
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'faults.netproxy', '--cluster', {str(path)!r}])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    proxy_pid = None
    try:
        assert middle.stdout is not None
        proxy_pid = int(middle.stdout.readline())
        proxy = psutil.Process(proxy_pid)
        control = ProxyControl(str(clusterfile.load_cluster(path).proxy.control))
        deadline = time.monotonic() + 15
        while not control.ping():
            assert time.monotonic() < deadline
        middle.kill()
        middle.wait(5)
        gone, _ = psutil.wait_procs([proxy], timeout=5)
        assert gone, "the proxy outlived its parent"
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait(5)
        if proxy_pid is not None:
            try:  # still ours only if it is the proxy of this test's cluster file
                p = psutil.Process(proxy_pid)
                if str(path) in p.cmdline():
                    p.kill()
            except psutil.Error:
                pass


def test_bad_cluster_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    def proxy_on(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "faults.netproxy", "--cluster", str(path)],
                              capture_output=True, text=True, timeout=30, check=False)

    direct = proxy_on(clusterfile.write_cluster(tmp_path / "direct", 3, net="direct"))
    assert direct.returncode == 2
    assert direct.stderr.count("\n") == 1 and "proxy.control" in direct.stderr
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"nodes": {"n1": {"peer_bind": "tcp://127.0.0.1:1"}}}))
    bad = proxy_on(broken)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "client_bind" in bad.stderr
    missing = proxy_on(tmp_path / "nope.json")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nope.json" in missing.stderr
