"""Clock faults through libfaketime (faults/clock.py): they must really move the node.

A clock fault that silently does nothing would make every "valid under clock
faults" verdict a lie, so these tests fail when the fault is inert:

- a probe process under the same environment the nodes get: its
  ``time.monotonic`` and pyzmq poll timeouts follow the timestamp file's
  rate (real time from /proc/uptime, which libfaketime does not touch);
- live Raft nodes: a node's own ``wall_ns``/``mono_ns`` (its ``status``)
  show the offset and the rate, ``ClockFaults`` records them as evidence, and
  a leader whose clock is slowed twentyfold stops heartbeating in time, so
  the others elect a new leader (the driver's ticks and poll timeouts moved),
  which does not happen without the fault.

Every process is ended by PID also on failure (``LocalCluster.close`` in
``finally``, ``no_leftovers``); the timestamp folder and its owner record are
checked gone. Skips with the reason where libfaketime is missing.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit.nemesis import NemesisCtx, owner_state_dir  # noqa: F401 (the state_dir fixture)

from faults import clock, owner
from faults.plan import ClusterView
from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster
from nodes.common.wire import call

pytestmark = pytest.mark.timeout(120)
NODE = [sys.executable, "-m", "nodes", "raft"]
TIMING = {"heartbeat_ms": 50, "election_timeout_ms": [300, 600]}


@pytest.fixture
def faketime_usable() -> None:
    reason = clock.unavailable_reason()
    if reason:
        pytest.skip(reason)


# --- pure parts ---------------------------------------------------------------------------


def test_plan_fields_and_values_come_from_the_rng_only() -> None:
    a = [clock.plan_fields(random.Random(3)) for _ in range(1)]
    b = [clock.plan_fields(random.Random(3)) for _ in range(1)]
    assert a == b
    modes = {clock.plan_fields(random.Random(i))["mode"] for i in range(40)}
    assert modes == set(clock.MODES)
    view = ClusterView(("n1", "n2", "n3"), "n2")
    v = clock.resolve_value({"f": "clock", "target": "leader", "mode": "drift", "rate": 0.5},
                            view.node_ids, random.Random(1), view.leader)
    assert v == {"node": "n2", "mode": "drift", "rate": 0.5}
    assert clock.spec_of(-20.0) == "-20 x1" and clock.spec_of(0.5, 2.0) == "+0.5 x2"


def test_clock_files_are_owned_and_removed(state_dir: Path, faketime_usable: None) -> None:
    c = clock.Clocks(["n1", "n2"])
    try:
        assert c.path("n1").read_text().strip() == clock.TRUE_SPEC
        env = c.env("n1")
        assert "libfaketime" in env["LD_PRELOAD"] and env["FAKETIME_NO_CACHE"] == "1"
        c.set("n1", "+5 x1")
        assert c.path("n1").read_text().strip() == "+5 x1"
        assert owner.names(clock.KIND) == [c.tag]
    finally:
        c.close()
    assert not c.dir.exists() and not owner.names(clock.KIND)


PROBE = """
import time, zmq
def real(): return float(open('/proc/uptime').read().split()[0])
p = zmq.Poller(); s = zmq.Context().socket(zmq.PULL); p.register(s, zmq.POLLIN)
r0, m0 = real(), time.monotonic()
for _ in range(10): p.poll(100)
r1, m1 = real(), time.monotonic()
print(r1 - r0, m1 - m0)
"""


def test_monotonic_and_zmq_poll_timeouts_follow_the_rate(state_dir: Path,
                                                         faketime_usable: None) -> None:
    c = clock.Clocks(["n1"])
    try:
        c.set("n1", clock.spec_of(0, 4.0))
        out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **c.env("n1")},
                             capture_output=True, text=True, timeout=30, check=True).stdout
        real_s, mono_s = map(float, out.split())
    finally:
        c.close()
    # the node's monotonic clock runs 4x (a loaded machine stretches both alike) ...
    assert 3.0 <= mono_s / real_s <= 5.0, (real_s, mono_s)
    # ... and its ten 100 ms poll timeouts take ~1 s of that clock, not ~4 s: they are scaled
    assert 0.9 <= mono_s < 2.5, f"poll timeouts were not scaled: {mono_s:.2f} s of the node's clock"


# --- live nodes -----------------------------------------------------------------------------


@pytest.fixture
def clocked(tmp_path: Path, state_dir: Path, faketime_usable: None,
            no_leftovers: None) -> Iterator[LocalCluster]:
    cj = write_cluster(tmp_path, 3, net="direct", timing=TIMING)
    lc = LocalCluster(cj, NODE, tmp_path / "logs", faketime=True)
    try:
        lc.start_all()
        lc.wait_ready(30)
        yield lc
    finally:
        lc.close()
    assert not owner.names(clock.KIND), "the faketime owner record stayed behind"


def _status(lc: LocalCluster, node: str) -> dict | None:
    return call(lc.client_addrs[node], {"op": "status"}, 0.3)


def _leader(lc: LocalCluster, within: float = 15.0) -> tuple[str, int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for n in lc.node_ids:
            st = _status(lc, n)
            if st and st.get("role") == "leader":
                return n, int(st["term"])
        time.sleep(0.05)
    raise AssertionError("no leader")


def _run(fault: clock.ClockFaults, value: dict, seconds: float) -> dict:
    async def go() -> None:
        await fault.begin(value, {})
        await asyncio.sleep(seconds)
        await fault.end(value, {})

    asyncio.run(go())
    return fault.ctx.events[-1][2]["evidence"]


def test_the_node_clock_moves_and_the_evidence_says_so(clocked: LocalCluster) -> None:
    lc = clocked
    ctx = NemesisCtx(lc)
    fault = clock.ClockFaults(ctx, ctx.record)
    ev = _run(fault, {"node": "n1", "mode": "offset", "offset_s": 5.0}, 0.5)
    assert ev["effective"] is True and 4500 < ev["offset_ms_start"] < 5500, ev
    st = _status(lc, "n1")
    assert st is not None and abs(st["wall_ns"] - time.time_ns()) < 3e8  # back to true
    ev = _run(fault, {"node": "n2", "mode": "drift", "rate": 3.0}, 1.5)
    assert ev["effective"] is True and 2.4 < ev["rate"] < 3.6, ev
    assert abs(ev["offset_ms_start"]) < 300, ev  # the drift started without a jump
    ahead = (_status(lc, "n2")["wall_ns"] - time.time_ns()) / 1e9
    assert 2.0 < ahead < 4.5, ahead  # ~ (3 - 1) * 1.5 s: the drift's gain stays (no step back)
    assert abs(lc.clocks.base["n2"] - ahead) < 0.5


def test_a_slowed_leader_clock_costs_its_leadership(clocked: LocalCluster) -> None:
    """The driver's ticks and poll timeouts run on the faked clock: a leader whose
    clock runs at 1/20 heartbeats every second of real time, past the followers'
    300-600 ms election timeouts, so they elect another leader. Without the fault
    the term holds (the control half)."""
    lc = clocked
    leader, term = _leader(lc)
    time.sleep(2.0)
    assert _status(lc, leader)["term"] == term, "the term moved without any fault"
    ctx = NemesisCtx(lc)
    fault = clock.ClockFaults(ctx, ctx.record)
    value = {"node": leader, "mode": "drift", "rate": 0.05}
    moved = None

    async def go() -> None:
        nonlocal moved
        await fault.begin(value, {})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and moved is None:
            for n in lc.node_ids:
                st = await asyncio.to_thread(_status, lc, n)
                if n != leader and st and int(st["term"]) > term:
                    moved = st
            await asyncio.sleep(0.1)
        await fault.end(value, {})

    asyncio.run(go())
    assert moved is not None, "a leader at 1/20 clock rate kept the others from electing"
    ev = ctx.events[-1][2]["evidence"]
    assert ev["effective"] is True and ev["rate"] < 0.2, ev


def test_a_node_restarted_during_a_drift_keeps_the_drifting_clock(clocked: LocalCluster) -> None:
    lc = clocked
    ctx = NemesisCtx(lc)
    fault = clock.ClockFaults(ctx, ctx.record)
    value = {"node": "n3", "mode": "drift", "rate": 3.0}

    async def go() -> float:
        await fault.begin(value, {})
        t1 = fault._t1["n3"]
        await asyncio.sleep(1.0)
        lc.kill("n3")
        lc.start("n3")
        deadline = time.monotonic() + 20
        st = None
        while st is None and time.monotonic() < deadline:
            st = await ctx.status("n3")
        assert st is not None, "n3 did not come back"
        ahead = st["wall_ns"] / 1e9 - time.time()
        want = 2.0 * (time.time() - t1)  # (rate - 1) x the drift so far
        await fault.end(value, {})
        return ahead - want

    error = asyncio.run(go())
    assert abs(error) < 0.8, f"the restarted node's clock is {error:+.2f} s off the drift"
