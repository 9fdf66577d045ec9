"""Paxos core under thousands of seeded random schedules (tests/simnet.py).

Each schedule mixes delivery in any order, drops, duplicates, partitions,
crashes (losing everything not yet flushed) and restarts from the simulated
disk, while clients send reads, writes and cas to random nodes. Checked
after every flush of every node:

- agreement: no slot is ever known chosen with two different values;
- applied prefixes agree: any two nodes that applied the same number of
  slots hold the same key-value state;

and at the end of each schedule:

- liveness: once every fault is healed, one leader emerges, a new write is
  acknowledged, and every node applies the same prefix;
- the clients' history is linearizable (checker/).

``PaxosMachine`` lets Hypothesis search and shrink fault sequences against
the same checks.

A failing schedule replays from its seed: ``run_schedule(seed)``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule
from simnet import SimNetMachine

from checker import check_events
from nodes.common.core_api import Ready
from nodes.paxos import PROTOCOL
from nodes.paxos.core import PaxosCore
from nodes.sim import SimError, SimNet, history

#: Action weights of a schedule (see SimNet.random_step).
FAULTY = {
    "deliver": 40, "drop": 4, "duplicate": 4, "tick": 30, "propose": 10, "flush": 4,
    "crash": 1, "restart": 2, "partition": 1.5, "heal": 2,
}

#: Harsher: many more crashes, partitions, drops and duplicates.
CHAOS = dict(FAULTY, crash=5, restart=5, partition=5, heal=3, drop=10, duplicate=10)

DEFAULT_SCHEDULES = int(os.environ.get("PAXOS_SIM_SCHEDULES", "2000"))


def paxos_net(node_ids: list[str], **kwargs: Any) -> SimNet:
    """A SimNet for Paxos: holes in the durable log are normal (slots are
    persisted in whatever order accepts arrive), so no contiguity check."""
    return SimNet(PROTOCOL.make_core, node_ids, contiguous_log=False, **kwargs)


class Invariants:
    """Observer: agreement on chosen values and on applied state, after every flush."""

    def __init__(self) -> None:
        self.chosen: dict[int, Any] = {}
        self.checked: dict[str, int] = {}
        self.state_at: dict[int, dict[str, Any]] = {}

    def __call__(self, net: SimNet, node_id: str, rd: Ready | None) -> None:
        core = net.nodes[node_id].core
        assert isinstance(core, PaxosCore)
        lo = self.checked.get(node_id, 0)
        if core.commit < lo:  # restarted: it relearns from its snapshot on
            lo = 0
        for s in range(max(lo, core.snap_index) + 1, core.commit + 1):
            value = core.log[s].value
            first = self.chosen.setdefault(s, value)
            if first != value:
                raise SimError(f"slot {s} chosen twice: {first} and, at {node_id}, {value}")
        self.checked[node_id] = core.commit
        applier = net.nodes[node_id].applier
        assert applier is not None
        state = self.state_at.get(applier.applied)
        if state is None:
            self.state_at[applier.applied] = dict(applier.kv.data)
        elif state != applier.kv.data:
            raise SimError(f"{node_id} applied {applier.applied} slots into {applier.kv.data}, "
                           f"another node into {state}")


def make_net(seed: int, bugs: tuple[str, ...] = ()) -> tuple[SimNet, Invariants]:
    rng = random.Random(seed)
    n = 5 if rng.random() < 0.2 else 3
    options: dict[str, Any] = {
        "bugs": list(bugs),
        "read_mode": rng.choice(["index", "log"]),
        # Small snapshots on some seeds: compaction and snapshot catch-up run often.
        "snapshot_entries": rng.choice([4, 16, 10_000]),
    }
    codec = PROTOCOL.codec if rng.random() < 0.25 else None
    net = paxos_net([f"n{i}" for i in range(1, n + 1)], seed=seed,
                      options=options, codec=codec)
    inv = Invariants()
    net.observers.append(inv)
    return net, inv


def heal_and_check_liveness(net: SimNet, seed: int) -> None:
    net.recover()
    done = {"write": None}

    def progressed() -> bool:
        leaders = net.leaders()
        if len(leaders) != 1:
            return False
        r = done["write"]
        if r is None or (r.reply is not None and not r.reply.get("ok")):
            done["write"] = net.propose(leaders[0], {"op": "write", "key": "live", "value": seed})
            return False
        if r.reply is None:
            return False
        applied = {net.status(i)["last_applied"] for i in net.ids}
        return len(applied) == 1

    assert net.run_until(progressed, max_rounds=3000), (
        f"seed {seed}: no progress after healing: {[net.status(i) for i in net.ids]}")
    states = {i: net.kv(i).data for i in net.ids}
    first = states[net.ids[0]]
    assert all(s == first for s in states.values()), f"seed {seed}: states differ: {states}"
    assert first.get("live") == seed


def run_schedule(seed: int, steps: int = 400, bugs: tuple[str, ...] = (),
                 weights: dict[str, float] = FAULTY) -> SimNet:
    net, _inv = make_net(seed, bugs)
    for _ in range(steps):
        net.random_step(weights)
    heal_and_check_liveness(net, seed)
    res = check_events(history(net), "kv", time_limit=10)
    assert res.valid is True, f"seed {seed}: history not linearizable: {res.to_dict()}"
    return net


# Four chunks in the default run (the suite's budget); all ten with -m slow.
@pytest.mark.parametrize("chunk", [pytest.param(c, marks=pytest.mark.slow) if c >= 4 else c
                                   for c in range(10)])
def test_random_schedules_keep_agreement_and_liveness(chunk: int) -> None:
    per = DEFAULT_SCHEDULES // 10
    for seed in range(chunk * per, (chunk + 1) * per):
        run_schedule(seed)


@pytest.mark.slow
@pytest.mark.parametrize("weights", [FAULTY, CHAOS], ids=["faulty", "chaos"])
@pytest.mark.parametrize("chunk", range(10))
def test_random_schedules_long(chunk: int, weights: dict[str, float]) -> None:
    for seed in range(100_000 + chunk * 300, 100_000 + (chunk + 1) * 300):
        run_schedule(seed, steps=1500, weights=weights)


def test_schedules_really_exercise_faults() -> None:
    """A schedule that never crashed, partitioned or changed leader would prove little."""
    restarts = leaders_changed = snapshots = 0
    for seed in range(40):
        net = run_schedule(seed)
        restarts += sum(node.restarts for node in net.nodes.values())
        leaders_changed += max(net.status(i)["ballot"] for i in net.ids) > 1
        snapshots += any(net.nodes[i].core.snap_index > 0 for i in net.ids)
    assert restarts >= 20 and leaders_changed >= 20 and snapshots >= 5, (
        restarts, leaders_changed, snapshots)


@pytest.mark.parametrize("bug", ["no-adopt", "early-ack", "stale-read"])
def test_random_schedules_catch_the_bugs(bug: str) -> None:
    """The same schedules and checks find these bugs within a few dozen seeds
    (no-adopt breaks agreement; early-ack and stale-read linearizability).
    forget-promise needs a promise, a crash and a late accept from the old
    leader in one narrow order: test_paxos_core_scenarios.py scripts it."""
    for seed in range(300):
        try:
            run_schedule(seed, bugs=(bug,))
        except (SimError, AssertionError):
            return
    pytest.fail(f"{bug}: 300 schedules found nothing")


NODES = ["n1", "n2", "n3"]


class PaxosMachine(SimNetMachine):
    """Hypothesis searches (and shrinks) fault sequences against the same invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.net = paxos_net(NODES, seed=0,
                               options={"read_mode": "index", "snapshot_entries": 8},
                               codec=PROTOCOL.codec)
        self.net.observers.append(Invariants())

    @rule(node=st.sampled_from(NODES))
    def crash(self, node: str) -> None:
        self.net.crash(node)

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: str) -> None:
        self.net.restart(node)

    def teardown(self) -> None:
        heal_and_check_liveness(self.net, 7)
        res = check_events(history(self.net), "kv", time_limit=10)
        assert res.valid is True, res.to_dict()


TestPaxosMachine = PaxosMachine.TestCase
TestPaxosMachine.settings = settings(
    max_examples=60, stateful_step_count=120, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
