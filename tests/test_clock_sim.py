"""Clock faults in simulation bite the node's ticks and carry the real evidence.

The simulator's interpreter (faults/simulate.py) reads the node's clock as
the real interpreter reads ``wall_ns``/``mono_ns`` from its status, and
builds the evidence with the same function (faults/clock.py ``evidence``):
an offset shows as the offset, a drift as its rate, and the time a drift
gained stays after it; the node's ticks follow its clock (a slowed leader's
lease, counted in ticks, outlasts real time).
"""

from __future__ import annotations

from typing import Any

import pytest

from faults.plan import ReplayPlan
from faults.simulate import SimInterpreter
from nodes.__main__ import load_protocol
from nodes.sim.world import LINK_FAULTS, World

pytestmark = pytest.mark.timeout(60)
MS = 1_000_000


def _run(ops: list[dict[str, Any]]) -> tuple[World, SimInterpreter, list[tuple[str, Any, dict]]]:
    w = World(load_protocol("raft"), ["n1", "n2", "n3"], seed=5)
    w.run_until(3000 * MS, lambda: w.leader() is not None)
    events: list[tuple[str, Any, dict]] = []
    sim = SimInterpreter(ReplayPlan(ops), w, lambda f, v, **k: events.append((f, v, k)),
                         LINK_FAULTS)
    sim.start()
    w.run_until(w.now + 3000 * MS)
    return w, sim, events


def _end(events: list[tuple[str, Any, dict]]) -> dict[str, Any]:
    return next(k["evidence"] for f, _, k in events if f == "clock-end")


def test_an_offset_shows_as_the_offset_and_goes_back() -> None:
    w, sim, events = _run([{"f": "clock", "at": 0.1, "hold": 1.0,
                            "value": {"node": "n2", "mode": "offset", "offset_s": 1.5}}])
    ev = _end(events)
    assert ev["effective"] and ev["offset_ms_start"] == ev["offset_ms_end"] == 1500.0
    assert sim.clock_ns("n2") == w.now  # back to true time at the end


def test_a_drift_runs_the_ticks_at_its_rate_and_keeps_what_it_lost() -> None:
    w, sim, events = _run([{"f": "clock", "at": 0.1, "hold": 2.0,
                            "value": {"node": "n1", "mode": "drift", "rate": 0.25}}])
    ev = _end(events)
    assert ev["effective"] and ev["rate"] == 0.25
    assert sim.clock_ns("n1") - w.now == pytest.approx(-1.5e9, rel=1e-6)  # 2 s at 0.25
    assert w.nodes["n1"].clock_rate == 1.0


def test_a_strobe_flips_the_clock_and_ends_in_the_true_phase() -> None:
    w, sim, events = _run([{"f": "clock", "at": 0.1, "hold": 1.0,
                            "value": {"node": "n3", "mode": "strobe", "offset_s": 2.0,
                                      "period_ms": 100}}])
    ev = _end(events)
    assert ev["effective"] and ev["offset_ms_start"] == 2000.0
    assert sim.clock_ns("n3") == w.now
