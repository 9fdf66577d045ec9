"""The corrupt fault (faults/corrupt.py, faults/disk.py) and what a correct node does with it.

A correct node given a damaged data directory either recovers (a torn tail
is dropped) or refuses to start with exit 2 and one line; it never crashes
with a traceback and never starts with silently lost acknowledged data.
The live test ends its nodes by PID also on failure (``LocalCluster.close``
in ``finally``, ``no_leftovers``).
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest
from testkit.nemesis import NemesisCtx
from testkit.requests import ok_reply

from faults import corrupt
from faults.disk import DiskActions, plan_fields, resolve_value
from faults.plan import ClusterView
from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster
from nodes.common.core_api import Entry, Ready
from nodes.common.storage import Storage, StorageError

pytestmark = pytest.mark.timeout(120)


def _storage_with_frames(d: Path, n: int) -> None:
    s = Storage(d, "n1")
    s.open()
    s.persist(Ready(meta={"term": 1, "voted_for": "n1"}))
    for i in range(1, n + 1):
        s.persist(Ready(entries=[Entry(index=i, term=1, data=b"v%d" % i)]))
    s.close()


def test_corruption_is_seeded_and_says_what_it_did(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _storage_with_frames(tmp_path / name, 5)
    got = [corrupt.corrupt_dir(tmp_path / name, random.Random(4), "zero", "random")
           for name in ("a", "b")]
    assert got[0] == got[1] and got[0]["file"] in ("log", "meta")
    assert (tmp_path / "a" / got[0]["file"]).read_bytes() == \
        (tmp_path / "b" / got[0]["file"]).read_bytes()
    newest = corrupt.corrupt_dir(tmp_path / "a", random.Random(1), "truncate", "newest",
                                 save_as=tmp_path / "saved")
    assert newest["size_after"] == newest["size_before"] - newest["length"]
    assert (tmp_path / "saved").stat().st_size == newest["size_before"]
    assert corrupt.corrupt_dir(tmp_path / "empty", random.Random(1), "flip", "random") == \
        {"file": None, "mode": "flip"}


def test_a_torn_tail_is_dropped_and_damage_inside_refuses(tmp_path: Path) -> None:
    _storage_with_frames(tmp_path / "torn", 5)
    log = tmp_path / "torn" / "log"
    log.write_bytes(log.read_bytes()[:-3])
    s = Storage(tmp_path / "torn", "n1")
    assert [e.index for e in s.open().entries] == [1, 2, 3, 4]
    assert s.dropped_tail_bytes > 0
    s.close()
    _storage_with_frames(tmp_path / "flip", 5)
    log = tmp_path / "flip" / "log"
    blob = bytearray(log.read_bytes())
    blob[20] ^= 0x10  # inside the first frame's payload
    log.write_bytes(bytes(blob))
    with pytest.raises(StorageError) as exc:
        Storage(tmp_path / "flip", "n1").open()
    assert "\n" not in str(exc.value) and "corrupt" in str(exc.value)


def test_plans_aim_corruption_at_one_node() -> None:
    rng = random.Random(2)
    op = {"f": "corrupt", **plan_fields("corrupt", rng)}
    value = resolve_value(op, ClusterView(("n1", "n2", "n3"), "n3"), rng)
    assert len(value["nodes"]) == 1 and value["mode"] in corrupt.MODES
    assert value["file"] in corrupt.WHICH


def _ok(lc: LocalCluster, req: dict, within: float = 15.0) -> dict | None:
    return ok_reply(lc, req, within)


@pytest.mark.parametrize("mode", corrupt.MODES)
def test_a_corrupted_node_recovers_or_refuses_in_one_line(
        tmp_path: Path, no_leftovers: None, mode: str) -> None:
    cj = write_cluster(tmp_path, 3, net="direct",
                       timing={"heartbeat_ms": 50, "election_timeout_ms": [300, 600]})
    lc = LocalCluster(cj, [sys.executable, "-m", "nodes", "raft"], tmp_path / "logs")
    try:
        lc.start_all()
        lc.wait_ready(30)
        for i in range(30):
            assert _ok(lc, {"op": "write", "key": f"k{i % 5}", "value": i})
        ctx = NemesisCtx(lc, 11)
        actions = DiskActions(ctx, ctx.record)
        value = {"nodes": ["n1"], "mode": mode, "file": "newest"}

        async def go() -> None:
            await actions._corrupt(value, {})
            await actions._end_corrupt(value, {})

        asyncio.run(go())
        ev = ctx.events[-1][2]["evidence"]
        assert ev["effective"] is True and ev["damage"]["file"], ev
        assert ev["outcome"] in ("recovered", "refused"), ev  # never a crash
        if ev["outcome"] == "refused":
            assert ev["exit_code"] == 2 and ev["line"] and "\n" not in ev["line"], ev
            assert ev["repair"] == "restored", ev
        assert lc.is_running("n1")
        for i in range(25, 30):
            assert _ok(lc, {"op": "read", "key": f"k{i % 5}"})["value"] == i
    finally:
        lc.close()
