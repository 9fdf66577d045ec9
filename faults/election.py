"""Election safety: the terms each node says it won, held side by side while a run goes on.

Owns ``ElectionWatch``: fed every ``status`` a node gives (its ``led`` field,
nodes/raft/core.py: the terms this incarnation became leader in, newest
last, at most a few), it remembers the first node seen leading each term and
returns, once per term, the nemesis event that proves a second node led the
same term: ``f`` ``election-end`` (the election's safety ended), value
``{"term", "nodes"}``, evidence ``{"reports": [{"node", "pid", "term"}, ...]}``
(the first claim and the one that met it). faults/findings.py turns that event
into the ``two-leaders`` finding. Both interpreters feed it, with the same
statuses as the agreement watch (faults/agreement.py): faults/interpret.py
with the statuses it asks for, harness/simrun.py with each simulated core's.

Why it is sound: Raft elects at most one leader per term (Election Safety,
paper 5.2): a candidate needs a majority of votes and a node casts at most
one vote per term, so two majorities of one term share a voter who voted
twice. No fault excuses it (a node's vote and term are durable before it
answers), so no knowledge of any bug is needed. Two claims of one term by one
node are not two leaders (a node leads a term at most once, and a restarted
node starts as follower in its durable term), so claims are compared by node,
across incarnations.

What it does not cover: Multi-Paxos nodes report no ``led``; their ballots
carry the proposer's id, so two leaders in one round are legal there. A node
whose status has no ``led`` (``--system COMMAND``, older nodes) is not watched.
A node that won a term and died before any status asked is not seen: the
check is a sample, never a guess.

Invariants: at most ``LIMIT`` events per run; one per term; nothing here
runs per message, only per status.
"""

from __future__ import annotations

from typing import Any

#: The nemesis event two leaders of one term are recorded as. It ends in
#: ``-end`` for the reason faults/agreement.py gives: no fault window.
EVENT = "election-end"
#: At most this many events per run (one unsafe election is the news).
LIMIT = 8


class ElectionWatch:
    """The first node seen leading each term, and the terms found led twice."""

    __slots__ = ("events", "first", "twice")

    def __init__(self) -> None:
        #: term -> (node, pid) of the first claim seen
        self.first: dict[int, tuple[str, Any]] = {}
        self.twice: set[int] = set()
        self.events = 0

    def observe(self, node: str, pid: Any, led: Any) -> list[dict[str, Any]]:
        """One node's ``led`` status field (None or malformed: nothing).
        Returns the unsafe elections it proves, each ``{"value", "evidence"}``
        of an ``EVENT`` to record now."""
        if type(led) is not list:
            return []
        found: list[dict[str, Any]] = []
        for term in led:
            if type(term) is not int or term <= 0:
                continue
            first = self.first.get(term)
            if first is None:
                self.first[term] = (node, pid)
                continue
            if first[0] == node or term in self.twice or self.events >= LIMIT:
                continue
            self.twice.add(term)
            self.events += 1
            found.append({
                "value": {"term": term, "nodes": sorted({first[0], node})},
                "evidence": {"reports": [{"node": first[0], "pid": first[1], "term": term},
                                         {"node": node, "pid": pid, "term": term}]},
            })
        return found
