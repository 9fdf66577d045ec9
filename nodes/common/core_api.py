"""The seam between a pure consensus core and the driver that does its I/O.

A core (``nodes/raft/core.py``, ``nodes/paxos/core.py``) is a deterministic
state machine in the style of etcd-io/raft: no sockets, no clock, no global
random. The driver (``nodes/common/driver.py``) owns ZeroMQ, the disk and
time, and talks to a core only through this module.

Inputs, called by the driver (never re-entrantly):

- ``core.step(msg)``            a decoded peer message (the core's own type)
- ``core.request(client, req)`` a validated client request; ``client`` is an
                                opaque routing id the reply must carry back
- ``core.tick()``               one logical tick; the driver calls it every
                                ``Timing.tick_ms`` of wall time, so timeouts
                                are counted in ticks
- ``core.status()``             the ``status`` reply body (no consensus)

After a batch of inputs the driver calls ``core.ready()``. A ``Ready`` lists
the effects in the order their duties require, and the driver performs them
in exactly this order:

1. ``meta`` (term/vote, or promised ballot) replaced atomically, then
   ``truncate_from`` and ``entries`` appended to the log, then ``snapshot``
   saved (and the log compacted up to it) -- all fsynced before step 2, since
   every message and reply in this Ready may depend on them;
2. ``messages`` sent to peers (best effort: the network may lose them);
3. ``replies`` sent to clients.

A core never sees a Ready's effects fail: if the disk fails the driver exits
(a node that cannot persist must not speak).

Restart: the driver reads the data directory into ``Restored`` and passes it
to the core's constructor. The storage guarantees that ``Restored`` holds
everything that was fsynced: the newest meta, the newest snapshot, and the
log entries after it, where a later write of an index replaces the earlier
one and ``truncate_from`` removed everything at or past its index.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: A client request after validation by the driver. Keys as in DESIGN.md:
#: ``id`` (int), ``op`` ("read" | "write" | "cas"), ``key`` (str),
#: ``value`` and ``expected`` (any msgpack value). ``status`` never reaches
#: the core's ``request``.
ClientRequest = dict[str, Any]

#: A client reply body: ``{"id", "ok", "value"?, "error"?, "definite"?, "leader"?}``.
ClientReply = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One durable log record. Raft: (index, term, command). Paxos: (slot,
    ballot round, {"ballot": ..., "value": ...}) or whatever the core needs;
    ``data`` must be msgpack-serialisable."""

    index: int
    term: int
    data: Any


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine state as of ``index`` (inclusive). ``term`` is the term
    (Raft) or 0 where the protocol has none. ``data`` is opaque bytes the core
    produced (e.g. the encoded key-value map plus anything it must keep)."""

    index: int
    term: int
    data: bytes


@dataclass(slots=True)
class Ready:
    """Effects to perform, in field order (see the module header)."""

    meta: dict[str, Any] | None = None
    truncate_from: int | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list[Any] = field(default_factory=list)
    replies: list[tuple[bytes, ClientReply]] = field(default_factory=list)
    #: Optional (added for the leader's parallel disk write, Raft thesis
    #: 10.2.1): messages that claim nothing about this node's durable state,
    #: e.g. a Raft leader's AppendEntries. When ``meta`` and ``truncate_from``
    #: are None the driver sends them after writing ``entries`` but BEFORE
    #: the fsync, so the leader's disk write overlaps the followers'. Safe
    #: because the driver handles no input until the fsync is done: no
    #: acknowledgement of these entries is counted before they are durable
    #: here. Otherwise they are sent with ``messages``, after the fsync.
    early_messages: list[Any] = field(default_factory=list)

    def needs_fsync(self) -> bool:
        return (
            self.meta is not None
            or self.truncate_from is not None
            or bool(self.entries)
            or self.snapshot is not None
        )


@dataclass(frozen=True, slots=True)
class Restored:
    """What the data directory held at start; empty on a first start."""

    meta: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock timing from cluster.json, and the tick that converts it."""

    heartbeat_ms: int = 50
    election_timeout_ms: tuple[int, int] = (300, 600)
    tick_ms: int = 10

    def ticks(self, ms: int) -> int:
        return max(1, round(ms / self.tick_ms))


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Everything a core needs besides its restored state."""

    node_id: str
    peers: tuple[str, ...]  # the other nodes' ids, sorted
    timing: Timing
    options: dict[str, Any]  # cluster.json "options" (read_mode, bugs, ...)
    rng: random.Random  # seeded by the driver; the core's only randomness

    @property
    def bugs(self) -> frozenset[str]:
        return frozenset(self.options.get("bugs") or ())


class Core(Protocol):
    def step(self, msg: Any) -> None: ...
    def request(self, client: bytes, req: ClientRequest) -> None: ...
    def tick(self) -> None: ...
    def ready(self) -> Ready | None: ...
    def status(self) -> dict[str, Any]: ...


class Codec(Protocol):
    """Turns a core's message objects into msgpack-able maps and back.
    ``decode`` raises ``ValueError`` on anything malformed."""

    def encode(self, msg: Any) -> dict[str, Any]: ...
    def decode(self, obj: Any) -> Any: ...
    def dest(self, msg: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """What ``python -m nodes NAME`` needs to run a protocol."""

    name: str
    make_core: Callable[[CoreConfig, Restored], Core]
    codec: Codec
