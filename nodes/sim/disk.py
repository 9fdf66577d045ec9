"""A simulated data directory: what a node's disk holds after its last fsync.

Owns the storage contract of docs/node-contract.md ("Durability") without
files: ``persist`` applies a Ready's durable part (meta replaced, suffix
truncated, entries written, snapshot saved and the log compacted to it) and
``restored`` gives back exactly what nodes/common/storage.py would read after
a crash: the newest meta, the newest snapshot, the entries after it (a later
write of an index replaces the earlier one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodes.common.core_api import Entry, Ready, Restored, Snapshot


@dataclass
class Disk:
    """What a node's data directory holds after the last fsync."""

    meta: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    entries: dict[int, Entry] = field(default_factory=dict)

    def persist(self, rd: Ready) -> None:
        if rd.meta is not None:
            self.meta = dict(rd.meta)
        if rd.truncate_from is not None:
            for i in [i for i in self.entries if i >= rd.truncate_from]:
                del self.entries[i]
        for e in rd.entries:
            self.entries[e.index] = e
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            for i in [i for i in self.entries if i <= rd.snapshot.index]:
                del self.entries[i]

    def restored(self) -> Restored:
        return Restored(self.meta, self.snapshot, [self.entries[i] for i in sorted(self.entries)])
