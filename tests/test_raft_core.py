"""Raft core safety under thousands of random schedules on the simulated network.

Each schedule mixes delivery in random order, drops, duplicates, partitions,
crashes that lose unflushed state, restarts from the simulated disk, and
client requests. After every flush of every node ``RaftInvariants`` checks the
Raft paper's safety properties (Figure 3):

- election safety: at most one leader per term;
- log matching: two logs with the same (index, term) agree on all before it;
- leader completeness: an entry committed in a term is in the log of every
  leader of a later term;
- state machine safety: every node commits the same entry at each index.

At the end the schedule heals, a leader must emerge and commit a new write
(liveness), every node must converge on the same key-value state, and the
clients' history must be linearizable (checker/).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule
from simnet import MACHINE_NODES, SimNetMachine
from testkit.raftkit import RaftInvariants, new_net, settle

from nodes.sim import SimError, SimNet, history

try:
    from checker import check_events
except ImportError:  # the checker is another part; the core tests stand without it
    check_events = None  # type: ignore[assignment]


WEIGHTS = {
    "deliver": 50, "drop": 4, "duplicate": 3, "tick": 25, "propose": 10, "flush": 3,
    "crash": 1, "restart": 2, "partition": 1, "heal": 2,
}


def run_schedule(seed: int, steps: int, n: int = 3, check_history: bool = False,
                 wire: bool = False, **options: Any) -> SimNet:
    net, _inv = new_net(seed, n, wire=wire, **options)
    for _ in range(steps):
        net.random_step(WEIGHTS)
    RaftInvariants.check_log_matching(net)
    settle(net)
    RaftInvariants.check_log_matching(net)
    if check_history and check_events is not None:
        result = check_events(history(net), model="kv", time_limit=10)
        assert result.valid is not False, f"seed {seed}: not linearizable: {result.to_dict()}"
    return net


def test_random_schedules_keep_raft_safe() -> None:
    """Thousands of short schedules: 3 and 5 nodes, small snapshot thresholds."""
    start = time.monotonic()
    total = 0
    for seed in range(2000):
        n = 5 if seed % 4 == 3 else 3
        run_schedule(seed, 300, n=n, snapshot_entries=8 if seed % 3 == 0 else 10_000)
        total += 1
    assert total == 2000
    assert time.monotonic() - start < 120


def test_random_schedules_over_the_wire_are_linearizable() -> None:
    """Fewer, longer schedules whose messages cross the codec and msgpack, and
    whose client histories go through the linearizability checker."""
    if check_events is None:
        pytest.skip("the checker is not available")
    for seed in range(60):
        run_schedule(10_000 + seed, 600, check_history=True, wire=True,
                     snapshot_entries=16, read_mode="log" if seed % 2 else "index")


@pytest.mark.parametrize("bug, check_history", [
    ("no-log-check", False),  # caught by the safety invariants
    ("early-ack", True),  # invisible to them: caught by the clients' history
])
def test_random_schedules_catch_a_known_bug(bug: str, check_history: bool) -> None:
    """The checks above have teeth: with a bug flag on, some schedule fails them."""
    if check_history and check_events is None:
        pytest.skip("the checker is not available")
    expected = "not linearizable" if check_history else "safety|completeness|matching"
    for seed in range(200):
        try:
            run_schedule(seed, 400, check_history=check_history, bugs=[bug])
        except (SimError, AssertionError) as exc:
            assert re.search(expected, str(exc)), exc
            return
    raise AssertionError(f"200 random schedules did not expose {bug}")


@pytest.mark.slow
def test_random_schedules_long_soak() -> None:
    for seed in range(20_000, 30_000):
        run_schedule(seed, 1500, n=5 if seed % 2 else 3, check_history=seed % 10 == 0,
                     wire=seed % 5 == 0, snapshot_entries=8 if seed % 3 == 0 else 10_000)


class RaftMachine(SimNetMachine):
    """Hypothesis searches (and shrinks) sequences of the simulator's actions."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.inv = new_net(0, 3, snapshot_entries=6)

    @precondition(lambda self: any(n.up for n in self.net.nodes.values()))
    @rule(node=st.sampled_from(MACHINE_NODES))
    def crash_restart(self, node: str) -> None:
        self.net.crash(node)
        self.net.restart(node)

    @invariant()
    def logs_match(self) -> None:
        RaftInvariants.check_log_matching(self.net)

    def teardown(self) -> None:
        settle(self.net)


TestRaftMachine = RaftMachine.TestCase
TestRaftMachine.settings = settings(
    max_examples=40, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_fast_init_messages_equal_their_dataclass_twins_and_stay_frozen() -> None:
    import dataclasses

    from nodes.common.core_api import Entry, SoftState, fast_init
    from nodes.paxos.messages import WIRE_TYPES as PAXOS_TYPES
    from nodes.raft.messages import WIRE_TYPES as RAFT_TYPES

    for cls in [*RAFT_TYPES.values(), *PAXOS_TYPES.values(), Entry, SoftState]:
        names = [f.name for f in dataclasses.fields(cls)]
        m = cls(*range(len(names)))
        assert [getattr(m, n) for n in names] == list(range(len(names)))
        assert m == cls(**dict(zip(names, range(len(names)), strict=True)))
        assert dataclasses.replace(m, **{names[0]: -1}) != m
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(m, names[0], 99)
        with pytest.raises(TypeError):
            cls(*range(len(names) - 1))

    @dataclasses.dataclass(slots=True)
    class Loose:
        a: int

    with pytest.raises(TypeError, match="not a frozen slotted dataclass"):
        fast_init(Loose)
