"""Shared helpers of the Raft core tests: safety invariants and schedules on nodes.sim.

Used by tests/test_raft_core.py, tests/test_raft_core_scenarios.py and
tests/test_figure8.py, so those modules do not import each other.
RaftInvariants is a ``SimNet`` observer that checks Raft's safety properties
(election safety, state machine safety, leader completeness; log matching on
demand) after every flush; the rest builds a net, elects chosen leaders and
settles a net back to one leader and converged replicas.
"""

from __future__ import annotations

from typing import Any

from nodes.common.core_api import Ready
from nodes.raft import PROTOCOL, make_core
from nodes.raft.core import RaftCore
from nodes.raft.messages import AppendEntries
from nodes.sim import FAST_TIMING, SimError, SimNet

__all__ = ["ELECTION_MIN", "RaftInvariants", "deliver_where", "elect", "has_index_from",
           "new_net", "raft", "settle"]


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


ELECTION_MIN = FAST_TIMING.ticks(FAST_TIMING.election_timeout_ms[0])


def raft(net: SimNet, node: str) -> RaftCore:
    core = net.core(node)
    assert isinstance(core, RaftCore)
    return core


def elect(net: SimNet, node: str, voters: list[str], rounds: int = 20) -> None:
    """Make ``node`` leader using only messages between it and ``voters``.

    Drops whatever was in flight first. Voters are ticked out of their
    leader's lease (so they listen to candidates). Stops delivering the moment
    ``node`` leads, leaving its first appends in flight for the caller."""
    group = {node, *voters}
    for v in voters:
        net.tick(v, ELECTION_MIN)
    net.in_flight.clear()
    for _ in range(rounds):
        while raft(net, node).role == "follower":
            net.tick(node)
        while net.in_flight and raft(net, node).role != "leader":
            src, dest, _msg = net.in_flight[0]
            if src in group and dest in group:
                net.deliver(0)
            else:
                net.drop(0)
        if raft(net, node).role == "leader":
            return
        net.in_flight.clear()
        if raft(net, node).role != "follower":
            net.tick(node, ELECTION_MIN * 2)  # let a failed campaign time out
    raise AssertionError(f"{node} could not win an election with {voters}")


def deliver_where(net: SimNet, keep: Any, max_messages: int = 10_000) -> None:
    """Deliver messages ``keep(src, dest, msg)`` accepts, in order; drop the rest."""
    n = 0
    while net.in_flight and n < max_messages:
        src, dest, msg = net.in_flight[0]
        if keep(src, dest, msg):
            net.deliver(0)
        else:
            net.drop(0)
        n += 1


def has_index_from(msg: Any, index: int) -> bool:
    return isinstance(msg, AppendEntries) and any(e.index >= index for e in msg.entries)


# ------------------------------------------------------------------- Figure 8


