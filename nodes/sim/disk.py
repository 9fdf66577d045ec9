"""A simulated data directory: its three files, the page cache apart from what is durable.

Owns the storage contract of docs/node-contract.md ("Durability") without
touching a file system, file by file as nodes/common/storage.py lays it out
(``meta``, ``snapshot``, ``log``) and as the lazy file system of
faults/lazyfs.py caches it, so that power losses and corruption end exactly
as they end for a real node:

- ``write(rd, t)``: the Ready's writes reach the page cache, file by file
  as ``Storage.persist`` makes them: a changed meta replaces ``meta`` (temp
  file and rename), entries and "truncate from" append one frame to ``log``,
  a snapshot replaces ``snapshot`` and compacts ``log`` to one frame of the
  live entries. A process crash loses nothing written (``restored()`` reads
  the page cache).
- ``sync()``: the fsyncs: everything written is durable.
- ``writeback(t)``: the kernel's flusher (the lazy file system's): a file
  whose cached data has been dirty for ``WRITEBACK_NS`` is written back
  whole, at the flusher's next pass (every ``FLUSH_PERIOD_NS``).
- ``lose_unsynced(t, torn)``: a power loss. Every file's cached data is
  dropped; with ``torn`` (a ``random.Random``) a prefix of each file's
  unsynced bytes, one byte short of them at least, reached the disk. A node
  that fsyncs before it renames loses only the temp file; one that never
  fsyncs (the ``no-fsync`` bug) kept the rename but not the data: an empty or
  torn ``meta`` that the real node refuses to start with.
- ``corrupt(rng, mode, which)``: faults/corrupt.py's damage to one file of
  a stopped node's directory (what the page cache shows), which then is
  durable (the real fault syncs the node's disk after it).

After a power loss that dropped something, or a corruption, the disk holds
the files' *bytes* (``raw``), rendered with storage.py's own encoders, and
the next start restores from them with storage.py's own ``recover``: a torn
tail is dropped and the log cut to its good prefix, damage to acknowledged
data is ``StorageError`` (the real node exits 2 with that line;
``refusal()`` says so before a start). tests/test_sim_disk.py checks the
rendering byte for byte against real ``Storage`` files.

``meta``, ``snapshot`` and ``entries`` are the durable values (what survives
a power loss), ``dirty`` the files with unsynced data; ``persist(rd)`` is a
write and its fsync at once (``SimNet``).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults import corrupt as damage
from nodes.common import storage
from nodes.common.core_api import Entry, Ready, Restored, Snapshot

#: Dirty data older than this is written back by the kernel without an fsync.
WRITEBACK_NS = 3_000_000_000
#: The flusher looks every quarter of that (faults/lazyfs.py ``_flusher``).
FLUSH_PERIOD_NS = WRITEBACK_NS // 4
#: A log frame as written: (truncate from or None, entries), or bytes already encoded.
Frame = tuple[int | None, list[Entry]] | bytes


class _Dirty:
    """One file's unsynced data: what it became (``value``: the meta or the
    snapshot; ``frames``: the log's), since when, and whether it is a temp
    file whose rename waits for its fsync (``atomic``: a power loss leaves the
    old file whole) or data on the file itself (lost, or torn)."""

    __slots__ = ("atomic", "frames", "since", "value")

    def __init__(self, since: int, atomic: bool, value: Any = None,
                 frames: list[Frame] | None = None) -> None:
        self.since = since
        self.atomic = atomic
        self.value = value
        self.frames = frames if frames is not None else []


@dataclass
class Disk:
    """What a node's data directory holds durably, and its page cache on top."""

    meta: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    entries: dict[int, Entry] = field(default_factory=dict)
    #: Files with unsynced data, by name.
    dirty: dict[str, _Dirty] = field(default_factory=dict)
    #: False under the no-fsync bug: renames reach the disk, data never does by itself.
    fsyncs: bool = True
    node_id: str = "node"
    #: The durable log as frames (its byte layout); the meta / snapshot files
    #: that exist but are durably empty (a rename without the fsync before it).
    frames: list[Frame] = field(default_factory=list)
    empty: set[str] = field(default_factory=set)
    #: The files' bytes when the next start must recover from them (None: absent).
    raw: dict[str, bytes | None] | None = None
    #: Each file's last write, in order (its mtime, for ``corrupt``'s "newest").
    mtime: dict[str, int] = field(default_factory=dict)
    _order: Any = field(default_factory=itertools.count)

    # --- writing ---------------------------------------------------------------------

    def persist(self, rd: Ready) -> None:
        """Apply ``rd``'s durable part at once, as a write and its fsync."""
        self.write(rd, 0)
        self.sync()

    def write(self, rd: Ready, t: int) -> None:
        """``rd``'s writes reach the page cache at time ``t`` (its durable part is
        copied: a core may reuse a Ready's lists after ``advance``)."""
        if self.dirty:
            self.writeback(t)
        meta = rd.meta
        if meta is not None and meta != self._meta_view():
            self._replace("meta", t, value=dict(meta))
        if rd.truncate_from is not None or rd.entries:
            self._append((rd.truncate_from, list(rd.entries)), t)
        snap = rd.snapshot
        if snap is not None:
            cur = self._snapshot_view()
            if cur is None or snap.index >= cur.index:
                view = self._entries_view()
                self._replace("snapshot", t, value=snap)
                live = [view[i] for i in sorted(view) if i > snap.index]
                self._replace("log", t, frames=[(None, live)] if live else [])

    def _replace(self, name: str, t: int, value: Any = None,
                 frames: list[Frame] | None = None) -> None:
        """A temp file written and renamed over ``name`` (storage.write_atomic, the
        compaction). With fsyncs the rename follows the temp file's fsync; without,
        the rename is durable at once (the lazy file system) and the data is not."""
        self.mtime[name] = next(self._order)
        if not self.fsyncs:
            self._set_empty(name)
            if value is None and not frames:  # an empty file: nothing is cached
                self.dirty.pop(name, None)
                return
        self.dirty[name] = _Dirty(t, self.fsyncs, value, frames)

    def _append(self, frame: Frame, t: int) -> None:
        self.mtime["log"] = next(self._order)
        d = self.dirty.get("log")
        if d is None:
            self.dirty["log"] = _Dirty(t, False, frames=[frame])
        else:
            d.frames.append(frame)

    def _set_empty(self, name: str) -> None:
        """``name`` is durably an empty file (its rename reached the disk, its data not)."""
        if name == "log":
            self.frames = []
            self.entries = {}
        else:
            self.empty.add(name)
            setattr(self, name, None)

    def sync(self) -> None:
        """The fsyncs: everything written is durable."""
        for name in list(self.dirty):
            self._durable(name)

    def writeback(self, t: int) -> None:
        """The flusher's passes up to ``t``: files dirty for ``WRITEBACK_NS`` or more."""
        for name in [n for n, d in self.dirty.items() if _written_back_at(d.since) <= t]:
            self._durable(name)

    def _durable(self, name: str) -> None:
        d = self.dirty.pop(name)
        if name == "log":
            if d.atomic:
                self.frames, self.entries = [], {}
            self.frames.extend(d.frames)
            _apply(self.entries, d.frames)
        else:
            self.empty.discard(name)
            setattr(self, name, d.value)

    # --- what a start reads ------------------------------------------------------------

    def _meta_view(self) -> dict[str, Any] | None:
        d = self.dirty.get("meta")
        return d.value if d is not None else self.meta

    def _snapshot_view(self) -> Snapshot | None:
        d = self.dirty.get("snapshot")
        return d.value if d is not None else self.snapshot

    def _entries_view(self) -> dict[int, Entry]:
        d = self.dirty.get("log")
        if d is None:
            return self.entries
        view = {} if d.atomic else dict(self.entries)
        _apply(view, d.frames)
        return view

    def restored(self) -> Restored:
        """What a starting node reads (the page cache's view); StorageError where the
        real node would refuse to start."""
        if self.raw is not None:
            self._recover()
        entries = self._entries_view()
        snap = self._snapshot_view()
        cut = snap.index if snap is not None else 0
        return Restored(self._meta_view(), snap,
                        [entries[i] for i in sorted(entries) if i > cut])

    def refusal(self) -> str | None:
        """The one line a real node would exit 2 with on starting now, else None."""
        try:
            if self.raw is not None:
                self._recover()
        except storage.StorageError as exc:
            return str(exc)
        return None

    def _recover(self) -> None:
        """Restore from ``raw`` with storage.py's ``recover``, as ``Storage.open``
        does (the log cut to its good prefix); the state is durable afterwards."""
        raw = self.raw
        assert raw is not None
        got = storage.recover(raw.get("meta"), raw.get("snapshot"), raw.get("log"),
                              self.node_id, Path(self.node_id))
        self.raw = None
        self.dirty = {}
        self.empty = set()
        r = got.restored
        self.meta, self.snapshot = r.meta, r.snapshot
        self.entries = {e.index: e for e in r.entries}
        log = raw.get("log") or b""
        self.frames = [log[:got.log_good_end]] if got.log_good_end else []
        if got.log_good_end < got.log_size:
            self.mtime["log"] = next(self._order)  # Storage.open truncates it

    # --- the files' bytes --------------------------------------------------------------

    def files(self, durable: bool = False) -> dict[str, bytes | None]:
        """Each data file's bytes (None: absent), as the page cache shows them or,
        with ``durable``, as the disk holds them; storage.py's encoders."""
        if self.raw is not None:
            return dict(self.raw)
        out: dict[str, bytes | None] = {}
        for name in ("log", "meta", "snapshot"):
            d = None if durable else self.dirty.get(name)
            if name == "log":
                frames = self.frames if d is None else \
                    (d.frames if d.atomic else self.frames + d.frames)
                out["log"] = _log_bytes(frames)  # Storage.open creates it
            else:
                value = getattr(self, name) if d is None else d.value
                if value is not None:
                    out[name] = _file_bytes(name, value)
                elif name in self.empty:
                    out[name] = b""
                else:
                    out[name] = None
        return out

    def _dirty_bytes(self, name: str) -> bytes:
        d = self.dirty[name]
        if name == "log":
            return _log_bytes(d.frames)
        return _file_bytes(name, d.value)

    # --- faults -----------------------------------------------------------------------

    def lose_unsynced(self, t: int, torn: random.Random | None = None) -> dict[str, int]:
        """A power loss at ``t`` (see the module header). Returns what it threw
        away as the lazy file system's ``lose`` does: files, bytes, torn_bytes."""
        if not isinstance(torn, random.Random):
            torn = None  # (an older caller's count of whole writes to keep)
        self.writeback(t)
        if not self.dirty:
            return {"files": 0, "bytes": 0, "torn_bytes": 0}
        files = self.files(durable=True)
        nbytes = kept = nfiles = 0
        for name in sorted(self.dirty):
            data = self._dirty_bytes(name)
            nbytes += len(data)
            nfiles += bool(data)  # the lazy file system caches no empty write
            if self.dirty[name].atomic or torn is None or len(data) < 2:
                continue  # a temp file never renamed: the start removes it
            keep = torn.randrange(1, len(data))
            files[name] = (files[name] or b"") + data[:keep]
            kept += keep
        lost = {"files": nfiles, "bytes": nbytes - kept, "torn_bytes": kept}
        self.dirty = {}
        self.raw = files
        return lost

    def corrupt(self, rng: random.Random, mode: str, which: str
                ) -> tuple[dict[str, Any], bytes | None]:
        """faults/corrupt.py's damage to one data file of this stopped node: (what
        was done, the file's bytes before, for a repair). The node's disk is synced
        after it, as the real fault does."""
        files = self.files()
        present = {n: b for n, b in files.items() if b}
        done, before, after = damage.damage_files(present, self.mtime, rng, mode, which)
        if done.get("file") is not None:
            files[done["file"]] = after
            self.mtime[done["file"]] = next(self._order)
        self.dirty = {}
        self.raw = files
        return done, before

    def repair(self, name: str, content: bytes) -> None:
        """An operator puts ``name`` back from the copy taken before the damage."""
        files = self.files()
        files[name] = content
        self.dirty = {}
        self.raw = files


def _written_back_at(since: int) -> int:
    """When the flusher writes back a file dirty since ``since``: its first pass
    at least ``WRITEBACK_NS`` later."""
    due = since + WRITEBACK_NS
    return -(-due // FLUSH_PERIOD_NS) * FLUSH_PERIOD_NS


def _apply(entries: dict[int, Entry], frames: list[Frame]) -> None:
    """Replay frames onto ``entries`` as storage.py's log replay does."""
    for frame in frames:
        cut, new = frame  # type: ignore[misc]  (dirty frames are never bytes)
        if cut is not None:
            for i in [i for i in entries if i >= cut]:
                del entries[i]
        for e in new:
            entries[e.index] = e


def _log_bytes(frames: list[Frame]) -> bytes:
    return b"".join(f if isinstance(f, bytes) else storage.log_frame(f[0], f[1])
                    for f in frames)


def _file_bytes(name: str, value: Any) -> bytes:
    if name == "snapshot":
        return storage.atomic_bytes(storage.snapshot_record(value))
    return storage.atomic_bytes(value)
