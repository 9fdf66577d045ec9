"""The data directory: group commit, crash recovery, corruption, snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodes.common import storage as storage_mod
from nodes.common.core_api import Entry, Ready, Snapshot
from nodes.common.storage import HEADER, Storage, StorageError


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(index=i, term=term, data={"op": "write", "key": f"k{i}", "value": i})
            for i in range(lo, hi + 1)]


def reopen(d: Path) -> tuple[Storage, object]:
    s = Storage(d, "n1")
    return s, s.open()


def frame_offsets(path: Path) -> list[int]:
    blob = path.read_bytes()
    pos, out = 0, []
    while pos < len(blob):
        out.append(pos)
        pos += HEADER.size + HEADER.unpack_from(blob, pos)[1]
    return out


def test_first_start_is_empty(tmp_path: Path) -> None:
    s, r = reopen(tmp_path / "d")
    assert r.meta is None and r.snapshot is None and r.entries == []
    s.close()


def test_round_trip_meta_entries_and_truncate(tmp_path: Path) -> None:
    s, _ = reopen(tmp_path)
    s.persist(Ready(meta={"term": 2, "vote": "n2"}, entries=entries(1, 5, term=1)))
    s.persist(Ready(truncate_from=4, entries=entries(4, 6, term=2)))
    s.close()
    s, r = reopen(tmp_path)
    assert r.meta == {"term": 2, "vote": "n2"}
    assert [(e.index, e.term) for e in r.entries] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
    assert r.entries[0].data == {"op": "write", "key": "k1", "value": 1}
    s.close()


def test_later_write_of_an_index_wins_and_sparse_slots_survive(tmp_path: Path) -> None:
    # Paxos accepts slots out of order and may re-accept a slot at a higher ballot.
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=[Entry(5, 1, "a"), Entry(2, 1, "b")]))
    s.persist(Ready(entries=[Entry(5, 3, "c")]))
    s.close()
    s, r = reopen(tmp_path)
    assert [(e.index, e.term, e.data) for e in r.entries] == [(2, 1, "b"), (5, 3, "c")]
    s.close()


def test_group_commit_is_one_fsync_per_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(storage_mod.os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=entries(1, 500)))
    assert len(calls) == 1
    assert len(frame_offsets(s.log_path)) == 1
    s.persist(Ready())  # nothing durable: no fsync at all
    assert len(calls) == 1
    s.close()


def test_unchanged_meta_is_not_rewritten(tmp_path: Path) -> None:
    s, _ = reopen(tmp_path)
    s.persist(Ready(meta={"term": 1, "vote": None}))
    before = s.fsyncs
    s.persist(Ready(meta={"term": 1, "vote": None}))
    assert s.fsyncs == before
    s.close()


def test_torn_tail_is_dropped_and_file_truncated(tmp_path: Path) -> None:
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=entries(1, 3)))
    s.persist(Ready(entries=entries(4, 6)))
    s.close()
    log = tmp_path / "log"
    second = frame_offsets(log)[1]
    size = log.stat().st_size
    for cut in (second + 3, second + HEADER.size + 2, size - 1):
        data = log.read_bytes()
        log.write_bytes(data[:cut])
        s, r = reopen(tmp_path)
        assert [e.index for e in r.entries] == [1, 2, 3], cut
        assert log.stat().st_size == second
        assert s.dropped_tail_bytes == cut - second
        s.persist(Ready(entries=entries(4, 6)))  # appends cleanly after the good prefix
        s.close()
        s, r = reopen(tmp_path)
        assert [e.index for e in r.entries] == [1, 2, 3, 4, 5, 6]
        s.close()


def test_garbled_last_frame_and_zero_tail_are_torn_writes(tmp_path: Path) -> None:
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=entries(1, 3)))
    s.persist(Ready(entries=entries(4, 6)))
    s.close()
    log = tmp_path / "log"
    second = frame_offsets(log)[1]
    data = bytearray(log.read_bytes())
    data[-2] ^= 0xFF  # payload of the last frame damaged: it was never acknowledged
    log.write_bytes(bytes(data))
    s, r = reopen(tmp_path)
    assert [e.index for e in r.entries] == [1, 2, 3]
    s.close()
    log.write_bytes(log.read_bytes() + b"\0" * 4096)  # size reached the disk, data did not
    s, r = reopen(tmp_path)
    assert [e.index for e in r.entries] == [1, 2, 3]
    assert log.stat().st_size == second
    s.close()


@pytest.mark.parametrize("where", ["payload", "header"])
def test_corrupt_record_before_the_tail_is_an_error(tmp_path: Path, where: str) -> None:
    s, _ = reopen(tmp_path)
    for lo in (1, 4, 7):
        s.persist(Ready(entries=entries(lo, lo + 2)))
    s.close()
    log = tmp_path / "log"
    offsets = frame_offsets(log)
    data = bytearray(log.read_bytes())
    data[offsets[1] + (HEADER.size + 5 if where == "payload" else 4)] ^= 0x40
    log.write_bytes(bytes(data))
    size = log.stat().st_size
    with pytest.raises(StorageError) as err:
        Storage(tmp_path, "n1").open()
    msg = str(err.value)
    assert msg.startswith(f"n1: log record 1 at byte {offsets[1]} ") and "corrupt" in msg
    assert "\n" not in msg
    assert log.stat().st_size == size  # evidence left untouched


def test_corrupt_meta_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    s, _ = reopen(tmp_path)
    s.persist(Ready(meta={"term": 7, "vote": "n3"}))
    s.close()
    meta = tmp_path / "meta"
    data = bytearray(meta.read_bytes())
    data[-1] ^= 1
    meta.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="meta file .* is corrupt"):
        Storage(tmp_path, "n1").open()


def test_meta_replacement_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s, _ = reopen(tmp_path)
    s.persist(Ready(meta={"term": 1, "vote": "n1"}))

    def crash(*a: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(storage_mod.os, "replace", crash)
    with pytest.raises(OSError):
        s.persist(Ready(meta={"term": 2, "vote": "n2"}))
    monkeypatch.undo()
    s.close()
    assert (tmp_path / "meta.tmp").exists()  # the half-done write is beside, not over, the old
    s, r = reopen(tmp_path)
    assert r.meta == {"term": 1, "vote": "n1"}
    assert not (tmp_path / "meta.tmp").exists()
    s.close()


def test_snapshot_compacts_the_log_and_round_trips(tmp_path: Path) -> None:
    s, _ = reopen(tmp_path)
    for lo in range(1, 1000, 100):
        s.persist(Ready(entries=entries(lo, lo + 99)))
    big = s.log_bytes()
    s.persist(Ready(entries=entries(1001, 1005), snapshot=Snapshot(990, 1, b"state@990")))
    assert s.log_bytes() < big / 10
    s.persist(Ready(truncate_from=1004, entries=entries(1004, 1006, term=2)))
    s.close()
    s, r = reopen(tmp_path)
    assert r.snapshot == Snapshot(990, 1, b"state@990")
    assert [(e.index, e.term) for e in r.entries] == [
        (991, 1), (992, 1), (993, 1), (994, 1), (995, 1), (996, 1), (997, 1), (998, 1),
        (999, 1), (1000, 1), (1001, 1), (1002, 1), (1003, 1), (1004, 2), (1005, 2), (1006, 2)]
    s.close()


def test_snapshot_past_the_log_leaves_an_empty_log(tmp_path: Path) -> None:
    # A follower that installs a leader's snapshot beyond its own log.
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=entries(1, 10)))
    s.persist(Ready(snapshot=Snapshot(50, 3, b"x")))
    s.persist(Ready(entries=entries(51, 52, term=3)))
    s.close()
    s, r = reopen(tmp_path)
    assert r.snapshot.index == 50 and [e.index for e in r.entries] == [51, 52]
    s.close()


def test_entries_covered_by_snapshot_are_dropped_even_before_compaction(tmp_path: Path) -> None:
    # Crash after the snapshot rename but before the compacted log replaced the old one.
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=entries(1, 10)))
    s.close()
    storage_mod.write_atomic(tmp_path / "snapshot", storage_mod._packb([6, 1, b"s"]))
    s, r = reopen(tmp_path)
    assert [e.index for e in r.entries] == [7, 8, 9, 10]
    s.close()


def test_before_sync_runs_between_write_and_fsync_only_without_meta_or_truncate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_sync, real_write = os.fdatasync, os.write
    monkeypatch.setattr(storage_mod.os, "fdatasync", lambda fd: (events.append("fsync"), real_sync(fd)))
    monkeypatch.setattr(storage_mod.os, "write",
                        lambda fd, b: (events.append("write"), real_write(fd, b))[1])
    s, _ = reopen(tmp_path)
    s.persist(Ready(entries=entries(1, 3)), lambda: events.append("early"))
    assert events == ["write", "early", "fsync"]
    events.clear()
    # A term change must be durable before anything leaves: no early sending.
    s.persist(Ready(meta={"term": 2, "vote": "n1"}, entries=entries(4, 4)),
              lambda: events.append("early"))
    assert events[-3:] == ["write", "fsync", "early"]
    events.clear()
    s.persist(Ready(truncate_from=4, entries=entries(4, 4, term=2)), lambda: events.append("early"))
    assert events == ["write", "fsync", "early"]
    s.close()
