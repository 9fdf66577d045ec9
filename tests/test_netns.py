"""Kernel-level partitions (--net netns), observed with real UDP packets.

Runs as root on Linux; otherwise every test skips with the reason. When
``nft`` is missing and we are root, the fixture installs Debian's nftables
package (the project's only apt dependency, needed by these tests alone).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from faults import cleanup, netns, owner
from faults.netns import NetnsCluster, NetnsError, cleanup_stale, unavailable_reason
from harness import cli
from nodes.common import clusterfile

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


@pytest.fixture
def usable(netns_usable: None) -> None:
    """This module's name for conftest's ``netns_usable``."""


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
    net = nets.network()
    cut = {link: c["cut"] for link, c in net.counters()["links"].items() if c["cut"]}
    assert list(cut) == ["n1->n2"] and cut["n1->n2"] >= 100, "counted on the cut link only"
    net.heal()
    assert net.state() == {"grudge": {}, "loss": []}
    assert net.counters()["links"]["n1->n2"]["cut"] == cut["n1->n2"], "a heal keeps the count"
    assert receive(nets, "n2", {"n1": 100}) == {"n1": 100}


def test_measured_loss_is_close_to_the_configured_rate(nets: NetnsCluster) -> None:
    net = nets.network()
    net.set_links({"loss": 0.3}, [("n1", "n3")])
    assert net.state()["loss"] == [{"src": "n1", "dest": "n3", "loss": 0.3}]
    got = receive(nets, "n3", {"n1": 3000, "n2": 500})
    loss = 1 - got.get("n1", 0) / 3000
    assert abs(loss - 0.3) < 0.05, f"measured loss {loss:.3f}, configured 0.3"
    assert got["n2"] == 500, "other links are untouched"
    counted = net.counters()["links"]
    assert counted["n1->n3"]["dropped"] == 3000 - got.get("n1", 0)
    assert counted["n1->n3"]["cut"] == 0 and counted["n2->n3"]["dropped"] == 0
    with pytest.raises(NetnsError, match="only loss"):
        net.set_links({"delay_ms": 10})


def test_host_reaches_every_node_and_cluster_json_is_rewritten(
    nets: NetnsCluster, tmp_path: Path
) -> None:
    path = clusterfile.write_cluster(tmp_path, len(IDS), net="proxy")
    port = clusterfile.load_cluster(path).nodes["n2"].peer_bind.rsplit(":", 1)[1]
    nets.rewrite_cluster(path)
    new = clusterfile.load_cluster(path)
    assert new.proxy is None
    assert new.nodes["n2"].peer_bind == f"tcp://{nets.addr('n2')}:{port}"
    assert new.routes["n1"]["n3"] == new.nodes["n3"].peer_bind
    assert clusterfile.read_document(path)["netns"]["namespaces"]["n1"] == nets.ns("n1")
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


# --- ownership: what a dead run left is removed, a live run's never ----------------

# An owner: a process that sets up namespaces, prints its tag, and closes them
# (normally, through ``with``) when its stdin closes.
# With a node, it also starts a sleeping "node" in n1's namespace that does
# not die with it (as a node started off the main thread would not), and
# prints that node's PID.
OWNER = (
    "import subprocess, sys\n"
    "from faults.netns import NetnsCluster\n"
    "with NetnsCluster(['n1', 'n2']) as n:\n"
    "    print(n.tag, flush=True)\n"
    "    if sys.argv[1:] == ['node']:\n"
    "        cmd = [sys.executable, '-c', 'import time; time.sleep(120)', '--id', 'n1']\n"
    "        print(subprocess.Popen(n.command(cmd)).pid, flush=True)\n"
    "    sys.stdin.read()\n"
)


class OwnerProcess:
    """One run's namespaces, held by a child process this test can kill."""

    def __init__(self, node: bool = False) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", OWNER, *(["node"] if node else [])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.tag = self.proc.stdout.readline().strip()
        assert self.tag, "the owner did not set up its namespaces"
        self.node_pid = int(self.proc.stdout.readline()) if node else None

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def end(self) -> None:
        """Let the owner clean up after itself, as a finished run does."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(30) == 0

    def close(self) -> None:
        """Whatever happened: the process is gone and so is every namespace of its tag."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.tag:
            netns._remove(self.tag, kill=True)


@pytest.fixture
def owners(usable: None, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OwnerProcess]]:
    """Owner processes whose records (like the cleaners' of this test, and the
    children's, which inherit the variable) are in a folder of this test's own,
    so that concurrent tests neither clean them nor are cleaned by them."""
    monkeypatch.setenv(owner.STATE_DIR_ENV, str(tmp_path / "owners"))
    made: list[OwnerProcess] = []

    def make(node: bool = False) -> OwnerProcess:
        made.append(OwnerProcess(node))
        return made[-1]

    try:
        yield make
    finally:
        for o in made:
            o.close()


def harness_clean() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "clean"], capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_live_runs_namespaces_survive_every_cleanup(owners: Callable[..., OwnerProcess]) -> None:
    live = owners()
    before = leftovers(live.tag)
    assert len(before) == 4, "hub, two nodes and the root link"
    cleanup_stale()
    assert leftovers(live.tag) == before
    out = harness_clean()
    assert out.returncode == 0, out.stderr
    assert live.tag not in out.stdout
    assert leftovers(live.tag) == before
    live.end()
    assert not leftovers(live.tag)
    assert owner.read(netns.KIND, live.tag) is None, "the record goes with the namespaces"


def test_a_tag_in_use_is_refused_and_its_namespaces_kept(
    owners: Callable[..., OwnerProcess],
) -> None:
    live = owners()
    before = leftovers(live.tag)
    clash = NetnsCluster(IDS, tag=live.tag)
    with pytest.raises(NetnsError, match="in use"):
        clash.setup()
    clash.close()
    assert leftovers(live.tag) == before, "a run removes only what it claimed"
    live.end()


def test_a_killed_runs_namespaces_are_removed_by_the_next_setup(
    owners: Callable[..., OwnerProcess],
) -> None:
    dead = owners()
    dead.kill()
    assert leftovers(dead.tag), "a SIGKILLed owner cannot clean up itself"
    with NetnsCluster(IDS) as nets:
        assert not leftovers(dead.tag)
        assert owner.read(netns.KIND, dead.tag) is None
        assert leftovers(nets.tag)
    assert not leftovers(nets.tag)


def test_harness_clean_removes_a_killed_runs_and_not_a_live_ones(
    owners: Callable[..., OwnerProcess],
) -> None:
    live, dead = owners(), owners()
    kept = leftovers(live.tag)
    dead.kill()
    out = harness_clean()
    assert out.returncode == 0, out.stderr
    removed = [line for line in out.stdout.splitlines() if f"run {dead.tag}, " in line]
    assert {line.split()[2] for line in removed if line.startswith("removed namespace")} == {
        f"chs-{dead.tag}-hub", f"chs-{dead.tag}-n1", f"chs-{dead.tag}-n2"}
    assert any(line.startswith("removed owner record") for line in removed)
    assert not leftovers(dead.tag)
    assert leftovers(live.tag) == kept, "the live run keeps everything"
    assert live.tag not in out.stdout
    live.end()


def test_a_killed_runs_lingering_node_is_ended_with_its_namespace(
    owners: Callable[..., OwnerProcess],
) -> None:
    dead = owners(node=True)
    assert dead.node_pid is not None
    node = psutil.Process(dead.node_pid)
    deadline = time.monotonic() + 30
    while node.cmdline()[1:2] != ["-c"]:  # the launcher has not exec'd the node yet
        assert time.monotonic() < deadline, "the node never started in its namespace"
        time.sleep(0.02)
    dead.kill()
    assert node.is_running() and node.status() != psutil.STATUS_ZOMBIE
    removed = cleanup_stale()
    assert any(line.startswith(f"process {dead.node_pid} (killed) in chs-{dead.tag}-n1")
               for line in removed), removed
    try:
        assert node.wait(10) is not None or not node.is_running()
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        assert node.status() == psutil.STATUS_ZOMBIE, "the node outlived its run"
    assert not leftovers(dead.tag)


# --- owner records (no root needed) ----------------------------------------------------


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(owner.STATE_DIR_ENV, str(tmp_path))
    return tmp_path


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_an_owner_is_gone_only_when_provably_so() -> None:
    me = owner.Owner.me()
    assert not me.is_gone()
    assert owner.Owner(me.pid, me.create_time + 0.001, me.boot_id, me.pid_ns).is_gone() is False
    assert owner.Owner(me.pid, me.create_time - 5, me.boot_id, me.pid_ns).is_gone(), "PID reused"
    assert owner.Owner(me.pid, me.create_time, "another-boot", me.pid_ns).is_gone()
    assert not owner.Owner(me.pid, me.create_time - 5, me.boot_id, "pid:[1]").is_gone(), (
        "a PID of another PID namespace proves nothing")
    if psutil.pid_exists(pid := dead_pid()):
        pytest.skip("the dead child's PID was taken again at once")
    assert owner.Owner(pid, me.create_time, me.boot_id, me.pid_ns).is_gone()


def test_a_claim_is_exclusive_and_only_dead_owners_are_stale(records: Path) -> None:
    assert owner.claim("netns", "aa", {"link": "chsaa"}) is not None
    assert owner.claim("netns", "aa", {}) is None, "one name, one owner"
    rec = owner.read("netns", "aa")
    assert rec is not None and rec.owner == owner.Owner.me() and rec.data == {"link": "chsaa"}
    doc = json.loads(rec.path.read_text())
    doc["pid"] = dead_pid()
    (records / "netns-bb.json").write_text(json.dumps(doc))
    (records / "netns-cc.json").write_text('{"pid": 1, "creat')  # not provably anything
    assert [r.name for r in owner.stale("netns")] == ["bb"]
    owner.release("netns", "bb")
    assert owner.names("netns") == ["aa", "cc"]


def test_harness_clean_without_root_is_one_line_and_exit_2(
    records: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    doc = {**owner.Owner.me().to_dict(), "pid": dead_pid()}
    (records / "netns-dd.json").write_text(json.dumps(doc))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["clean"]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "needs root" in out.err and "dd" in out.err
    assert (records / "netns-dd.json").exists(), "nothing is removed half-way"


def test_harness_clean_with_nothing_left_says_so(
    records: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # the real cleaner over an empty record folder; unowned namespaces of
    # other tests running now are not what this test is about
    monkeypatch.setattr(cleanup, "CLEANERS", (cleanup.Cleaner("netns", cleanup_stale, list),))
    assert cli.main(["clean"]) == 0
    assert capsys.readouterr().out == "nothing to clean\n"


def test_ctrl_c_in_harness_clean_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from harness import clean_cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(clean_cli, "clean", interrupted)
    assert cli.main(["clean"]) == 3
    assert capsys.readouterr().err == "harness clean: interrupted\n"


def test_a_namespace_without_an_owner_record_is_named_and_left_alone(
    usable: None, records: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    ns = f"chs-{secrets.token_hex(3)}-n1"  # ours by its name, but nobody recorded it
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        assert cli.main(["clean"]) == 0
        out = capsys.readouterr().out
        assert f"left alone namespace {ns} (no owner record" in out
        assert ns in netns._namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
