"""A live three-node Raft cluster for the fault tests: fixtures and small client calls.

``cluster``: behind the proxy; ``netns_cluster``: in network namespaces (skips
unless usable). Both end every node by PID and check that none is left.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.cluster import LocalCluster
from nodes.common.clusterfile import load_cluster, write_cluster
from nodes.common.wire import call

NODE = [sys.executable, "-m", "nodes", "raft"]
TIMING = {"heartbeat_ms": 50, "election_timeout_ms": [300, 600]}
_ids = itertools.count(1)



@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cj = write_cluster(tmp_path, 3, net="proxy", timing=TIMING)
    lc = LocalCluster(cj, NODE, tmp_path / "logs")
    pids: list[int] = []
    try:
        lc.start_all()
        lc.wait_ready(30)
        yield lc
    finally:
        pids = lc.pids()
        lc.close()
    assert not [p for p in pids if psutil.pid_exists(p) and
                psutil.Process(p).status() != psutil.STATUS_ZOMBIE], "processes left behind"


def status(lc: LocalCluster, node: str, timeout: float = 0.3) -> dict | None:
    return call(lc.client_addrs[node], {"op": "status"}, timeout)


def leader_of(lc: LocalCluster, among: list[str], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n in among:
            st = status(lc, n)
            if st and st.get("role") == "leader":
                return n
        time.sleep(0.05)
    raise AssertionError(f"no leader among {among} within {timeout} s")


def write(lc: LocalCluster, node: str, key: str, value: Any, timeout: float = 1.0) -> dict | None:
    return call(lc.client_addrs[node],
                {"id": next(_ids), "op": "write", "key": key, "value": value}, timeout)


def commit_via(lc: LocalCluster, nodes: list[str], key: str, value: Any, within: float) -> bool:
    """True once a write sent to one of ``nodes`` is acknowledged within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for n in nodes:
            reply = write(lc, n, key, value, timeout=0.5)
            if reply and reply.get("ok"):
                return True
        time.sleep(0.05)
    return False


@pytest.fixture
def netns_cluster(tmp_path: Path, netns_usable: None) -> Iterator[tuple[LocalCluster, Any]]:
    from faults.netns import NetnsCluster

    cj = write_cluster(tmp_path, 3, net="direct", timing=TIMING)
    ids = list(load_cluster(cj).nodes)
    with NetnsCluster(ids) as nets:
        nets.rewrite_cluster(cj)
        lc = LocalCluster(cj, nets.command(NODE), tmp_path / "logs")
        try:
            lc.start_all()
            lc.wait_ready(30)
            yield lc, nets
        finally:
            lc.close()
