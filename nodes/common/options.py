"""The ``options`` section of cluster.json as both cores read it (docs/cluster-json.md).

Owns every option a core understands, its type and its ONE default, so the
Raft and Paxos cores, cluster.json validation and the harness cannot drift
apart (they did once: the harness forced ``read_mode: "log"`` while both
cores defaulted to ``"index"``). Nothing else in the repository may default an
option; a writer of cluster.json that leaves a key out gets the value here.

Invariants: ``CoreOptions.parse`` never mutates its input; any bad value
raises ``ValueError`` with a one-line message naming the option; keys it does
not know pass through untouched (a newer harness may write them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Reads through the log (textbook, one entry and one fsync per read) or
#: read-index (Ongaro's thesis 6.4: one heartbeat round confirms a batch of
#: reads). Read-index is the default: it is what both cores are built around
#: and as linearizable as the log; ``"log"`` is the simpler baseline.
READ_MODES = ("index", "log")
DEFAULT_READ_MODE = "index"
#: Applied entries between snapshots.
DEFAULT_SNAPSHOT_ENTRIES = 10_000
#: Entries per replication message (Raft AppendEntries, Paxos retransmitted Accept / Learn).
DEFAULT_MAX_BATCH = 1024
#: Replication messages in flight per follower (Raft pipelining).
DEFAULT_MAX_INFLIGHT = 64


@dataclass(frozen=True, slots=True)
class CoreOptions:
    """What a core takes from ``options``; every field has its default here."""

    read_mode: str = DEFAULT_READ_MODE
    snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES
    max_batch: int = DEFAULT_MAX_BATCH
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    bugs: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> CoreOptions:
        """Validate ``raw`` (a cluster.json ``options`` object); missing or null
        keys take the defaults above. Raises ``ValueError`` (one line)."""
        raw = raw or {}
        read_mode = raw.get("read_mode")
        if read_mode is None:
            read_mode = DEFAULT_READ_MODE
        if read_mode not in READ_MODES:
            raise ValueError(
                f"options.read_mode must be one of {', '.join(READ_MODES)}, not {read_mode!r}")
        bugs = raw.get("bugs")
        if bugs is None:
            bugs = ()
        if not isinstance(bugs, (list, tuple, set, frozenset)) or not all(
                isinstance(b, str) for b in bugs):
            raise ValueError("options.bugs must be a list of bug names (strings)")
        return cls(
            read_mode=read_mode,
            snapshot_entries=_count(raw, "snapshot_entries", DEFAULT_SNAPSHOT_ENTRIES),
            max_batch=_count(raw, "max_batch", DEFAULT_MAX_BATCH),
            max_inflight=_count(raw, "max_inflight", DEFAULT_MAX_INFLIGHT),
            bugs=frozenset(bugs),
        )


def _count(raw: Mapping[str, Any], name: str, default: int) -> int:
    """A positive int option; missing, null or 0 means the default (as before)."""
    v = raw.get(name)
    if v is None or v == 0:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"options.{name} must be a positive integer, not {v!r}")
    return v
