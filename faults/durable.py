"""Durable state across restarts: what a node started from, held against what it said before.

Owns ``DurableWatch``: fed every ``status`` a node gives, it keeps each
node's highest durable state any incarnation reported (Raft: ``term`` and
``voted_for``; Multi-Paxos: the promised ballot, ``ballot`` and
``ballot_node``) and, the first time it sees an incarnation (a new pid), holds
that incarnation's ``restored`` field (docs/node-contract.md: the state it
found on its disk when it started) against it. A restored state below what
an earlier incarnation reported is recorded once, at once, as the nemesis
event ``durable-end`` (the durability of that state ended), value ``{"node",
"before", "after"}``, evidence ``{"reports": [{"node", "pid", ...state}, x2]}``
(the earlier report and the restart that met it). faults/findings.py turns it
into the ``durable-state-lost`` finding. Both interpreters feed it with the
statuses the agreement and election watches read (faults/interpret.py,
harness/simrun.py).

Why it is sound: Raft keeps ``currentTerm`` and ``votedFor`` on stable storage
before it answers anything (paper, Figure 2), and a Paxos acceptor keeps its
promise so; our drivers answer ``status`` only after the Ready before it was
persisted and fsynced (nodes/common/driver.py; the simulator samples a node
only when no fsync of it is in flight), so every state a status shows is on
the disk. ``kill`` loses nothing written and ``lose-unsynced`` only what was
never fsynced, so a correct node restarts from at least what it reported.
Nothing here knows a bug: any node that acts on a term, vote or promise it did
not make durable (or restores the wrong one) fails it, whatever the faults
that made it restart. A node ``corrupt`` damaged may come back from a repaired
file; faults/findings.py excludes it from then on.

The order (``covers``): Raft, a later state covers an earlier one when its term
is higher, or equal with the same vote or with the earlier one not having
voted (a node votes at most once per term). Paxos ballots are ``(round,
node)`` pairs ordered as the core orders them; a higher or equal one covers.

Invariants: at most ``LIMIT`` events per run, one per incarnation; a status
without ``restored`` or without a pid is only remembered, never checked
(``--system COMMAND`` nodes and older nodes report none); nothing here runs
per message, only per status.
"""

from __future__ import annotations

from typing import Any

#: The nemesis event a lost durable state is recorded as (``-end``: no window,
#: as faults/agreement.py explains).
EVENT = "durable-end"
#: At most this many events per run.
LIMIT = 8

#: A durable state: ("raft", term, vote) or ("paxos", round, node).
State = tuple[str, int, Any]


def now_of(status: dict[str, Any]) -> State | None:
    """The durable state a status shows now (None: not one we know)."""
    if "ballot" in status:
        r, n = status.get("ballot"), status.get("ballot_node")
        if type(r) is int and isinstance(n, str):
            return ("paxos", r, n)
        return None
    t, v = status.get("term"), status.get("voted_for")
    if type(t) is int and (v is None or isinstance(v, str)):
        return ("raft", t, v)
    return None


def restored_of(restored: Any) -> State | None:
    """The state a status's ``restored`` field names (None: absent or malformed)."""
    if not isinstance(restored, dict):
        return None
    if "ballot" in restored:
        b = restored.get("ballot")
        if isinstance(b, (list, tuple)) and len(b) == 2 and type(b[0]) is int \
                and isinstance(b[1], str):
            return ("paxos", b[0], b[1])
        return None
    t, v = restored.get("term"), restored.get("vote")
    if type(t) is int and (v is None or isinstance(v, str)):
        return ("raft", t, v)
    return None


def covers(later: State, earlier: State) -> bool:
    """True when ``later`` keeps everything ``earlier`` promised (module header)."""
    if later[0] != earlier[0]:
        return True  # two protocols: nothing to compare
    if later[0] == "paxos":
        return (later[1], later[2]) >= (earlier[1], earlier[2])
    if later[1] != earlier[1]:
        return later[1] > earlier[1]
    return earlier[2] is None or later[2] == earlier[2]


def _fields(state: State) -> dict[str, Any]:
    if state[0] == "paxos":
        return {"ballot": [state[1], state[2]]}
    return {"term": state[1], "vote": state[2]}


class DurableWatch:
    """Each node's highest durable state reported, and the restarts that fell below it."""

    __slots__ = ("best", "checked", "events")

    def __init__(self) -> None:
        #: node -> (its highest state reported, the pid that reported it)
        self.best: dict[str, tuple[State, Any]] = {}
        #: node -> the pids whose ``restored`` was held against ``best``
        self.checked: dict[str, set[Any]] = {}
        self.events = 0

    def observe(self, node: str, pid: Any, status: dict[str, Any]) -> list[dict[str, Any]]:
        """One node's status. Returns the lost states it proves, each
        ``{"value", "evidence"}`` of an ``EVENT`` to record now."""
        found: list[dict[str, Any]] = []
        best = self.best.get(node)
        if pid is not None:
            seen = self.checked.setdefault(node, set())
            if pid not in seen:
                seen.add(pid)
                start = restored_of(status.get("restored"))
                if (start is not None and best is not None and best[1] != pid
                        and not covers(start, best[0]) and self.events < LIMIT):
                    self.events += 1
                    found.append({
                        "value": {"node": node, "before": _fields(best[0]),
                                  "after": _fields(start)},
                        "evidence": {"reports": [
                            {"node": node, "pid": best[1], **_fields(best[0])},
                            {"node": node, "pid": pid, "restored": True, **_fields(start)}]},
                    })
        now = now_of(status)
        if now is not None and (best is None or (now != best[0] and covers(now, best[0]))):
            self.best[node] = (now, pid)
        return found
