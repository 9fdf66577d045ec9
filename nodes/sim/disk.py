"""A simulated data directory: the page cache apart from what is durable.

Owns the storage contract of docs/node-contract.md ("Durability") without
files. ``persist`` applies a Ready's durable part (meta replaced, suffix
truncated, entries written, snapshot saved and the log compacted to it) at
once, as an fsynced write (``SimNet`` uses it). The time-driven world
(nodes/sim/world.py) uses the page cache as the kernel does:

- ``write(rd, t)``: the Ready's writes reach the page cache (what a process
  restart reads back: a process crash loses nothing written);
- ``sync()``: an fsync makes everything written so far durable;
- ``writeback(t)``: the kernel's flusher makes writes older than
  ``WRITEBACK_NS`` durable by itself (3 s, as the lazy file system of
  faults/lazyfs.py does), so a node that never syncs (the ``no-fsync`` bug)
  loses only its last seconds;
- ``lose_unsynced(t, keep)``: a power loss: the writes not yet durable are
  dropped (``keep`` of the oldest survive, a torn write's prefix).

``restored()`` gives back exactly what nodes/common/storage.py would read:
the newest meta, the newest snapshot, the entries after it (a later write of
an index replaces the earlier one), from the page cache's view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodes.common.core_api import Entry, Ready, Restored, Snapshot

#: Dirty data older than this is written back by the kernel without an fsync.
WRITEBACK_NS = 3_000_000_000


@dataclass
class Disk:
    """What a node's data directory holds durably, and its page cache on top."""

    meta: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    entries: dict[int, Entry] = field(default_factory=dict)
    #: Writes in the page cache not yet durable: (time written, the Ready).
    dirty: list[tuple[int, Ready]] = field(default_factory=list)

    def persist(self, rd: Ready) -> None:
        """Apply ``rd``'s durable part to what is durable (an fsynced write)."""
        if rd.meta is not None:
            self.meta = dict(rd.meta)
        if rd.truncate_from is not None:
            cut = rd.truncate_from
            for i in [i for i in self.entries if i >= cut]:
                del self.entries[i]
        for e in rd.entries:
            self.entries[e.index] = e
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            for i in [i for i in self.entries if i <= rd.snapshot.index]:
                del self.entries[i]

    def write(self, rd: Ready, t: int) -> None:
        """``rd``'s writes reach the page cache at time ``t``. Its durable part is
        copied: a core may reuse a Ready's empty lists after ``advance``."""
        self.writeback(t)
        self.dirty.append((t, Ready(meta=dict(rd.meta) if rd.meta is not None else None,
                                    truncate_from=rd.truncate_from, entries=list(rd.entries),
                                    snapshot=rd.snapshot)))

    def sync(self) -> None:
        """An fsync: everything written is durable."""
        for _, rd in self.dirty:
            self.persist(rd)
        self.dirty.clear()

    def writeback(self, t: int) -> None:
        """The kernel writes back what has been dirty for ``WRITEBACK_NS``."""
        dirty = self.dirty
        n = 0
        while n < len(dirty) and dirty[n][0] <= t - WRITEBACK_NS:
            self.persist(dirty[n][1])
            n += 1
        if n:
            del dirty[:n]

    def lose_unsynced(self, t: int, keep: int = 0) -> dict[str, int]:
        """A power loss at ``t``: the writes not durable are gone but for the
        ``keep`` oldest. Returns what was discarded (writes and entries)."""
        self.writeback(t)
        kept, lost = self.dirty[:keep], self.dirty[keep:]
        for _, rd in kept:
            self.persist(rd)
        self.dirty = []
        return {"writes": len(lost), "entries": sum(len(rd.entries) for _, rd in lost),
                "metas": sum(rd.meta is not None for _, rd in lost)}

    def restored(self) -> Restored:
        """What a starting node reads: the durable state with the page cache on top."""
        if not self.dirty:
            return Restored(self.meta, self.snapshot,
                            [self.entries[i] for i in sorted(self.entries)])
        view = Disk(self.meta, self.snapshot, dict(self.entries))
        for _, rd in self.dirty:
            view.persist(rd)
        return view.restored()
