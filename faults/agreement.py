"""Replica agreement: the nodes' own agreement chains, compared while a run goes on.

Owns ``AgreementWatch``: fed every ``status`` a node gives (its ``agree``
field, nodes/common/applier.py: the applied index, a rolling hash over the
commands applied at indexes 1..applied, and the newest sealed marks), it
remembers the first hash reported for each index and returns, once per
pair of node incarnations, the nemesis event that proves two of them
applied different commands by one index: ``f`` ``agreement-end`` (the
replicas' agreement ended), value ``{"index", "nodes"}``, evidence
``{"reports": [{"node", "pid", "hash"}, ...]}``. faults/findings.py turns
that event into the ``replicas-diverged`` finding. Both interpreters feed it:
faults/interpret.py with the statuses it asks for, harness/simrun.py with
each simulated node's applier.

Why it is sound: correct replicas apply the same command at every index
(state machine safety), and a restarted node rebuilds its chain from its
snapshot and log, so one index never has two hashes. It knows no bug; it
is absent for nodes whose status has no ``agree`` (``--system COMMAND``).

Why the event ends in ``-end``: checker/nemesis.py reads a nemesis event
without that suffix as the start of a fault window; an ``-end`` that
matches no window is none, so the report, the replay plan and the fault
windows ignore it.

A node's own proof counts too: an applier made to apply another command at
an index it had applied reports ``rewrote`` ``[index, old hash, new hash]``
(nodes/common/applier.py); it becomes one event, evidence ``rewrote: true``
with the same incarnation's two hashes.

Invariants: a node's reports are compared with every other node's and with
its own earlier incarnations' (``pid``); at most ``LIMIT`` events per run;
nothing here blocks or allocates per applied entry (only per status).
"""

from __future__ import annotations

from typing import Any

#: The nemesis event a divergence is recorded as (see the module header).
EVENT = "agreement-end"
#: At most this many divergence events per run (once replicas diverge, every
#: later index differs too).
LIMIT = 8


class AgreementWatch:
    """The first hash seen per index, and the divergences found so far."""

    __slots__ = ("compared", "events", "pairs", "seen")

    def __init__(self) -> None:
        #: index -> (hash, node, pid) of its first report
        self.seen: dict[int, tuple[str, str, Any]] = {}
        self.pairs: set[tuple[tuple[str, str], tuple[str, str]]] = set()
        self.events = 0
        #: reports that met an earlier one at the same index (the check's reach)
        self.compared = 0

    def observe(self, node: str, pid: Any, agree: Any) -> list[dict[str, Any]]:
        """One node's ``agree`` status field (None or malformed: nothing).
        Returns the divergences it proves, each ``{"value", "evidence"}`` of
        an ``EVENT`` to record now."""
        if type(agree) is not dict:
            return []
        applied, tail, marks = agree.get("applied"), agree.get("hash"), agree.get("marks")
        found: list[dict[str, Any]] = []
        rewrote = agree.get("rewrote")
        if type(rewrote) is list and len(rewrote) == 3:
            self._rewrote(rewrote, node, pid, found)
        if type(marks) is list:
            for m in marks:
                if type(m) is list and len(m) == 2:
                    self._one(m[0], m[1], node, pid, found)
        self._one(applied, tail, node, pid, found)
        return found

    def _one(self, index: Any, h: Any, node: str, pid: Any,
             found: list[dict[str, Any]]) -> None:
        if type(index) is not int or type(h) is not str or index <= 0:
            return
        first = self.seen.get(index)
        if first is None:
            self.seen[index] = (h, node, pid)
            return
        self.compared += 1
        if first[0] == h or self.events >= LIMIT:
            return
        a, b = (first[1], str(first[2])), (node, str(pid))
        if a == b:
            return  # one incarnation never reports two hashes (module header)
        pair = (min(a, b), max(a, b))
        if pair in self.pairs:
            return
        self.pairs.add(pair)
        self.events += 1
        found.append({
            "value": {"index": index, "nodes": sorted({first[1], node})},
            "evidence": {"reports": [{"node": first[1], "pid": first[2], "hash": first[0]},
                                     {"node": node, "pid": pid, "hash": h}]},
        })

    def _rewrote(self, rewrote: list[Any], node: str, pid: Any,
                 found: list[dict[str, Any]]) -> None:
        """An incarnation's own proof (nodes/common/applier.py ``rewrote``): it
        was made to apply another command at an index it had applied."""
        index, old, new = rewrote
        if type(index) is not int or type(old) is not str or type(new) is not str \
                or old == new or index <= 0:
            return
        self._one(index, old, node, pid, found)  # what it applied first, against the rest
        key = ((node, str(pid)), (node, f"{pid} rewrote {index}"))
        if key in self.pairs or self.events >= LIMIT:
            return
        self.pairs.add(key)
        self.events += 1
        found.append({
            "value": {"index": index, "nodes": [node]},
            "evidence": {"rewrote": True,
                         "reports": [{"node": node, "pid": pid, "hash": old},
                                     {"node": node, "pid": pid, "hash": new}]},
        })

