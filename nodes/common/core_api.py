"""The seam between a pure consensus core and the driver that does its I/O.

The contract is written out in docs/node-contract.md ("The core and the
driver"); this module is its code. A core (``nodes/raft/core.py``,
``nodes/paxos/core.py``) is a deterministic state machine in the style of
etcd-io/raft: no sockets, no clock, no global random, and no key-value store.
The driver (``nodes/common/driver.py``, or the simulator ``nodes/sim``) owns
ZeroMQ, the disk, time and the state machine (``nodes/common/applier.py``),
and talks to a core only through this module.

Inputs, called by the driver (never re-entrantly):

- ``core.step(msg)``             a decoded peer message (the core's own type)
- ``core.requests(batch)``       the validated client requests of one loop
                                 turn, ``[(client, req), ...]``; ``client`` is
                                 an opaque routing id the reply must carry back.
                                 A leader replicates the whole batch with one
                                 message per follower and starts at most one
                                 read-index round for it (group commit).
                                 ``core.request(client, req)`` is a batch of one.
- ``core.tick()``                one logical tick; the driver calls it every
                                 ``Timing.tick_ms`` of wall time
- ``core.compact(snapshot)``     the applier took ``snapshot`` of the state
                                 machine; the core drops its log up to it
- ``core.status()``              the ``status`` reply body (no consensus)

Output, once per batch of inputs: ``rd = core.ready()`` only COLLECTS: it
hands over the effects the inputs produced since the last ``ready()`` (as
etcd's Ready plus acceptReady) and sends nothing, starts no round, changes
no protocol state -- replication messages and read rounds are produced by
the inputs themselves (``requests`` batches them). The driver carries ``rd``
out and then calls ``core.advance(rd)``, which tells the core that all of it
happened: the entries are durable and the committed entries applied (the
``last_applied`` of ``status`` moves then). ``rd`` is read before the next
input: the core may keep using the lists of ``rd`` that were empty, except
``replies``, which is always the caller's (the applier appends to it).

Order of carrying out, which every driver keeps:

1. ``early_messages`` are sent between the log write and its fsync, but only
   when ``meta`` and ``truncate_from`` are None (else they go with step 3);
2. ``meta`` (term/vote, or promised ballot) replaced atomically, then
   ``truncate_from`` and ``entries`` appended to the log, then ``snapshot``
   saved (and the log compacted up to it) -- all fsynced before step 3, since
   every message and reply in this Ready may depend on them;
3. the applier applies ``committed`` (and, if ``restore``, replaces the
   state machine by ``snapshot`` before the entries past it), answers
   ``waiters`` and the confirmed ``reads``; ``messages`` are sent to peers
   (best effort); then ``replies`` (the core's and the applier's) go to
   clients. Then ``advance(rd)``, and a snapshot the applier took goes to
   ``core.compact``.

Why early messages are safe (Raft thesis 10.2.1): they are a leader's
replication messages, which claim nothing about its own disk; the driver
handles no input (so counts no acknowledgement) until the fsync is done, and
the replies they may release wait for it too.

A core never sees a Ready's effects fail: if the disk fails the driver exits
(a node that cannot persist must not speak).

Restart: the driver reads the data directory into ``Restored`` and passes it
to the core's constructor (and its snapshot to the applier's). The storage
guarantees that ``Restored`` holds everything that was fsynced: the newest
meta, the newest snapshot, and the log entries after it, where a later write
of an index replaces the earlier one and ``truncate_from`` removed everything
at or past its index.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from nodes.common.options import CoreOptions

#: A client request after validation by the driver (docs/node-contract.md):
#: ``id`` (int), ``op`` ("read" | "write" | "cas"), ``key`` (str),
#: ``value`` and ``expected`` (any msgpack value). ``status`` never reaches
#: the core's ``request``.
ClientRequest = dict[str, Any]

#: A client reply body: ``{"id", "ok", "value"?, "error"?, "definite"?, "leader"?}``.
ClientReply = dict[str, Any]

#: A client waiting for its command at a log index: (client, request id, term,
#: command). It is the client's own entry iff the committed entry holds a
#: command and, where given (not None), has that ``term`` (Raft: Log
#: Matching) and equals that ``command`` (Paxos: a slot is chosen with one value).
#: The client is None when the core already answered it (BUG early-ack).
Waiter = tuple["bytes | None", Any, "int | None", Any]

#: A read the core confirmed: (client, request id, key). Its read index is
#: at or below the entries committed so far, so the applier answers it at once.
ConfirmedRead = tuple[bytes, Any, str]


_C = TypeVar("_C", bound=type)


def fast_init(cls: _C) -> _C:
    """Give a frozen, slotted dataclass without defaults a faster ``__init__``.

    The generated one of a frozen dataclass sets each field through
    ``object.__setattr__`` (a lookup and a generic call per field), which made
    constructing a message several times dearer than the work done with it on
    the hot path. This one sets the slots through their member descriptors:
    same signature, same result, still frozen afterwards (assignment raises
    ``FrozenInstanceError`` as before). Apply it above ``@dataclass``."""
    params = getattr(cls, "__dataclass_params__", None)
    fields = dataclasses.fields(cls)
    if (
        params is None
        or not params.frozen
        or "__slots__" not in cls.__dict__
        or hasattr(cls, "__post_init__")
        or any(
            f.default is not dataclasses.MISSING
            or f.default_factory is not dataclasses.MISSING
            or not f.init
            for f in fields
        )
    ):
        raise TypeError(
            f"fast_init: {cls.__name__} is not a frozen slotted dataclass without defaults"
        )
    names = [f.name for f in fields]
    env = {f"_s{k}": cls.__dict__[name].__set__ for k, name in enumerate(names)}
    body = "".join(f"    _s{k}(self, {name})\n" for k, name in enumerate(names)) or "    pass\n"
    src = f"def __init__(self, {', '.join(names)}):\n{body}"
    exec(compile(src, f"<fast_init {cls.__name__}>", "exec"), env)  # noqa: S102 -- our fields
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__  # type: ignore[misc]
    cls.__init__ = init  # type: ignore[misc]
    return cls


@fast_init
@dataclass(frozen=True, slots=True)
class Entry:
    """One durable log record. Raft: (index, term, command). Paxos: (slot,
    ballot round, {"ballot": ..., "value": ...}) or whatever the core needs;
    ``data`` must be msgpack-serialisable."""

    index: int
    term: int
    data: Any


@fast_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine state as of ``index`` (inclusive). ``term`` is the term
    (Raft) or 0 where the protocol has none. ``data`` is opaque bytes the core
    produced (e.g. the encoded key-value map plus anything it must keep)."""

    index: int
    term: int
    data: bytes


@fast_init
@dataclass(frozen=True, slots=True)
class SoftState:
    """Who this node thinks it is: not durable, reported when it changes.
    ``term`` is Raft's term or the round of Paxos's promised ballot."""

    role: str
    leader: str | None
    term: int


@dataclass(slots=True)
class Ready:
    """Effects to carry out (see the module header for the order)."""

    #: Set only when (role, leader, term) differs from the last one handed over.
    soft_state: SoftState | None = None
    meta: dict[str, Any] | None = None
    truncate_from: int | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    #: ``snapshot`` came from a peer: the state machine is replaced by it
    #: (after the committed entries at or below its index are applied).
    restore: bool = False
    messages: list[Any] = field(default_factory=list)
    #: (client, reply); client None: a waiter the core already answered (BUG early-ack).
    replies: list[tuple[bytes | None, ClientReply]] = field(default_factory=list)
    #: Messages that claim nothing about this node's durable state (a
    #: leader's replication messages); see the module header, step 1.
    early_messages: list[Any] = field(default_factory=list)
    #: Entries newly known committed, in the order to apply them.
    committed: list[Entry] = field(default_factory=list)
    #: (position in ``committed``, its waiter), in position order: the clients
    #: the applier answers with those entries' results.
    waiters: list[tuple[int, Waiter]] = field(default_factory=list)
    #: Reads confirmed by a read-index round (or, under BUG stale-read, not).
    reads: list[ConfirmedRead] = field(default_factory=list)


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
    options: dict[str, Any]  # cluster.json "options"; read through CoreOptions
    rng: random.Random  # seeded by the driver; the core's only randomness

    @property
    def bugs(self) -> frozenset[str]:
        return frozenset(self.options.get("bugs") or ())

    def parsed(self) -> CoreOptions:
        """The options with their defaults (nodes/common/options.py); ValueError if bad."""
        return CoreOptions.parse(self.options)


class Core(Protocol):
    def step(self, msg: Any) -> None: ...
    def request(self, client: bytes, req: ClientRequest) -> None: ...
    def requests(self, batch: list[tuple[bytes, ClientRequest]]) -> None: ...
    def tick(self) -> None: ...
    def compact(self, snapshot: Snapshot) -> None: ...
    def ready(self) -> Ready | None: ...
    def advance(self, rd: Ready) -> None: ...
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
    #: What ``SoftState.term`` is called in log lines: "term" or "ballot".
    term_name: str = "term"
