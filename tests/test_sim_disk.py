"""The simulated disk (nodes/sim/disk.py) against the real storage and the real faults.

The same Readys go to a real ``Storage`` (nodes/common/storage.py) in a
folder and to a simulated ``Disk``; then:

- the simulated files are the real files byte for byte, and they were last
  written in the same order (corrupt's "newest");
- ``corrupt`` (faults/corrupt.py on the folder, ``Disk.corrupt`` in memory)
  does the same damage with the same seed, and the next start ends the same:
  the same restored state and the same torn tail cut, or the same refusal;
- a power loss on the lazy file system (faults/lazyfs.py, a real FUSE mount)
  and ``Disk.lose_unsynced`` with the same torn seed throw away the same bytes
  and leave a node that starts with the same state, or refuses alike;
- in the simulator's interpreter a corrupted node recovers or refuses and is
  repaired, and a no-fsync node whose meta a power loss emptied stays down.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from testkit.nemesis import lazy_mount_fixture, owner_state_dir  # noqa: F401 (fixtures)

from faults import corrupt, disk_mounts
from faults.plan import ReplayPlan
from faults.simulate import SimInterpreter
from nodes.__main__ import load_protocol
from nodes.common import storage
from nodes.common.core_api import Entry, Ready, Snapshot
from nodes.common.storage import Storage, StorageError
from nodes.sim.disk import Disk
from nodes.sim.world import LINK_FAULTS, World

pytestmark = pytest.mark.timeout(120)
MS = 1_000_000


def _readys(seed: int, n: int = 40) -> list[Ready]:
    """A seeded history of a node's Readys: votes, appends, conflicts cut off, snapshots."""
    rng = random.Random(seed)
    out: list[Ready] = []
    term, last, snap = 1, 0, 0
    for _ in range(n):
        rd = Ready()
        if rng.random() < 0.2:
            term += 1
            rd.meta = {"term": term, "vote": rng.choice(["n1", "n2", None])}
        if rng.random() < 0.15 and last > snap + 2:
            rd.truncate_from = rng.randint(snap + 1, last)
            last = rd.truncate_from - 1
        k = rng.randint(0 if rd.meta or rd.truncate_from else 1, 4)
        rd.entries = [Entry(last + i + 1, term, rng.randbytes(rng.randint(0, 30)))
                      for i in range(k)]
        last += k
        if rng.random() < 0.1 and last > snap:
            snap = rng.randint(snap + 1, last)
            rd.snapshot = Snapshot(snap, term, rng.randbytes(20))
        out.append(rd)
    return out


class Order:
    """Which of the real folder's files each persist wrote, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.k = 0
        self.last: dict[str, int] = {}
        real_replace, real_append = os.replace, Storage._append_frame

        def replace(src: Any, dst: Any) -> None:
            real_replace(src, dst)
            self._wrote(Path(dst).name)

        def append(st: Storage, frame: bytes, before: Any) -> None:
            real_append(st, frame, before)
            self._wrote("log")

        monkeypatch.setattr(storage.os, "replace", replace)
        monkeypatch.setattr(Storage, "_append_frame", append)

    def _wrote(self, name: str) -> None:
        self.k += 1
        self.last[name] = self.k


def _both(tmp: Path, seed: int, fsyncs: bool, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[Path, Disk, Order]:
    order = Order(monkeypatch)
    real = tmp / f"real{seed}"
    st = Storage(real, "n1", sync=fsyncs)
    st.open()
    disk = Disk(fsyncs=fsyncs, node_id="n1")
    for rd in _readys(seed):
        st.persist(rd)
        disk.write(rd, 0)
        if fsyncs:
            disk.sync()
    st.close()
    return real, disk, order


def _real_files(d: Path) -> dict[str, bytes | None]:
    return {n: (d / n).read_bytes() if (d / n).exists() else None
            for n in ("log", "meta", "snapshot")}


def _start_real(d: Path) -> tuple[str, Any]:
    st = Storage(d, "n1")
    try:
        r = st.open()
    except StorageError as exc:
        return "refused", str(exc).replace(str(d), "n1")
    finally:
        st.close()
    return "recovered", (r.meta, r.snapshot, r.entries, (d / "log").read_bytes())


def _start_sim(disk: Disk) -> tuple[str, Any]:
    line = disk.refusal()
    if line is not None:
        return "refused", line
    r = disk.restored()
    return "recovered", (r.meta, r.snapshot, r.entries, disk.files()["log"])


@pytest.mark.parametrize("fsyncs", [True, False])
def test_the_simulated_files_are_the_real_files_byte_for_byte(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsyncs: bool) -> None:
    for seed in range(4):
        real, disk, order = _both(tmp_path, seed, fsyncs, monkeypatch)
        assert disk.files() == _real_files(real), seed
        # the last write of each file came in the same order (corrupt's "newest")
        assert sorted(order.last, key=order.last.get) == sorted(disk.mtime, key=disk.mtime.get)
        assert _start_sim(disk) == _start_real(real)


def test_corruption_and_the_next_start_end_as_on_a_real_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = set()
    for seed in range(4):
        real, disk, order = _both(tmp_path, seed, True, monkeypatch)
        for name, k in order.last.items():  # the real mtimes, in the real write order
            os.utime(real / name, ns=(k * 10**9, k * 10**9))
        for mode in corrupt.MODES:
            for which in corrupt.WHICH:
                for s in range(3):
                    d = tmp_path / f"c{seed}{mode}{which}{s}"
                    shutil.copytree(real, d)
                    done = corrupt.corrupt_dir(d, random.Random(s), mode, which)
                    sim = copy.deepcopy(disk)
                    sim_done, before = sim.corrupt(random.Random(s), mode, which)
                    assert sim_done == done
                    assert before == (real / done["file"]).read_bytes()
                    got = _start_sim(sim)
                    assert got == _start_real(d), (seed, mode, which, s)
                    seen.add(got[0])
                    if got[0] == "refused":  # the operator's repair starts it again
                        sim.repair(done["file"], before)
                        assert _start_sim(sim)[0] == "recovered"
    assert seen == {"recovered", "refused"}


def test_a_power_loss_ends_as_on_the_lazy_file_system(
        lazy_mount: tuple[disk_mounts.Mounts, Path]) -> None:
    mounts, data = lazy_mount
    outcomes = set()
    for seed, torn in [(1, None), (2, 11), (3, 12), (4, 13), (5, None), (6, 14)]:
        for p in data.iterdir():
            p.unlink()
        mounts.sync("n1")
        st = Storage(data, "n1", sync=False)  # the no-fsync bug: nothing is synced
        st.open()
        mounts.sync("n1")  # the empty log is where a node left it
        disk = Disk(fsyncs=False, node_id="n1")
        for rd in _readys(seed, 12):
            st.persist(rd)
            disk.write(rd, 0)
        st.close()
        real_lost = mounts.lose("n1", torn)
        sim_lost = disk.lose_unsynced(0, random.Random(torn) if torn is not None else None)
        assert sim_lost == {k: real_lost[k] for k in ("files", "bytes", "torn_bytes")}
        assert disk.files() == _real_files(data)
        got = _start_sim(disk)
        assert got == _start_real(data), seed
        outcomes.add(got[0])
    assert "refused" in outcomes  # an emptied or torn meta: the real node refuses too


def _world(bugs: tuple[str, ...] = ()) -> World:
    w = World(load_protocol("raft"), ["n1", "n2", "n3"], seed=3,
              options={"bugs": list(bugs)})
    for n, node in w.nodes.items():  # from the start, as the interpreter tells them later
        node.disk.node_id, node.disk.fsyncs = n, w.sync
    w.run_until(3000 * MS, lambda: w.leader() is not None)
    assert w.leader() is not None
    return w


def _events(w: World, ops: list[dict[str, Any]]) -> list[tuple[str, Any, dict]]:
    events: list[tuple[str, Any, dict]] = []
    sim = SimInterpreter(ReplayPlan(ops), w,
                         lambda f, v, **k: events.append((f, v, k)), LINK_FAULTS)
    sim.start()
    w.run_until(w.now + 3000 * MS)
    sim.heal()
    w.run_until(w.now + 1000 * MS)
    return events


def test_a_corrupted_simulated_node_recovers_or_refuses_and_is_repaired() -> None:
    outcomes = set()
    for i, (mode, which) in enumerate([(m, f) for m in corrupt.MODES for f in corrupt.WHICH]):
        w = _world()
        ops = [{"f": "corrupt", "at": 0.2 + j * 0.5, "hold": 0.3,
                "value": {"nodes": [f"n{1 + (i + j) % 3}"], "mode": mode, "file": which}}
               for j in range(4)]
        ends = [e for e in _events(w, ops) if e[0] == "corrupt-end"]
        assert len(ends) == 4
        for _, value, fields in ends:
            ev = fields["evidence"]
            assert ev["effective"] and ev["damage"]["file"] in ("log", "meta", "snapshot")
            outcomes.add(ev["outcome"])
            if ev["outcome"] == "refused":
                assert ev["exit_code"] == 2 and "n" in ev["line"] and ev["repair"] == "restored"
        assert all(n.up for n in w.nodes.values())  # nobody stays down after a repair
    assert outcomes == {"recovered", "refused"}


def test_a_no_fsync_node_whose_meta_a_power_loss_emptied_stays_down() -> None:
    w = _world(("no-fsync",))
    leader = w.leader()
    assert leader is not None and "meta" in w.nodes[leader].disk.dirty  # its vote, unsynced
    ops = [{"f": "lose-unsynced", "at": 0.0, "hold": 0.2, "value": [leader]}]
    ends = [e for e in _events(w, ops) if e[0] == "lose-unsynced-end"]
    ev = ends[0][2]["evidence"]
    assert ev["discarded"][leader]["bytes"] > 0
    assert "meta file" in ev["refused"][leader] and "only 0 bytes" in ev["refused"][leader]
    assert not w.nodes[leader].up  # as a real node that exits 2, it does not come back
