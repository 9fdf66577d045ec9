"""The lease-read bug is caught by a clock fault and missed without it (live nodes).

Three nodes with ``lease-read`` behind the proxy, with libfaketime. The leader
is cut off from the others; they elect a new leader, which acknowledges a new
value. With the old leader's clock slowed twentyfold (a ``clock`` drift), its
lease -- counted in its own ticks -- outlives the election, and it still
answers the old value: a stale read. With true clocks the lease runs out
before anyone can be elected, and the cut-off leader gives no stale answer.
Correct nodes (no bug) give none either way. Processes are ended by PID also
on failure (``LocalCluster.close`` in ``finally``, ``no_leftovers``); skips
with the reason without libfaketime.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from testkit.nemesis import NemesisCtx, owner_state_dir  # noqa: F401 (the state_dir fixture)

from faults import clock
from faults.proxyctl import ProxyControl
from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster
from nodes.common.wire import call

pytestmark = pytest.mark.timeout(180)
TIMING = {"heartbeat_ms": 50, "election_timeout_ms": [300, 600]}
_ids = iter(range(1, 10**9))


def _req(lc: LocalCluster, node: str, req: dict, timeout: float = 0.3) -> dict | None:
    return call(lc.client_addrs[node], {"id": next(_ids), **req}, timeout)


def _leader(lc: LocalCluster, among: list[str], newer_than: int = -1,
            within: float = 15.0) -> tuple[str, int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for n in among:
            st = _req(lc, n, {"op": "status"})
            term = (st or {}).get("term", (st or {}).get("ballot"))
            if st and st.get("role") == "leader" and term > newer_than:
                return n, term
        time.sleep(0.02)
    raise AssertionError(f"no leader among {among}")


def _stale_answers(lc: LocalCluster, slowed: bool) -> list[Any]:
    """Isolate the leader after a write of 1, write 2 through the new leader, then
    read the key at the old leader for two seconds: the answers it gave."""
    old, term = _leader(lc, lc.node_ids)
    deadline = time.monotonic() + 10
    while not ((r := _req(lc, old, {"op": "write", "key": "k", "value": 1})) and r.get("ok")):
        assert time.monotonic() < deadline, "first write not acknowledged"
    ctx = NemesisCtx(lc)
    fault = clock.ClockFaults(ctx, ctx.record)
    value = {"node": old, "mode": "drift", "rate": 0.05}
    others = [n for n in lc.node_ids if n != old]
    net = ProxyControl(lc.proxy_control)
    answers: list[Any] = []

    async def go() -> None:
        if slowed:
            await fault.begin(value, {})
        # a few reads at the old leader renew its lease (each round a quorum echoes)
        for _ in range(5):
            await asyncio.to_thread(_req, lc, old, {"op": "read", "key": "k"})
        net.set_grudge({old: set(others), **{n: {old} for n in others}})
        new, _ = await asyncio.to_thread(_leader, lc, others, term)
        w = None
        until = time.monotonic() + 10
        while not (w and w.get("ok")) and time.monotonic() < until:
            w = await asyncio.to_thread(_req, lc, new, {"op": "write", "key": "k", "value": 2},
                                        0.5)
        assert w and w.get("ok"), "the new leader acknowledged no write"
        until = time.monotonic() + 2
        while time.monotonic() < until:
            r = await asyncio.to_thread(_req, lc, old, {"op": "read", "key": "k"}, 0.2)
            if r and r.get("ok"):
                answers.append(r.get("value"))
        net.heal()
        if slowed:
            await fault.end(value, {})

    asyncio.run(go())
    return answers


@pytest.mark.parametrize("system", ["raft", "paxos"])
@pytest.mark.parametrize(("bugs", "slowed", "stale"), [
    (["lease-read"], True, True),     # caught by the clock fault
    (["lease-read"], False, False),   # missed without it
    ([], True, False),                # correct nodes: safe under the clock fault
])
def test_lease_read_needs_a_clock_fault_to_be_seen(
        tmp_path: Path, state_dir: Path, no_leftovers: None, system: str,
        bugs: list[str], slowed: bool, stale: bool) -> None:
    reason = clock.unavailable_reason()
    if reason:
        pytest.skip(reason)
    cj = write_cluster(tmp_path, 3, net="proxy", timing=TIMING, options={"bugs": bugs})
    lc = LocalCluster(cj, [sys.executable, "-m", "nodes", system], tmp_path / "logs",
                      faketime=True)
    try:
        lc.start_all()
        lc.wait_ready(30)
        answers = _stale_answers(lc, slowed)
    finally:
        lc.close()
    assert (1 in answers) is stale, answers
