"""The leader's view of one follower: how far it matches, what to send next.

Owns: per-follower flow control (etcd-io/raft's ``Progress``). A follower is
in one of three states:

- PROBE: its log position is unknown (new leader, or after a reject); one
  AppendEntries at a time (``paused`` until a reply or heartbeat reply), so a
  diverged follower is not flooded while the leader backs up.
- REPLICATE: it matched recently; the leader streams batches optimistically,
  advancing ``next`` as it sends, with at most ``max_inflight`` appends
  unacknowledged (``inflight`` holds the last index of each).
- SNAPSHOT: the entries it needs were compacted; an InstallSnapshot is out.

Invariants: ``match < next``; ``match`` never decreases within a term;
``inflight`` is increasing and every element is < ``next``.
"""

from __future__ import annotations

from collections import deque

PROBE, REPLICATE, SNAPSHOT = 0, 1, 2


class Progress:
    """The leader's view of one follower."""

    __slots__ = ("active", "ctx", "inflight", "match", "next", "paused", "resend", "snap_tick",
                 "state")

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.paused = False  # probe: one append outstanding, wait for a reply
        self.inflight: deque[int] = deque()  # replicate: last index of each append in flight
        self.active = True  # heard from since the last check-quorum
        self.ctx = 0  # highest read-index round this follower acknowledged
        self.snap_tick = 0  # tick at which a snapshot was last sent
        self.resend = False  # send an append even if empty (to detect lost ones)

    def to_probe(self, next_index: int) -> None:
        self.state = PROBE
        self.next = next_index
        self.paused = False
        self.inflight.clear()
