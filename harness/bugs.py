"""The bug registry: every known consensus bug our nodes can switch on.

Owns ``BUGS`` (name -> ``Bug``): the name, the systems whose nodes implement
the flag, the mistake in one line, and the workload whose operations it
breaks (the transaction bugs break only ``txn`` requests, so only
``--workload list-append`` can show them; the others break reads and writes). Nothing else: ``--bug NAME`` only turns
the bug on in the nodes (cluster.json ``options.bugs``); it changes no fault,
timing, key count or node option. The fault mixes written to demonstrate each
bug are faults/mixes.py, asked for with ``--nemesis bug:NAME``.

Used by ``RunConfig.validate`` (a bug the system does not implement is a
one-line usage error), the runner (results.json names each bug's mistake),
``harness run --help``, benchmarks/bug_zoo.py and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    name: str
    systems: tuple[str, ...]
    #: The mistake, in one line (for --help, the report and the benchmark).
    mistake: str
    #: The workload (harness/workload.py) whose operations the bug breaks.
    workload: str = "kv"


BUGS: dict[str, Bug] = {b.name: b for b in (
    Bug("stale-read", ("raft", "paxos"),
        "a leader answers reads from its own state without confirming it still leads"),
    Bug("early-ack", ("raft", "paxos"),
        "the leader acknowledges a write once it is in its own log, before a majority has it"),
    Bug("no-adopt", ("paxos",),
        "a new leader proposes its own value instead of the highest-ballot accepted value "
        "it was told about"),
    Bug("forget-promise", ("paxos",),
        "an acceptor's promise is not made durable, so a restarted acceptor accepts an older "
        "ballot it promised to ignore"),
    Bug("forget-vote", ("raft",),
        "the vote is not made durable, so a restarted node can vote twice in a term"),
    Bug("no-log-check", ("raft",),
        "votes are granted without the 'candidate's log is at least as up to date' check"),
    Bug("commit-old-term", ("raft",),
        "a leader commits entries of earlier terms by counting replicas (the paper's Figure 8)"),
    Bug("txn-split", ("raft", "paxos"),
        "a transaction's micro-operations are proposed as separate log entries, one after "
        "another, so other transactions interleave (not atomic)", "list-append"),
    Bug("txn-dirty-read", ("raft",),
        "the leader answers a read-only transaction from its log, including entries not yet "
        "committed", "list-append"),
    Bug("no-fsync", ("raft", "paxos"),
        "acknowledges writes and grants votes without fsync: the data is written but never "
        "synced, so a power loss forgets what was acknowledged"),
    Bug("lease-read", ("raft", "paxos"),
        "the leader answers reads under a time lease counted in its own ticks since its last "
        "quorum contact, without a round, trusting that clocks agree"),
)}


class BugError(ValueError):
    """An unknown bug, or one the chosen system does not have; one line."""


def get(name: str) -> Bug:
    try:
        return BUGS[name]
    except KeyError:
        raise BugError(f"unknown bug {name!r} (known: {', '.join(BUGS)})") from None


def names(system: str | None = None) -> list[str]:
    """Every bug name, or those ``system`` implements, in registry order."""
    return [b.name for b in BUGS.values() if system is None or system in b.systems]


def check(bugs: list[str], system: str) -> None:
    """BugError unless every bug is known and implemented by ``system``
    (raft or paxos; other node commands may have bugs of their own)."""
    if system not in ("raft", "paxos"):
        return
    for name in bugs:
        bug = get(name)
        if system not in bug.systems:
            raise BugError(f"--bug {name} is a {' and '.join(bug.systems)} bug; "
                           f"{system} has {', '.join(names(system))}")
