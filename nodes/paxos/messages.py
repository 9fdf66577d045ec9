"""Multi-Paxos peer messages: frozen, slotted dataclasses (the codec, codec.py, derives from them).

Owns: the shape of every message one Paxos node sends another. Every message
carries ``src`` and ``dest`` (node ids) and the ``ballot`` it speaks for.

A ballot is ``(round, node_id)``; Python's tuple order is the total order the
protocol needs (Lamport, "Paxos Made Simple", section 2.2: distinct proposals
have distinct numbers). ``ZERO_BALLOT`` sorts below every real ballot.

Message flow (Paxos Made Simple, sections 2.2 and 3):

- phase 1: ``Prepare`` -> ``Promise`` (ok, with the acceptor's accepted
  proposals from ``from_slot`` on; or a refusal naming the higher ballot);
- phase 2: ``Accept`` (a batch of (slot, value), possibly empty: then it is a
  heartbeat / read confirmation round) -> ``Accepted`` (the slots accepted);
- learning: the leader's ``commit`` rides on every ``Accept``; a follower that
  cannot learn a slot by ballot match says so (``Accepted.stuck``) and gets
  the chosen values (or a snapshot) in a ``Learn``, which it answers with an
  ``Accepted`` of no slots (so the leader sends the next chunk at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodes.common.core_api import Snapshot, fast_init

Ballot = tuple[int, str]
ZERO_BALLOT: Ballot = (0, "")

#: A command as replicated in a slot: {"op", "key", "value"?, "expected"?};
#: ``None`` is a no-op (a hole filled by a new leader).
Value = Any


@fast_init
@dataclass(frozen=True, slots=True)
class Prepare:
    """Phase 1a: promise me ``ballot`` for every slot from ``from_slot`` on."""

    src: str
    dest: str
    ballot: Ballot
    from_slot: int


@fast_init
@dataclass(frozen=True, slots=True)
class PromiseEntry:
    """One acceptor record reported in a promise. ``chosen``: the acceptor
    knows this value is chosen (then ``ballot`` may be ZERO_BALLOT)."""

    slot: int
    ballot: Ballot
    value: Value
    chosen: bool


@fast_init
@dataclass(frozen=True, slots=True)
class Promise:
    """Phase 1b. ``ok`` False: refused, ``promised`` is the higher ballot.
    ``snapshot``: sent when the acceptor compacted slots at or past ``from_slot``
    (they are chosen; the candidate installs it instead of their records)."""

    src: str
    dest: str
    ballot: Ballot
    ok: bool
    promised: Ballot
    accepted: tuple[PromiseEntry, ...]
    commit: int
    snapshot: Snapshot | None


@fast_init
@dataclass(frozen=True, slots=True)
class Accept:
    """Phase 2a for a batch of slots (empty batch = heartbeat). ``commit``: every
    slot up to it is chosen, as far as the leader knows. ``seq``: the read
    confirmation round this message belongs to (echoed back)."""

    src: str
    dest: str
    ballot: Ballot
    entries: tuple[tuple[int, Value], ...]
    commit: int
    seq: int


@fast_init
@dataclass(frozen=True, slots=True)
class Accepted:
    """Phase 2b. ``ok`` False: refused, ``promised`` is the higher ballot.
    ``stuck``: after this message the acceptor still knows less than the
    leader's ``commit`` (it lacks some chosen value: send it a ``Learn``)."""

    src: str
    dest: str
    ballot: Ballot
    ok: bool
    promised: Ballot
    slots: tuple[int, ...]
    commit: int
    seq: int
    stuck: bool


@fast_init
@dataclass(frozen=True, slots=True)
class Learn:
    """Chosen values for a lagging node: ``snapshot`` first (if any), then
    ``entries`` (slot, value), all known chosen by the sender."""

    src: str
    dest: str
    ballot: Ballot
    entries: tuple[tuple[int, Value], ...]
    snapshot: Snapshot | None
    commit: int


Message = Prepare | Promise | Accept | Accepted | Learn


#: The wire tag of every message (the map's "type").
WIRE_TYPES: dict[str, type] = {
    "prepare": Prepare,
    "promise": Promise,
    "accept": Accept,
    "accepted": Accepted,
    "learn": Learn,
}
