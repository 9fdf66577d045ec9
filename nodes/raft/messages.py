"""Raft peer messages: small frozen, slotted dataclasses (one per RPC and reply).

Owns: the vocabulary nodes/raft/core.py speaks to its peers. Field names follow
the Raft paper (Ongaro & Ousterhout, 2014, Figure 2) and the thesis (pre-vote,
section 9.6; read-index, section 6.4). ``WIRE_TYPES`` names each message's
wire tag; the codec (codec.py, via nodes/common/msgcodec.py) derives the
rest from the fields.

Invariants:
- Every message carries ``src``, ``dest`` and the sender's current ``term``.
- ``AppendEntries.entries`` are contiguous, starting at ``prev_index + 1``,
  and are never mutated after construction (they are shared with the log).
- ``ctx`` is the leader's read-index round number at send time; replies echo
  it, so the leader can tell which heartbeat round a reply acknowledges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nodes.common.core_api import Entry, Snapshot, fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class PreVote:
    """"Would you vote for me at ``term``?" (thesis 9.6). Changes no one's term."""

    src: str
    dest: str
    term: int  # the term the sender would campaign at (its term + 1)
    last_index: int
    last_term: int


@fast_init
@dataclass(frozen=True, slots=True)
class PreVoteReply:
    src: str
    dest: str
    term: int  # the asked term if granted, else the replier's own term
    granted: bool


@fast_init
@dataclass(frozen=True, slots=True)
class RequestVote:
    src: str
    dest: str
    term: int
    last_index: int
    last_term: int


@fast_init
@dataclass(frozen=True, slots=True)
class RequestVoteReply:
    src: str
    dest: str
    term: int
    granted: bool


@fast_init
@dataclass(frozen=True, slots=True)
class AppendEntries:
    src: str
    dest: str
    term: int
    prev_index: int
    prev_term: int
    entries: Sequence[Entry]
    commit: int
    ctx: int


@fast_init
@dataclass(frozen=True, slots=True)
class AppendReply:
    """On success ``index`` is the last index known to match the leader; on
    reject it is the rejected ``prev_index`` and (``hint_index``,
    ``hint_term``) let the leader skip a whole term at a time."""

    src: str
    dest: str
    term: int
    success: bool
    index: int
    hint_index: int
    hint_term: int
    ctx: int


@fast_init
@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader liveness and commit news; ``commit`` is capped at the follower's match."""

    src: str
    dest: str
    term: int
    commit: int
    ctx: int


@fast_init
@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    src: str
    dest: str
    term: int
    ctx: int


@fast_init
@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    src: str
    dest: str
    term: int
    snapshot: Snapshot
    ctx: int


@fast_init
@dataclass(frozen=True, slots=True)
class SnapshotReply:
    """``index``: the follower's commit index after handling the snapshot."""

    src: str
    dest: str
    term: int
    index: int
    ctx: int


Message = (
    PreVote
    | PreVoteReply
    | RequestVote
    | RequestVoteReply
    | AppendEntries
    | AppendReply
    | Heartbeat
    | HeartbeatReply
    | InstallSnapshot
    | SnapshotReply
)


#: The wire tag of every message (the map's "type").
WIRE_TYPES: dict[str, type] = {
    "prevote": PreVote,
    "prevote_reply": PreVoteReply,
    "vote": RequestVote,
    "vote_reply": RequestVoteReply,
    "append": AppendEntries,
    "append_reply": AppendReply,
    "heartbeat": Heartbeat,
    "heartbeat_reply": HeartbeatReply,
    "snapshot": InstallSnapshot,
    "snapshot_reply": SnapshotReply,
}
