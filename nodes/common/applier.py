"""The one state machine applier, shared by both cores and every driver.

Owns the node's key-value store (nodes/common/kv.py) and everything that
reads or writes it: applying ``Ready.committed`` in order, answering each
committed entry's waiter, answering ``Ready.reads``, replacing the store by a
snapshot a peer sent (``Ready.restore``), and taking snapshots of it every
``options.snapshot_entries`` applied entries (handed to ``core.compact``).
The cores never touch the store (docs/node-contract.md, "Committed entries
and the applier").

Invariants:
- The same committed entries in the same order give the same store on every
  replica (state machine safety rests on it); entries are applied exactly in
  the order the core listed them.
- ``Ready.waiters`` are (position in ``Ready.committed``, waiter) in
  position order. A waiter hears ``ok`` (with the command's result) only if
  the committed entry at its position is its own (``core_api.Waiter``); otherwise its outcome is unknown
  (the entry may have been replaced by another leader's): never ``definite``.
- A confirmed read is answered after every committed entry of its Ready was
  applied, so it sees at least its read index.
- A transaction split into parts (BUG txn-split, ``kv.split_txn``) has its
  waiter on every part; the applier keeps the parts' results and answers once,
  at the last part (or outcome-unknown at the first part that is not its own).
- With ``restore``, committed entries at or below the snapshot's index are
  applied first (their waiters get their results), then the store becomes the
  snapshot, then the entries after it are applied.

The agreement chain (``agreement()``, in the node's ``status`` as ``agree``;
faults/agreement.py compares the replicas' reports): a rolling 64-bit hash
(blake2b) over the commands applied at indexes 1, 2, ..., sealed every
``BLOCK`` indexes into a mark ``(index, hash)``; the newest ``MARKS`` marks
are kept. Replicas that applied the same commands at the same indexes report
the same hash at every index, so two reports that differ at one index prove
that the replicas diverged there (or one lost an applied entry). Invariants:
- the chain at index i depends only on the commands at 1..i (not on batching,
  terms, snapshots or restarts): marks fall on multiples of ``BLOCK``, and the
  hash of an index between marks is the last mark's hash over the commands
  after it, the same formula a mark is sealed with;
- it survives restarts and peer snapshots: a snapshot carries the chain's
  state (``KVStore.snapshot(extra)``), and a restart applies the log after
  the snapshot again; a snapshot without it (an older node's), or a batch
  that does not follow the last applied index, makes the chain unknown for
  this incarnation (``agreement()`` None), never wrong;
- a batch that starts at or below the applied index re-applies indexes this
  incarnation applied already. Correct cores never do that with another
  command (state machine safety, on one replica), so where the commands of
  those indexes are still held (the pending ones and the last ``HELD``
  sealed blocks) they are compared: the first index that got another command
  is reported as ``rewrote`` ``[index, hash as applied first, hash now]``
  (both by the chain's own formula, so comparable with any replica's), the
  proof faults/agreement.py turns into a divergence. Identical re-applied
  commands prove nothing and report nothing; either way the chain is
  unknown from then on;
- the hot path pays one list ``extend`` per Ready and one msgpack + hash per
  ``BLOCK`` entries; nothing per entry. ``BLOCK`` is small so that a node
  seals a mark soon after any entry (at ~50 entries/s, within ~0.3 s): a
  node killed soon after applying an entry the others never apply has
  usually reported a mark past it by then (a tail hash is comparable only
  with a report at exactly its index).
"""

from __future__ import annotations

from collections import deque
from hashlib import blake2b
from typing import Any

from msgpack import packb

from nodes.common.core_api import ClientReply, Entry, Ready, Snapshot, Waiter
from nodes.common.kv import KVStore

#: Indexes per sealed mark of the agreement chain, and how many marks are kept.
BLOCK = 16
MARKS = 64
#: Sealed blocks whose commands are kept to compare a re-applied index with
#: (module header): a core that rewinds its commit index rewinds to a recent one.
HELD = 4
#: The chain's hash at index 0.
ORIGIN = bytes(8)


def chain_hash(prev: bytes, commands: list[Any]) -> bytes:
    """The chain after ``commands`` (the next indexes in order) from ``prev``."""
    return blake2b(packb(commands, use_bin_type=True), digest_size=8, key=prev).digest()


class Applier:
    """The key-value state machine of one node."""

    __slots__ = ("applied", "blocks", "chain", "kv", "leader", "mark", "marks", "node_id",
                 "parts", "pend", "rewrote", "snap_index", "snapshot_entries")

    def __init__(self, node_id: str, snapshot: Snapshot | None, snapshot_entries: int) -> None:
        """Start from ``snapshot`` (the restored one) or empty. ValueError if
        the snapshot's data is not a key-value map."""
        self.node_id = node_id
        #: the agreement chain (module header): its hash at index ``mark``, the
        #: entries applied after ``mark``, the newest sealed marks
        self.chain: bytes | None = ORIGIN
        self.mark = 0
        self.pend: list[Entry] = []
        self.marks: deque[tuple[int, bytes]] = deque(maxlen=MARKS)
        #: the newest sealed blocks: (index before the block, chain there, its entries)
        self.blocks: deque[tuple[int, bytes, list[Entry]]] = deque(maxlen=HELD)
        #: [index, hash as first applied, hash now]: this incarnation was made to
        #: apply another command at an index it had applied (module header)
        self.rewrote: list[Any] | None = None
        if snapshot is not None:
            self.kv = self._restore(snapshot)
        else:
            self.kv = KVStore()
        self.applied = snapshot.index if snapshot is not None else 0
        self.snap_index = self.applied
        self.snapshot_entries = snapshot_entries
        self.leader: str | None = None  # from the newest soft state, for redirect hints
        # BUG txn-split: (client, request id) -> the results of its parts so far,
        # or None once it was answered
        self.parts: dict[tuple[bytes, Any], list | None] = {}

    def apply(self, rd: Ready) -> Snapshot | None:
        """Apply ``rd``'s committed entries and answer its waiters and reads,
        appending the replies to ``rd.replies``. Returns a snapshot to hand
        to ``core.compact`` when one is due, else None."""
        soft = rd.soft_state
        if soft is not None:
            self.leader = soft.leader
        committed = rd.committed
        if rd.restore and rd.snapshot is not None:
            self._apply_around(rd, rd.snapshot)
        elif committed:
            prev = self.applied
            waiters = rd.waiters
            if waiters:
                self._apply_with_waiters(committed, waiters, 0, len(committed), rd.replies)
            else:  # a follower's common case: nothing to answer
                kv_apply = self.kv.apply
                for entry in committed:
                    cmd = entry.data
                    if cmd is not None:
                        kv_apply(cmd)
            last = self.applied = committed[-1].index
            if self.chain is not None:  # inline: the chain's position is ``prev`` here
                if committed[0].index == prev + 1 and last == prev + len(committed):
                    pend = self.pend
                    pend.extend(committed)
                    if len(pend) >= BLOCK:
                        self._seal()
                else:
                    if committed[0].index <= prev and self.rewrote is None:
                        self.rewrote = self._rewritten(committed, prev)
                    self.chain, self.pend = None, []
        if rd.reads:
            data = self.kv.data
            replies = rd.replies
            for client, rid, key in rd.reads:
                replies.append((client, {"ok": True, "value": data.get(key), "id": rid}))
        if self.applied - self.snap_index >= self.snapshot_entries:
            self.snap_index = self.applied
            extra = None if self.chain is None else \
                [self.mark, self.chain, [e.data for e in self.pend]]
            # the core fills in the term
            return Snapshot(self.applied, 0, self.kv.snapshot(extra))
        return None

    # --- the agreement chain (module header) -------------------------------------

    def agreement(self, since: int = 0) -> dict[str, Any] | None:
        """``{"applied", "hash", "marks": [[index, hash], ...]}`` (hashes in hex;
        the kept marks past index ``since``), or None when this incarnation's
        chain is unknown."""
        chain = self.chain
        if chain is None:
            if self.rewrote is not None:
                return {"applied": self.applied, "hash": None, "marks": [],
                        "rewrote": self.rewrote}
            return None
        if self.pend:
            chain = chain_hash(chain, [e.data for e in self.pend])
        return {"applied": self.applied, "hash": chain.hex(),
                "marks": [[i, h.hex()] for i, h in self.marks if i > since]}

    def _chain(self, committed: list[Entry], start: int, end: int) -> None:
        """Add ``committed[start:end]`` (applied just now, after ``self.applied``)."""
        if end <= start:
            return
        first = committed[start].index
        if first != self.mark + len(self.pend) + 1 or committed[end - 1].index != first + end - start - 1:
            self.chain = None  # not the next indexes: unknown, never wrong
            self.pend = []
            return
        self.pend.extend(committed[start:end] if start or end < len(committed) else committed)
        if len(self.pend) >= BLOCK:
            self._seal()

    def _seal(self) -> None:
        """Seal every full ``BLOCK`` of ``pend`` into a mark."""
        pend = self.pend
        k = 0
        chain, mark = self.chain, self.mark
        assert chain is not None
        while len(pend) - k >= BLOCK:
            block = pend[k:k + BLOCK]
            self.blocks.append((mark, chain, block))
            chain = chain_hash(chain, [e.data for e in block])
            k += BLOCK
            mark += BLOCK
            self.marks.append((mark, chain))
        del pend[:k]
        self.chain, self.mark = chain, mark

    def _rewritten(self, committed: list[Entry], prev: int) -> list[Any] | None:
        """``[index, old hash, new hash]`` of the first index at or below ``prev``
        (the applied index before ``committed``) that ``committed`` gives another
        command than the one applied there, where that one is still held; None
        if there is none or it cannot be told (module header)."""
        if self.chain is None:
            return None
        segments = [*self.blocks, (self.mark, self.chain, self.pend)]
        j = committed[0].index
        held = [k for k, seg in enumerate(segments) if seg[0] < j]
        if not held:
            return None  # re-applies from before anything held
        first = held[-1]
        start = segments[first][0]
        old = [e for seg in segments[first:] for e in seg[2]]
        if len(old) != self.mark + len(self.pend) - start or start + len(old) != prev:
            return None  # not one contiguous run up to the applied index
        new = old[:j - start - 1]
        for x, e in enumerate(committed):
            if e.index != j + x:
                return None
            if e.index > prev:
                break
            new.append(e)
        at = {seg[0]: seg[1] for seg in segments}
        for p in range(j - start - 1, len(new)):
            if packb(old[p].data, use_bin_type=True) != packb(new[p].data, use_bin_type=True):
                index = start + 1 + p
                m = BLOCK * ((index - 1) // BLOCK)  # the mark the chain at index grows from
                base, lo = at[m], m - start
                return [index, chain_hash(base, [e.data for e in old[lo:p + 1]]).hex(),
                        chain_hash(base, [e.data for e in new[lo:p + 1]]).hex()]
        return None

    def _restore(self, snap: Snapshot) -> KVStore:
        """The store of ``snap``, taking the chain's state from it (unknown if it has none)."""
        kv, extra = KVStore.restore_with_extra(snap.data)
        self.marks.clear()
        self.blocks.clear()
        try:
            mark, chain, cmds = extra  # type: ignore[misc]
            ok = (type(mark) is int and type(chain) is bytes and len(chain) == 8
                  and type(cmds) is list and mark + len(cmds) == snap.index)
        except (TypeError, ValueError):
            ok = False
        if ok:
            self.chain, self.mark = chain, mark
            self.pend = [Entry(mark + 1 + k, 0, c) for k, c in enumerate(cmds)]
        else:
            self.chain, self.mark, self.pend = None, snap.index, []
        return kv

    def _apply_around(self, rd: Ready, snap: Snapshot) -> None:
        """Committed entries at or below ``snap.index``, then the snapshot, then the rest."""
        committed = rd.committed
        k = 0
        while k < len(committed) and committed[k].index <= snap.index:
            k += 1
        self._apply_with_waiters(committed, rd.waiters, 0, k, rd.replies)
        if self.chain is not None:
            self._chain(committed, 0, k)
        self.kv = self._restore(snap)
        self.applied = self.snap_index = snap.index
        self._apply_with_waiters(committed, rd.waiters, k, len(committed), rd.replies)
        if self.chain is not None:
            self._chain(committed, k, len(committed))
        if committed:
            self.applied = max(self.applied, committed[-1].index)

    def _apply_with_waiters(self, committed: list[Entry], waiters: list[tuple[int, Waiter]],
                            start: int, end: int,
                            replies: list[tuple[bytes, ClientReply]]) -> None:
        """Apply ``committed[start:end]``; answer the waiters positioned there."""
        kv_apply = self.kv.apply
        w = 0
        while w < len(waiters) and waiters[w][0] < start:
            w += 1
        at = waiters[w][0] if w < len(waiters) else -1
        for pos in range(start, end):
            entry = committed[pos]
            cmd = entry.data
            if cmd is not None:
                result = kv_apply(cmd)
            if pos == at:
                client, rid, term, own = waiters[w][1]
                mine = cmd is not None and (term is None or term == entry.term) and (
                    own is None or own is cmd or own == cmd)
                if cmd is not None and "part" in cmd:
                    reply = self._part(client, rid, cmd["part"], result if mine else None)
                elif mine:
                    reply = dict(result)
                    reply["id"] = rid
                else:
                    reply = unknown_outcome(rid, self.leader, self.node_id)
                if reply is not None:
                    replies.append((client, reply))
                w += 1
                at = waiters[w][0] if w < len(waiters) else -1
        if end > start:
            self.applied = committed[end - 1].index

    def _part(self, client: bytes, rid: Any, part: list[int],
              result: dict[str, Any] | None) -> ClientReply | None:
        """BUG txn-split: the reply once the last part of a transaction is
        applied, or at once if a part is not its own (``result`` None)."""
        key = (client, rid)
        got = self.parts.pop(key, [])
        if got is None:  # answered already
            if part[0] < part[1] - 1:
                self.parts[key] = None
            return None
        if result is None or not result.get("ok"):
            if part[0] < part[1] - 1:
                self.parts[key] = None
            return unknown_outcome(rid, self.leader, self.node_id)
        got.extend(result["value"])
        if part[0] < part[1] - 1:
            self.parts[key] = got
            return None
        return {"ok": True, "value": got, "id": rid}


def unknown_outcome(rid: Any, leader: str | None, me: str) -> ClientReply:
    """The reply to a waiter whose entry did not commit as its own (replaced,
    truncated, or inside a snapshot): the command may still commit under
    another leader, so its outcome is unknown -- never ``definite``. Shared
    by the applier and the cores."""
    if leader is not None and leader != me:
        return {"id": rid, "ok": False, "error": "not_leader", "leader": leader}
    return {"id": rid, "ok": False, "error": "unavailable"}
