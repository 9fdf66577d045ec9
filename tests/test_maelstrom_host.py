"""The Maelstrom host as real processes: init, requests and errors, peer messages,
misbehaving programs, kill/pause/restart, and nothing left behind a killed harness."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.cluster import ClusterError, LocalCluster
from maelstrom.final import problems_in
from nodes.common.clusterfile import write_cluster
from nodes.common.wire import call

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]

NODES = Path(__file__).parent / "maelstrom_nodes"


def host(tmp_path: Path, program: str, *extra: str) -> list[str]:
    """The host command for ``program`` (a file in maelstrom_nodes with its flags). The
    trailing ``--tag`` names tmp_path, so no_leftovers sees the exec'd program too."""
    return [sys.executable, "-m", "maelstrom.host", "--init-timeout", "2", *extra, "--command",
            f"{sys.executable} {NODES / program} --tag {tmp_path}"]


@pytest.fixture
def start(tmp_path: Path, no_leftovers: None) -> Iterator:
    made: list[LocalCluster] = []

    def go(program: str, *extra: str, n: int = 3, ready: bool = True) -> LocalCluster:
        cj = write_cluster(tmp_path, n, net="direct")
        lc = LocalCluster(cj, host(tmp_path, program, *extra), tmp_path / "logs")
        made.append(lc)
        lc.start_all()
        if ready:
            lc.wait_ready(20)
        return lc

    try:
        yield go
    finally:
        for lc in made:
            lc.close()


def ask(lc: LocalCluster, node: str, body: dict, timeout: float = 2.0) -> dict | None:
    return call(lc.client_addrs[node], {"client": 1, **body}, timeout)


def test_requests_replies_and_error_codes(start) -> None:
    lc = start("echo.py")
    st = call(lc.client_addrs["n2"], {"op": "status"}, 2)
    assert st["maelstrom_id"] == "n1" and st["pid"] == lc.pid("n2")
    r = ask(lc, "n1", {"type": "echo", "echo": [1, "x"]})
    assert r == {"id": r["id"], "ok": True, "type": "echo_ok", "value": [1, "x"]}
    r = ask(lc, "n3", {"type": "generate"})
    assert r == {"id": r["id"], "ok": False, "error": "10 not-supported", "code": 10,
                 "text": "unsupported type 'generate'", "definite": True}
    bad = call(lc.client_addrs["n1"], {"echo": 1}, 2)
    assert bad["error"] == "malformed" and bad["definite"]


def test_peer_messages_go_through_the_peer_sockets(start) -> None:
    lc = start("gossip_set.py --workload broadcast", "--workload", "broadcast")
    for i, n in enumerate(lc.node_ids):
        assert ask(lc, n, {"type": "broadcast", "message": i})["ok"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reads = [ask(lc, n, {"type": "read"})["value"] for n in lc.node_ids]
        if all(sorted(r) == [0, 1, 2] for r in reads):
            break
        time.sleep(0.1)
    assert all(sorted(r) == [0, 1, 2] for r in reads), reads
    carried = [call(lc.client_addrs[n], {"op": "status"}, 2)["carried"] for n in lc.node_ids]
    assert all(c > 0 for c in carried)


def test_services_serve_lin_kv(start) -> None:
    lc = start("lin_kv.py")
    assert ask(lc, "n1", {"type": "read", "key": 1})["code"] == 20
    assert ask(lc, "n1", {"type": "write", "key": 1, "value": 4})["ok"]
    assert ask(lc, "n2", {"type": "read", "key": 1})["value"] == 4
    assert ask(lc, "n3", {"type": "cas", "key": 1, "from": 3, "to": 5})["code"] == 22
    assert ask(lc, "n3", {"type": "cas", "key": 1, "from": 4, "to": 5})["ok"]
    lc.kill("n1")  # the services outlive any node
    lc.start("n1")
    lc.wait_ready(20)
    assert ask(lc, "n1", {"type": "read", "key": 1})["value"] == 5


@pytest.mark.parametrize(("mode", "line"), [
    ("silent", "did not answer init with init_ok within 2 s"),
    ("malformed", "is not JSON"),
])
def test_a_program_that_never_answers_init_is_one_line(start, tmp_path: Path, mode: str,
                                                       line: str) -> None:
    began = time.monotonic()
    with pytest.raises(ClusterError) as err:
        start(f"bad.py {mode}", n=1)
    assert time.monotonic() - began < 15
    log = (tmp_path / "logs" / "n1.log").read_text()
    assert line in log
    assert "did not answer init" in str(err.value)
    assert any("did not answer init" in p for p in problems_in(tmp_path / "logs"))


def test_garbage_is_logged_and_the_node_serves(start, tmp_path: Path) -> None:
    lc = start("bad.py garbage", n=1)
    assert ask(lc, "n1", {"type": "echo", "echo": 3})["value"] == 3
    assert call(lc.client_addrs["n1"], {"op": "status"}, 2)["garbage"] == 1
    assert any("hello, I am a node" in p for p in problems_in(tmp_path / "logs"))


def test_a_crash_is_reported(start, tmp_path: Path) -> None:
    lc = start("bad.py crash", n=1)
    assert ask(lc, "n1", {"type": "echo", "echo": 3}, timeout=1.0) is None
    deadline = time.monotonic() + 5
    while lc.is_running("n1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lc.is_running("n1")
    time.sleep(0.3)  # the adapter's last line follows the program's exit
    found = problems_in(tmp_path / "logs")
    assert any("ended while serving (exit code 3)" in p for p in found), found


def test_kill_restart_gets_init_again_and_pause_silences(start, tmp_path: Path) -> None:
    lc = start("unique_ids.py")
    first = ask(lc, "n2", {"type": "generate"})["value"]
    old = lc.pid("n2")
    lc.kill("n2")
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    lc.start("n2")
    lc.wait_ready(20)
    again = ask(lc, "n2", {"type": "generate"})["value"]
    assert again != first and again.startswith("n1-")  # a new incarnation, init'ed as n1
    lc.pause("n2")
    assert call(lc.client_addrs["n2"], {"op": "status"}, 0.5) is None
    assert ask(lc, "n2", {"type": "generate"}, timeout=0.5) is None
    lc.resume("n2")
    assert call(lc.client_addrs["n2"], {"op": "status"}, 2) is not None


HARNESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.cluster import LocalCluster
    from nodes.common.clusterfile import write_cluster
    from nodes.common.wire import call
    tmp = Path(sys.argv[1])
    cmd = sys.argv[2:]
    lc = LocalCluster(write_cluster(tmp, 3, net="direct"), cmd, tmp / "logs")
    lc.start_all()
    lc.wait_ready(20)
    call(lc.client_addrs["n1"], {"client": 1, "type": "write", "key": 1, "value": 1}, 2)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_a_killed_harness_leaves_nothing(tmp_path: Path, no_leftovers: None) -> None:
    script = tmp_path / "h.py"
    script.write_text(HARNESS)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path),
                             *host(tmp_path, "lin_kv.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        services = [p for p in psutil.process_iter(["cmdline"])
                    if "maelstrom.services" in " ".join(p.info["cmdline"] or ())
                    and str(tmp_path) in " ".join(p.info["cmdline"] or ())]
        assert services, "the lin-kv write started the services"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # no_leftovers waits (up to 10 s) for every process naming tmp_path, then fails
