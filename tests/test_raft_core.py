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
clients' history must be linearizable (harness.checker).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule
from simnet import MACHINE_NODES, SimError, SimNet, SimNetMachine, history

from nodes.common.core_api import Ready
from nodes.raft import PROTOCOL, make_core
from nodes.raft.core import RaftCore

try:
    from harness.checker import check_events
except ImportError:  # the checker is another part; the core tests stand without it
    check_events = None  # type: ignore[assignment]


class RaftInvariants:
    """An observer for SimNet that checks Raft's safety properties as it goes."""

    def __init__(self) -> None:
        self.leader_of_term: dict[int, str] = {}
        self.committed: dict[int, tuple[int, Any]] = {}  # index -> (term, command)
        self.commit_term: dict[int, int] = {}  # index -> lowest term it was seen committed at
        self.seen_commit: dict[str, int] = {}
        self.leading: dict[str, int | None] = {}  # node -> term it leads, if it does

    def __call__(self, net: SimNet, node_id: str, rd: Ready | None) -> None:
        core = net.core(node_id)
        assert isinstance(core, RaftCore)
        term = core.term
        if core.role == "leader":
            other = self.leader_of_term.setdefault(term, node_id)
            if other != node_id:
                raise SimError(f"election safety: {other} and {node_id} both lead term {term}")
            if self.leading.get(node_id) != term:
                self.leading[node_id] = term
                self._check_completeness(node_id, core)
        else:
            self.leading[node_id] = None
        # State machine safety: the entry each node commits at an index is the same.
        seen = self.seen_commit.get(node_id, 0)
        commit = core.commit_index
        if commit > seen:
            base = core.snap_index + 1
            for i in range(max(seen + 1, base), commit + 1):
                e = core.log[i - base]
                mine = (e.term, e.data)
                known = self.committed.setdefault(i, mine)
                if known != mine:
                    raise SimError(
                        f"state machine safety: {node_id} committed {mine} at {i}, "
                        f"another node committed {known}")
                if self.commit_term.get(i, term + 1) > term:
                    self.commit_term[i] = term
        self.seen_commit[node_id] = commit

    def _check_completeness(self, node_id: str, core: RaftCore) -> None:
        term = core.term
        for i, (t, data) in self.committed.items():
            if self.commit_term[i] >= term or i <= core.snap_index:
                continue
            have = core.term_at(i)
            if have != t or core.log[i - core.snap_index - 1].data != data:
                raise SimError(
                    f"leader completeness: {node_id} leads term {term} without entry {i} "
                    f"(term {t}) committed earlier")

    @staticmethod
    def check_log_matching(net: SimNet) -> None:
        cores = [net.core(i) for i in net.ids if net.nodes[i].up]
        for a in cores:
            for b in cores:
                if a is b:
                    continue
                assert isinstance(a, RaftCore) and isinstance(b, RaftCore)
                lo = max(a.snap_index, b.snap_index) + 1
                hi = min(a.last_index, b.last_index)
                # The highest index where both logs hold the same term...
                top = next((i for i in range(hi, lo - 1, -1) if a.term_at(i) == b.term_at(i)),
                           None)
                if top is None:
                    continue
                # ...and everything below it must be identical.
                for i in range(lo, top + 1):
                    ea, eb = a.log[i - a.snap_index - 1], b.log[i - b.snap_index - 1]
                    if (ea.term, ea.data) != (eb.term, eb.data):
                        raise SimError(f"log matching: {a.id} and {b.id} agree at {top} but "
                                       f"differ at {i}: {ea} vs {eb}")


WEIGHTS = {
    "deliver": 50, "drop": 4, "duplicate": 3, "tick": 25, "propose": 10, "flush": 3,
    "crash": 1, "restart": 2, "partition": 1, "heal": 2,
}


def new_net(seed: int, n: int = 3, wire: bool = False, **options: Any) -> tuple[SimNet, RaftInvariants]:
    net = SimNet(make_core, [f"n{i}" for i in range(1, n + 1)], seed=seed, options=options,
                 codec=PROTOCOL.codec if wire else None)
    inv = RaftInvariants()
    net.observers.append(inv)
    return net, inv


def settle(net: SimNet) -> None:
    """Heal everything; a leader must then commit a fresh write and everyone converge."""
    net.recover()
    reply = None
    for attempt in range(5):  # a write can lose a race with a new election
        assert net.run_until(lambda: len(net.leaders()) == 1, 3000), "no leader after healing"
        r = net.propose(net.leaders()[0], {"op": "write", "key": "final", "value": -1 - attempt})
        assert r is not None
        assert net.run_until(lambda r=r: r.reply is not None, 3000), "final write never finished"
        reply = r.reply
        if reply and reply.get("ok"):
            break
    assert reply and reply.get("ok"), f"final write failed: {reply}"

    def converged() -> bool:
        cores = [net.core(i) for i in net.ids]
        target = max(c.status()["commit_index"] for c in cores)
        return all(c.status()["last_applied"] == target for c in cores)

    assert net.run_until(converged, 3000), "replicas never converged"
    states = {i: net.kv(i).data for i in net.ids}  # type: ignore[attr-defined]
    first = states[net.ids[0]]
    assert all(s == first for s in states.values()), f"replicas diverged: {states}"


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
        pytest.skip("harness.checker is not available")
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
        pytest.skip("harness.checker is not available")
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
