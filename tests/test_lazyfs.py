"""The lazy file system (faults/lazyfs.py, faults/disk_mounts.py).

The cache's rules are tested on ``LazyState`` directly (no FUSE needed); the
rest mounts real FUSE file systems and skips, with the reason, where FUSE is
not usable. Every test that mounts unmounts also on failure (``Mounts.close``
in ``finally``; ``no_leftovers`` ends stray daemons by PID) and checks that
no mount and no owner record stays behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testkit.nemesis import lazy_mount_fixture, owner_state_dir  # noqa: F401 (fixtures)

from faults import disk_mounts, owner
from faults.lazyfs import LazyState, control, unavailable_reason

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fuse_usable() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def _mine(tmp_path: Path) -> list[str]:
    return [p for p in disk_mounts.mounted() if p.startswith(str(tmp_path))]


@pytest.fixture
def mounted(lazy_mount: tuple[disk_mounts.Mounts, Path]) -> tuple[disk_mounts.Mounts, Path]:
    return lazy_mount  # testkit/nemesis.py: mounted, unmounted, nothing left behind


# --- the cache's rules, without FUSE ------------------------------------------------------


def _open(state: LazyState, name: str) -> int:
    return os.open(state.real("/" + name), os.O_RDWR | os.O_CREAT, 0o644)


def test_unsynced_writes_are_read_back_and_lost_until_fsynced(tmp_path: Path) -> None:
    st = LazyState(tmp_path)
    fd = _open(st, "log")
    st.write("/log", b"hello", 0, fd)
    st.fsync("/log", fd, datasync=True)
    st.write("/log", b" world", 5, fd)
    st.write("/log", b"W", 6, fd)  # an overwrite inside unsynced data
    assert st.read("/log", 100, 0, fd) == b"hello World"
    assert st.size_of("/log") == 11
    assert (tmp_path / "log").read_bytes() == b"hello"  # the disk has only what was synced
    lost = st.lose()
    assert lost == {"files": 1, "bytes": 7, "torn_bytes": 0, "paths": ["/log"]}
    assert st.read("/log", 100, 0, fd) == b"hello"
    os.close(fd)


def test_the_flusher_writes_back_old_dirty_data_without_fsync(tmp_path: Path) -> None:
    st = LazyState(tmp_path)
    fd = _open(st, "log")
    st.write("/log", b"old", 0, fd)
    assert st.flush_older(3600.0) == 0  # not old enough
    assert st.flush_older(0.0) == 3
    st.write("/log", b"new", 3, fd)
    assert (tmp_path / "log").read_bytes() == b"old"
    assert st.lose()["bytes"] == 3
    assert st.read("/log", 10, 0, fd) == b"old"
    os.close(fd)


def test_a_torn_lose_keeps_a_seeded_prefix_of_the_oldest_unsynced_write(tmp_path: Path) -> None:
    got = []
    for name in ("a", "b"):
        st = LazyState(tmp_path)
        fd = _open(st, name)
        st.write("/" + name, b"synced", 0, fd)
        st.fsync("/" + name, fd, datasync=True)
        st.write("/" + name, b"0123456789", 6, fd)
        lost = st.lose(torn_seed=5)
        assert 1 <= lost["torn_bytes"] <= 9 and lost["bytes"] == 10 - lost["torn_bytes"]
        got.append((tmp_path / name).read_bytes())
        os.close(fd)
    assert got[0] == got[1] and got[0].startswith(b"synced0") and len(got[0]) < 16


def test_append_goes_to_the_logical_end(tmp_path: Path) -> None:
    st = LazyState(tmp_path)
    fd = _open(st, "log")
    st.append.add(fd)
    st.write("/log", b"ab", 0, fd)
    st.write("/log", b"cd", 0, fd)  # O_APPEND: the offset given does not matter
    assert st.read("/log", 10, 0, fd) == b"abcd"
    os.close(fd)


def test_rename_carries_unsynced_data_and_unlink_drops_it(tmp_path: Path) -> None:
    st = LazyState(tmp_path)
    fd = _open(st, "meta.tmp")
    st.write("/meta.tmp", b"new", 0, fd)
    os.rename(tmp_path / "meta.tmp", tmp_path / "meta")
    st.renamed("/meta.tmp", "/meta")
    assert st.read("/meta", 10, 0, fd) == b"new"
    assert st.lose()["paths"] == ["/meta"]  # renamed, but never synced: lost
    assert (tmp_path / "meta").read_bytes() == b""
    st.write("/meta", b"x", 0, fd)
    st.dropped("/meta")
    assert st.lose()["files"] == 0
    os.close(fd)


def test_truncate_is_durable_and_clips_the_cache(tmp_path: Path) -> None:
    st = LazyState(tmp_path)
    fd = _open(st, "f")
    st.write("/f", b"0123456789", 0, fd)
    st.fsync("/f", fd, datasync=False)
    st.write("/f", b"abcdef", 4, fd)
    st.truncate("/f", 6)
    assert st.read("/f", 100, 0, fd) == b"0123ab"
    assert (tmp_path / "f").read_bytes() == b"012345"
    st.lose()
    assert st.read("/f", 100, 0, fd) == b"012345"
    os.close(fd)


# --- real mounts ------------------------------------------------------------------------


def test_the_mount_keeps_unsynced_data_until_lose(
        mounted: tuple[disk_mounts.Mounts, Path]) -> None:
    m, data = mounted
    fd = os.open(data / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"synced;")
        os.fdatasync(fd)
        os.write(fd, b"not synced")
        assert (data / "log").read_bytes() == b"synced;not synced"
        assert m.stats("n1")["dirty_bytes"] == 10
        assert (m.backing("n1") / "log").read_bytes() == b"synced;"
        lost = m.lose("n1")
        assert (lost["files"], lost["bytes"]) == (1, 10)
        assert (data / "log").read_bytes() == b"synced;"
        assert os.path.getsize(data / "log") == 7
        os.write(fd, b"more")  # an append after the loss lands at the new end
        assert (data / "log").read_bytes() == b"synced;more"
    finally:
        os.close(fd)


def test_storage_survives_lose_when_it_fsyncs(mounted: tuple[disk_mounts.Mounts, Path]) -> None:
    from nodes.common.core_api import Entry, Ready
    from nodes.common.storage import Storage

    m, data = mounted
    s = Storage(data, "n1")
    s.open()
    s.persist(Ready(meta={"term": 3, "voted_for": "n2"},
                    entries=[Entry(index=1, term=3, data=b"x")]))
    s.close()
    assert m.lose("n1")["bytes"] == 0  # everything it was told about is durable
    restored = Storage(data, "n1").open()
    assert restored.meta == {"term": 3, "voted_for": "n2"}
    assert [e.index for e in restored.entries] == [1]


def test_a_torn_power_loss_leaves_a_tail_storage_drops(
        mounted: tuple[disk_mounts.Mounts, Path]) -> None:
    from nodes.common.core_api import Entry, Ready
    from nodes.common.storage import Storage, _frame

    m, data = mounted
    s = Storage(data, "n1")
    s.open()
    s.persist(Ready(meta={"term": 1, "vote": "n1"}, entries=[Entry(index=1, term=1, data=b"a")]))
    s.close()
    fd = os.open(data / "log", os.O_WRONLY | os.O_APPEND)
    os.write(fd, _frame(b"\x91\x94\x00\x02\x01\xc4\x40" + b"x" * 64))  # a write in flight
    os.close(fd)
    lost = m.lose("n1", torn_seed=1)
    assert lost["torn_bytes"] > 0
    again = Storage(data, "n1")
    restored = again.open()
    assert [e.index for e in restored.entries] == [1] and again.dropped_tail_bytes > 0
    again.close()


def test_a_killed_harness_leaves_nothing_after_the_next_cleanup(
        tmp_path: Path, state_dir: Path, fuse_usable: None, no_leftovers: None) -> None:
    """A harness SIGKILLed with a mount up, whose daemon is SIGKILLed too (so the
    mount is left dead): cleanup_stale detaches it and drops the record."""
    data = tmp_path / "data" / "n1"
    data.mkdir(parents=True)
    script = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from faults.disk_mounts import Mounts\n"
        f"m = Mounts({{'n1': Path({str(data)!r})}}, Path({str(tmp_path)!r}))\n"
        "m.mount_all()\n"
        "print(m._procs['n1'].pid, flush=True)\n"
        "time.sleep(60)\n")
    env = dict(os.environ, **{owner.STATE_DIR_ENV: str(state_dir)})
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        daemon = int(proc.stdout.readline())  # type: ignore[union-attr]
        os.kill(daemon, signal.SIGKILL)  # the mount is now dead ("not connected")
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while owner.stale(disk_mounts.KIND) == [] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _mine(tmp_path), "the dead mount should still be there before cleaning"
        lines = disk_mounts.cleanup_stale()
        assert any("lazyfs mount" in line for line in lines), lines
        assert any("owner record" in line for line in lines), lines
        assert not _mine(tmp_path)
        assert not owner.names(disk_mounts.KIND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for point in _mine(tmp_path):
            subprocess.run(["umount", "-l", point], check=False)


def test_control_of_a_missing_mount_is_an_oserror() -> None:
    with pytest.raises(OSError):
        control("no-such-lazyfs", "ping", timeout=0.5)
