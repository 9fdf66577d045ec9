"""Hypothesis rules over the product's simulator (nodes/sim): shared by the
Raft and Paxos state-machine tests.

The engine (network, disks, crash/restart, clients) lives in ``nodes.sim``;
this module adds only what needs Hypothesis: the simulator's actions as
rules, which Hypothesis searches and shrinks.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from nodes.sim import SimNet

__all__ = ["MACHINE_NODES", "SimNetMachine"]

MACHINE_NODES = ("n1", "n2", "n3")


class SimNetMachine(RuleBasedStateMachine):
    """The simulator's actions as Hypothesis rules, shared by the Raft and
    Paxos state machines; a subclass sets ``self.net`` over ``MACHINE_NODES``
    and adds its own crash rules, invariants and teardown."""

    net: SimNet

    @rule(k=st.integers(0, 1000))
    def deliver(self, k: int) -> None:
        if self.net.in_flight:
            self.net.deliver(k % len(self.net.in_flight))

    @rule(k=st.integers(0, 1000))
    def drop(self, k: int) -> None:
        if self.net.in_flight:
            self.net.drop(k % len(self.net.in_flight))

    @rule(k=st.integers(0, 1000))
    def duplicate(self, k: int) -> None:
        if self.net.in_flight:
            self.net.duplicate(k % len(self.net.in_flight))

    @rule(node=st.sampled_from(MACHINE_NODES), n=st.integers(1, 12))
    def tick(self, node: str, n: int) -> None:
        self.net.tick(node, n)

    @rule(node=st.sampled_from(MACHINE_NODES), op=st.sampled_from(["write", "cas", "read"]),
          value=st.integers(0, 5))
    def propose(self, node: str, op: str, value: int) -> None:
        self.net.propose(node, {"op": op, "key": "k", "value": value, "expected": value - 1})

    @rule(node=st.sampled_from(MACHINE_NODES))
    def isolate(self, node: str) -> None:
        self.net.isolate(node)

    @rule()
    def heal(self) -> None:
        self.net.heal()
