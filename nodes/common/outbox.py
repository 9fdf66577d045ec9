"""The effects a core collects between two ``ready()`` calls, shared by both cores.

Owns the core's half of the Ready contract (docs/node-contract.md, "The core
and the driver"; nodes/common/core_api.py): the buffers the inputs append
to, ``ready()`` that hands them over in one ``Ready`` (etcd's Ready plus
acceptReady: it sends nothing, starts no round, changes no protocol state),
the soft state reported when it changed, and ``advance()`` that records what
the driver reports applied (``applied_index``, for ``status``).

A core inherits it, calls ``_init_outbox()`` in its constructor, keeps
``role``, ``leader`` and ``term`` attributes (Paxos: the promised round),
``read_index`` (options.read_mode is "index"), ``bug_stale_read`` and a
``reads`` queue (nodes/common/readindex.py), and implements ``requests``.
The Outbox gives it ``request`` (a batch of one) and ``_take_read``, the one
routing of a leader's reads.

Invariants:
- Every effect appended to a buffer leaves in exactly one Ready, in append
  order; a buffer is replaced after it is handed over (an empty one may stay
  shared with the Ready it was in, except ``out_replies``, which is always
  fresh: the applier appends to ``Ready.replies``).
- ``out_waiters`` positions index ``out_committed`` of the same Ready.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nodes.common.core_api import (
    ClientReply,
    ClientRequest,
    ConfirmedRead,
    Entry,
    Ready,
    Snapshot,
    SoftState,
    Waiter,
)
from nodes.common.readindex import ReadQueue

#: The fields ready() sets, in order; a Ready field it does not know would be unset.
_READY_FIELDS = ("soft_state", "meta", "truncate_from", "entries", "snapshot", "restore",
                 "messages", "replies", "early_messages", "committed", "waiters", "reads")
if tuple(f.name for f in dataclasses.fields(Ready)) != _READY_FIELDS:
    raise ImportError("nodes/common/outbox.py: Outbox.ready() does not set every Ready field")


class Outbox:
    """Mixin: a core's buffers for the next Ready, ``ready()`` and ``advance()``."""

    role: str
    leader: str | None
    term: int
    read_index: bool
    bug_stale_read: bool
    reads: ReadQueue

    def requests(self, batch: list[tuple[bytes, ClientRequest]]) -> None:
        raise NotImplementedError

    def request(self, client: bytes, req: ClientRequest) -> None:
        """A batch of one (see the core's ``requests``)."""
        self.requests([(client, req)])

    def _take_read(self, client: bytes, req: ClientRequest, index: int) -> bool:
        """A read at a leader whose read index is ``index``: True if it is
        taken here (queued for a read-index round, or -- BUG stale-read --
        answered from the store at once, however deposed we may be); False:
        it goes through the log like a write."""
        if self.bug_stale_read:
            self.out_reads.append((client, req["id"], req["key"]))
            return True
        if self.read_index:
            self.reads.add(client, req["id"], req["key"], index)
            return True
        return False

    def _init_outbox(self, applied: int) -> None:
        self._soft = SoftState("", None, -1)  # never a real one: the first ready() reports
        self.applied_index = applied  # what the applier reported applied (advance)
        self.out_meta: dict[str, Any] | None = None
        self.out_truncate: int | None = None
        self.out_entries: list[Entry] = []
        self.out_snapshot: Snapshot | None = None
        self.out_restore = False  # out_snapshot came from a peer (Ready.restore)
        self.out_messages: list[Any] = []
        #: A leader's replication messages (Ready.early_messages).
        self.out_early: list[Any] = []
        self.out_replies: list[tuple[bytes | None, ClientReply]] = []
        self.out_committed: list[Entry] = []
        self.out_waiters: list[tuple[int, Waiter]] = []
        self.out_reads: list[ConfirmedRead] = []

    def ready(self) -> Ready | None:
        """Hand over the effects collected since the last ``ready()``, or None."""
        cur = self._soft
        soft: SoftState | None
        if cur.role != self.role or cur.leader != self.leader or cur.term != self.term:
            soft = self._soft = SoftState(self.role, self.leader, self.term)
        elif not (self.out_messages or self.out_early or self.out_entries or self.out_replies
                  or self.out_committed or self.out_meta is not None or self.out_reads
                  or self.out_truncate is not None or self.out_snapshot is not None):
            return None  # the common case of an input that changed nothing
        else:
            soft = None
        # Built field by field, without the dataclass __init__ (defaults, factories:
        # twice the cost in pure Python, and interpreted even in mypyc's build, where
        # Ready is a native class and these stores are C); _READY_FIELDS checks
        # this sets every field.
        rd = Ready.__new__(Ready)
        rd.soft_state = soft
        rd.meta = self.out_meta
        rd.truncate_from = self.out_truncate
        rd.entries = self.out_entries
        rd.snapshot = self.out_snapshot
        rd.restore = self.out_restore
        rd.messages = self.out_messages
        rd.replies = self.out_replies
        rd.early_messages = self.out_early
        rd.committed = self.out_committed
        rd.waiters = self.out_waiters
        rd.reads = self.out_reads
        if rd.meta is not None:
            self.out_meta = None
        if rd.truncate_from is not None:
            self.out_truncate = None
        if rd.snapshot is not None:
            self.out_snapshot = None
            self.out_restore = False
        self.out_replies = []
        if rd.entries:
            self.out_entries = []
        if rd.messages:
            self.out_messages = []
        if rd.early_messages:
            self.out_early = []
        if rd.committed:
            self.out_committed = []
            if rd.waiters:
                self.out_waiters = []
        if rd.reads:
            self.out_reads = []
        return rd

    def advance(self, rd: Ready) -> None:
        """``rd`` was carried out: its records are durable and its committed
        entries applied, so the store now reflects them (``status``)."""
        if rd.committed:
            self.applied_index = rd.committed[-1].index
        elif rd.restore and rd.snapshot is not None:
            self.applied_index = rd.snapshot.index
