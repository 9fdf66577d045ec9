"""A node's data directory: meta, snapshot and an append-only checksummed log.

Files in ``data_dir``:

- ``meta``      term/vote (Raft) or promised ballot (Paxos): one checksummed
                msgpack map, replaced atomically (temp file, fsync, rename,
                fsync of the folder).
- ``snapshot``  the newest snapshot (index, term, data), replaced the same way.
- ``log``       append-only frames. One frame per ``persist`` call (group
                commit: one ``write`` and ONE ``fdatasync`` however many
                records the Ready carried). A frame is a 14-byte header
                ``magic u16 | length u32 | crc32(payload) u32 | crc32(first 10
                header bytes) u32`` and a msgpack payload: a list of records,
                ``[0, index, term, data]`` for an entry or ``[1, index]`` for
                "truncate from index".

Invariants and why:

- Only the last frame can be torn by a crash: the next frame is written only
  after the previous one was fsynced. So on restart a bad frame that runs
  past the end of the file (its header checksum proves the length is real),
  or fails its payload checksum and ends exactly at the end of the file, or a
  zero-filled tail, is a torn write of data nobody was told about: it is
  dropped and the file truncated to the good prefix. A bad frame
  anywhere else is damage to acknowledged data: ``StorageError``, and the node
  stops (exit 2) rather than start with a silently shorter log.
- Replay applies records in file order: a later write of an index replaces
  the earlier one, ``truncate`` removes every index at or past its own.
  Entries at or below the snapshot index are dropped (already in the snapshot).
- After a snapshot is saved the log is compacted: the live entries past the
  snapshot are written to ``log.tmp`` as one frame, fsynced, and renamed over
  ``log`` (then the folder is fsynced), so a crash at any point leaves either
  the old or the new log, both consistent with the snapshot on disk.
- To compact without re-reading the file, ``_live`` keeps the entries past
  the newest snapshot (bounded by the snapshot threshold): the ``Entry`` for
  those written since start, the decoded record for those replayed at start;
  they are packed again only when a compaction writes them.
- The ``no-fsync`` bug (``Storage(..., sync=False)``, docs/node-contract.md
  "Bug flags") writes everything exactly as above but never fsyncs a file or
  the folder: a SIGKILL loses nothing (the page cache survives it), a power
  loss (the lazy file system's ``lose``, faults/lazyfs.py) loses what the
  node already acknowledged.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from nodes.common.core_api import Entry, Ready, Restored, Snapshot

MAGIC = 0x4C52  # "RL" little-endian: catches zero-filled or foreign bytes
HEADER = struct.Struct("<HIII")  # magic, payload length, crc32(payload), crc32(header[:10])
HEAD_CRC_SPAN = 10

REC_ENTRY = 0
REC_TRUNCATE = 1

_packb = msgpack.Packer(use_bin_type=True).pack
_crc32 = zlib.crc32


class StorageError(Exception):
    """The data directory is damaged or unreadable; str() is one line."""


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)


def _no_sync(fd: int) -> None:
    """The ``no-fsync`` bug's fsync: nothing."""


def _fsync_dir(path: Path, sync: bool = True) -> None:
    if not sync:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _frame(payload: bytes) -> bytes:
    head = struct.pack("<HII", MAGIC, len(payload), _crc32(payload))
    return head + struct.pack("<I", _crc32(head)) + payload


def _record(item: Entry | list) -> bytes:
    """The packed log record of a live entry."""
    if isinstance(item, Entry):
        return _packb([REC_ENTRY, item.index, item.term, item.data])
    return _packb(item)


def _array_head(n: int) -> bytes:
    """The msgpack header of an n-element array: followed by n already-packed
    elements it is the packed list, so records are never encoded twice."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def atomic_bytes(obj: Any) -> bytes:
    """The whole content ``write_atomic`` gives a meta or snapshot file holding ``obj``."""
    return _frame(_packb(obj))


def snapshot_record(snap: Snapshot) -> list[Any]:
    return [snap.index, snap.term, snap.data]


def log_frame(cut: int | None, entries: Sequence[Entry]) -> bytes:
    """The log frame one ``persist`` appends: "truncate from ``cut``" (if not
    None), then the entries. With ``cut`` None and the live entries in index
    order it is also the one frame a compaction writes (the same bytes)."""
    records: list[list[Any]] = [[REC_TRUNCATE, cut]] if cut is not None else []
    records.extend([REC_ENTRY, e.index, e.term, e.data] for e in entries)
    return _frame(_packb(records))


def write_atomic(path: Path, payload: bytes, sync: bool = True) -> None:
    """Replace ``path`` with a checksummed frame holding ``payload``, durably
    (``sync=False``: the ``no-fsync`` bug, not durably)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, _frame(payload))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent, sync)


def read_atomic(path: Path, label: str) -> Any | None:
    """Read a file written by ``write_atomic``; None if absent."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"{label} file {path} is unreadable: {exc.strerror or exc}") from None
    return decode_atomic(blob, f"{label} file {path}")


def decode_atomic(blob: bytes, what: str) -> Any:
    """The object in a ``write_atomic`` file's content; ``what`` names it in errors."""
    if len(blob) < HEADER.size:
        raise StorageError(f"{what} is corrupt: only {len(blob)} bytes")
    magic, length, crc, head_crc = HEADER.unpack_from(blob)
    payload = blob[HEADER.size :]
    bad_head = magic != MAGIC or _crc32(blob[:HEAD_CRC_SPAN]) != head_crc
    if bad_head or length != len(payload) or _crc32(payload) != crc:
        raise StorageError(f"{what} is corrupt: header or checksum mismatch")
    try:
        return _unpack(payload)
    except Exception as exc:  # noqa: BLE001 -- any decode failure is corruption
        raise StorageError(f"{what} is corrupt: {exc}") from None


@dataclass
class Recovered:
    """What ``recover`` reads from a data directory's files."""

    restored: Restored
    #: index -> decoded log record, past the snapshot (Storage._live)
    live: dict[int, Any]
    #: bytes of the log that are good; a longer log has a torn tail to drop
    log_good_end: int
    log_size: int


def recover(meta: bytes | None, snapshot: bytes | None, log: bytes | None,
            node_id: str, data_dir: Path) -> Recovered:
    """What a starting node restores from these file contents (None: the file
    is absent), as ``Storage.open`` does; ``StorageError`` if they are damaged.
    Pure: the simulated disk (nodes/sim/disk.py) restores through it too."""
    meta_obj = None if meta is None else decode_atomic(
        meta, f"{node_id}: meta file {data_dir / 'meta'}")
    if meta_obj is not None and not isinstance(meta_obj, dict):
        raise StorageError(f"{node_id}: meta file {data_dir / 'meta'} is not a map")
    snap_raw = None if snapshot is None else decode_atomic(
        snapshot, f"{node_id}: snapshot file {data_dir / 'snapshot'}")
    snap: Snapshot | None = None
    if snap_raw is not None:
        try:
            index, term, data = snap_raw
            snap = Snapshot(index=int(index), term=int(term), data=bytes(data))
        except (TypeError, ValueError):
            raise StorageError(
                f"{node_id}: snapshot file {data_dir / 'snapshot'} has a bad layout") from None
    snap_index = snap.index if snap else 0
    blob = log or b""
    live, entries, good_end = _replay(blob, snap_index, node_id, data_dir / "log")
    return Recovered(Restored(meta=meta_obj, snapshot=snap, entries=entries), live, good_end,
                     len(blob))


def _replay(blob: bytes, snap: int, node_id: str, log_path: Path
            ) -> tuple[dict[int, Any], list[Entry], int]:
    """Replay a log's frames: (live records past ``snap``, their entries in
    index order, the end of the good prefix)."""
    live: dict[int, Any] = {}
    decoded: dict[int, Entry] = {}
    size = len(blob)
    pos = 0
    frame_no = 0
    good_end = 0
    while pos < size:
        problem = _check_frame(blob, pos, size)
        if problem is not None:
            torn, why = problem
            if torn:
                break
            raise StorageError(
                f"{node_id}: log record {frame_no} at byte {pos} of {log_path} "
                f"is corrupt: {why}; refusing to start with a damaged log"
            )
        length = HEADER.unpack_from(blob, pos)[1]
        payload = blob[pos + HEADER.size : pos + HEADER.size + length]
        try:
            records = _unpack(payload)
            _apply_records(records, live, decoded)
        except (ValueError, TypeError, IndexError, msgpack.ExtraData) as exc:
            raise StorageError(
                f"{node_id}: log record {frame_no} at byte {pos} of {log_path} "
                f"has a valid checksum but an unreadable body: {exc}"
            ) from None
        pos += HEADER.size + length
        good_end = pos
        frame_no += 1
    return ({i: rec for i, rec in live.items() if i > snap},
            [decoded[i] for i in sorted(decoded) if i > snap], good_end)


def _check_frame(blob: bytes, pos: int, size: int) -> tuple[bool, str] | None:
    """None if the frame at ``pos`` is whole; else (is_torn_tail, why)."""
    rest = blob[pos:]
    if len(rest) < HEADER.size:
        return True, "partial header"
    magic, length, crc, head_crc = HEADER.unpack_from(blob, pos)
    end = pos + HEADER.size + length
    if magic != MAGIC or _crc32(blob[pos : pos + HEAD_CRC_SPAN]) != head_crc:
        # A zero-filled tail is a torn write whose size reached the disk
        # before its data; other garbage there is damage (we cannot know
        # where the next frame starts, so we cannot prove it is the tail).
        if not rest.strip(b"\0"):
            return True, "zero-filled tail"
        return False, f"bad frame header (magic {magic:#06x}, length {length})"
    if end > size:
        return True, "frame runs past the end of the file"
    if _crc32(blob[pos + HEADER.size : end]) != crc:
        if end == size:
            return True, "checksum mismatch in the last frame"
        return False, "checksum mismatch"
    return None


def _apply_records(records: Any, live: dict[int, Any], decoded: dict[int, Entry]) -> None:
    if not isinstance(records, list):
        raise TypeError("frame body is not a list of records")
    for rec in records:
        kind = rec[0]
        if kind == REC_ENTRY:
            index = int(rec[1])
            decoded[index] = Entry(index=index, term=int(rec[2]), data=rec[3])
            live[index] = rec
        elif kind == REC_TRUNCATE:
            cut = int(rec[1])
            for i in [i for i in decoded if i >= cut]:
                del decoded[i]
                live.pop(i, None)
        else:
            raise ValueError(f"unknown record kind {kind!r}")


class Storage:
    """One node's durable state. ``open()`` recovers; ``persist(ready)`` saves."""

    def __init__(self, data_dir: Path, node_id: str = "node", sync: bool = True) -> None:
        self.dir = Path(data_dir)
        self.sync = sync  # False: the no-fsync bug (module header)
        self._fsync = os.fsync if sync else _no_sync
        self._fdatasync = os.fdatasync if sync else _no_sync
        self.node_id = node_id
        self.log_path = self.dir / "log"
        self.meta_path = self.dir / "meta"
        self.snapshot_path = self.dir / "snapshot"
        self._fd: int | None = None
        self._meta: dict[str, Any] | None = None
        self._snapshot_index = 0
        self._live: dict[int, Entry | list] = {}  # index -> entry (or its record), past the snapshot
        self.dropped_tail_bytes = 0  # torn bytes removed by the last open(), for the log line
        self.fsyncs = 0

    # -- recovery -------------------------------------------------------------

    def open(self) -> Restored:
        """Create or recover the data directory; raise ``StorageError`` if damaged."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"{self.node_id}: cannot create data dir {self.dir}: {exc.strerror or exc}"
            ) from None
        for leftover in (".tmp",):
            for name in ("meta", "snapshot", "log"):
                stale = self.dir / (name + leftover)
                if stale.exists():
                    stale.unlink()  # an interrupted atomic write: the old file is still whole
        got = recover(self._read(self.meta_path), self._read(self.snapshot_path),
                      self._read(self.log_path), self.node_id, self.dir)
        restored = got.restored
        self._meta = restored.meta
        self._snapshot_index = restored.snapshot.index if restored.snapshot else 0
        self._live = got.live
        if got.log_good_end < got.log_size:
            self.dropped_tail_bytes = got.log_size - got.log_good_end
            with open(self.log_path, "r+b") as f:
                f.truncate(got.log_good_end)
                f.flush()
                os.fsync(f.fileno())
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return restored

    def _read(self, path: Path) -> bytes | None:
        """A data file's content; None if absent."""
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{self.node_id}: {path.name} file {path} is unreadable: "
                               f"{exc.strerror or exc}") from None

    # -- saving ---------------------------------------------------------------

    def persist(self, ready: Ready, before_sync: Callable[[], None] | None = None) -> None:
        """Make the Ready's durable part durable, in its order, before returning.

        ``before_sync``, if given, runs after the log records are written but
        before they are fsynced (the driver sends ``Ready.early_messages``
        there); it is only honoured when the Ready has no ``meta`` and no
        ``truncate_from``, else it runs after everything is durable.
        Raises OSError on a disk failure: the caller must stop the node."""
        meta = ready.meta
        early = before_sync if meta is None and ready.truncate_from is None else None
        if meta is not None and meta != self._meta:
            write_atomic(self.meta_path, _packb(meta), self.sync)
            self._meta = dict(meta)
            self.fsyncs += 2
        cut = ready.truncate_from
        entries = ready.entries
        if cut is not None or entries:
            live = self._live
            if cut is not None:
                for i in [i for i in live if i >= cut]:
                    del live[i]
            for e in entries:
                live[e.index] = e
            # One pack call for the whole frame: cheaper than one per record.
            self._append_frame(log_frame(cut, entries), early)
            ran = early is not None
        else:
            ran = False
        if ready.snapshot is not None:
            self._save_snapshot(ready.snapshot)
        if before_sync is not None and not ran:
            before_sync()

    def _append_frame(self, frame: bytes, before_sync: Callable[[], None] | None) -> None:
        fd = self._fd
        assert fd is not None, "storage not open"
        os.write(fd, frame)
        if before_sync is not None:
            before_sync()
        self._fdatasync(fd)
        self.fsyncs += 1

    def _save_snapshot(self, snap: Snapshot) -> None:
        if snap.index < self._snapshot_index:
            return  # an older snapshot than the one on disk: nothing to gain
        write_atomic(self.snapshot_path, _packb(snapshot_record(snap)), self.sync)
        self._snapshot_index = snap.index
        self.fsyncs += 2
        self._compact()

    def _compact(self) -> None:
        """Rewrite the log as one frame of the live entries past the snapshot."""
        snap = self._snapshot_index
        self._live = {i: rec for i, rec in self._live.items() if i > snap}
        keep = [_record(self._live[i]) for i in sorted(self._live)]
        tmp = self.log_path.with_name("log.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if keep:
                os.write(fd, _frame(_array_head(len(keep)) + b"".join(keep)))
            self._fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.log_path)
        _fsync_dir(self.dir, self.sync)
        old = self._fd
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        if old is not None:
            os.close(old)
        self.fsyncs += 2

    def log_bytes(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
