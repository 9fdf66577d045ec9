"""Disk faults on live nodes: lose-unsynced (faults/disk.py) over the lazy file system,
and corrupt on a stopped node's files.

Each test starts a three-node Raft cluster (ended by PID also on failure:
``LocalCluster.close`` in ``finally`` and ``no_leftovers``), drives
``DiskActions`` directly with a minimal context, and checks the evidence and
what the nodes kept. The lose-unsynced tests skip with the reason where FUSE
is not usable.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.nemesis import NemesisCtx, owner_state_dir  # noqa: F401 (the state_dir fixture)
from testkit.requests import ok_reply

from faults import disk_mounts, findings, owner
from faults.disk import DiskActions
from faults.lazyfs import unavailable_reason
from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster

pytestmark = pytest.mark.timeout(120)
NODE = [sys.executable, "-m", "nodes", "raft"]
TIMING = {"heartbeat_ms": 50, "election_timeout_ms": [300, 600]}


def _cluster(tmp_path: Path, bugs: list[str], lazyfs: bool) -> LocalCluster:
    cj = write_cluster(tmp_path, 3, net="direct", timing=TIMING, options={"bugs": bugs})
    return LocalCluster(cj, NODE, tmp_path / "logs", lazyfs=lazyfs, writeback_s=0)


def _request(lc: LocalCluster, req: dict, within: float = 10.0) -> dict | None:
    return ok_reply(lc, req, within)


def _write_keys(lc: LocalCluster, n: int) -> None:
    for i in range(n):
        assert _request(lc, {"op": "write", "key": f"k{i}", "value": i}), f"write k{i} failed"


def _read_keys(lc: LocalCluster, n: int) -> dict[str, Any]:
    got = {}
    for i in range(n):
        reply = _request(lc, {"op": "read", "key": f"k{i}"}, within=20.0)
        got[f"k{i}"] = reply.get("value") if reply else "unavailable"
    return got


@pytest.fixture
def lazy_cluster(request: pytest.FixtureRequest, tmp_path: Path, state_dir: Path,
                 no_leftovers: None) -> Iterator[LocalCluster]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    lc = _cluster(tmp_path, request.param, lazyfs=True)
    try:
        lc.start_all()
        lc.wait_ready(30)
        yield lc
    finally:
        lc.close()
    assert not [p for p in disk_mounts.mounted() if p.startswith(str(tmp_path))]
    assert not owner.names(disk_mounts.KIND)


def _lose_all(lc: LocalCluster) -> NemesisCtx:
    ctx = NemesisCtx(lc)
    actions = DiskActions(ctx, ctx.record)
    op = {"f": "lose-unsynced", "value": list(lc.node_ids)}

    async def go() -> None:
        await actions.begin(op, {})
        await actions.end(op, {})  # restarts the nodes; their -end event follows the watch
        await actions.settle()

    asyncio.run(go())
    return ctx


@pytest.mark.parametrize("lazy_cluster", [[]], indirect=True)
def test_correct_raft_keeps_every_acknowledged_write_across_a_power_loss(
        lazy_cluster: LocalCluster) -> None:
    lc = lazy_cluster
    _write_keys(lc, 20)
    ctx = _lose_all(lc)
    (f0, v0, _), (f1, v1, fields) = ctx.events
    assert (f0, f1) == ("lose-unsynced", "lose-unsynced-end") and v0 == v1 == lc.node_ids
    ev = fields["evidence"]
    assert ev["effective"] is True, ev
    assert "refused" not in ev and "crashed" not in ev, ev  # every node came back
    assert all(ev["pid_before"][n] != ev["pid_after"][n] for n in lc.node_ids)
    assert _read_keys(lc, 20) == {f"k{i}": i for i in range(20)}


@pytest.mark.parametrize("lazy_cluster", [["no-fsync"]], indirect=True)
def test_no_fsync_loses_acknowledged_writes_across_a_power_loss(
        lazy_cluster: LocalCluster) -> None:
    lc = lazy_cluster
    assert _request(lc, {"op": "write", "key": "k0", "value": -1})  # a leader, a term, a vote
    for node in lc.node_ids:
        lc.sync_disk(node)  # as the flusher would: meta on the disk, so the nodes can start
    _write_keys(lc, 20)
    ctx = _lose_all(lc)
    ev = ctx.events[-1][2]["evidence"]
    assert ev["effective"] is True, ev
    assert sum(d["bytes"] for d in ev["discarded"].values()) > 0
    got = _read_keys(lc, 20)
    lost = [k for k, v in got.items() if v != int(k[1:])]
    assert lost, f"no-fsync kept every write across a power loss: {got}"
    # The restart's election wrote every voter's new term and vote, unsynced: a
    # second power loss empties those meta files, the nodes exit 2, and that
    # refusal alone is a durability finding (faults/findings.py).
    assert _request(lc, {"op": "write", "key": "k0", "value": -2})
    ctx = _lose_all(lc)
    ev = ctx.events[-1][2]["evidence"]
    assert ev.get("refused"), ev
    assert all("meta" in line for line in ev["refused"].values()), ev["refused"]
    found = findings.durability([{"process": "nemesis", "f": f, "value": v, **k}
                                 for f, v, k in ctx.events])
    assert {a["node"] for a in found} == set(ev["refused"])
    assert {a["kind"] for a in found} == {"refused-after-power-loss"}


def test_lose_unsynced_without_a_lazy_file_system_is_ineffective(
        tmp_path: Path, no_leftovers: None) -> None:
    lc = _cluster(tmp_path, [], lazyfs=False)
    try:
        lc.start_all()
        lc.wait_ready(30)
        ctx = _lose_all(lc)
        ev = ctx.events[-1][2]["evidence"]
        assert ev["effective"] is False and "lazy file system" in ev["why"], ev
    finally:
        lc.close()


def test_a_run_that_needs_fuse_where_there_is_none_fails_at_start_in_one_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os.path

    from faults import lazyfs
    from harness.config import RunConfig
    from harness.runner import RunError, prepare

    real_exists = os.path.exists
    monkeypatch.setattr(lazyfs.os.path, "exists",
                        lambda p: False if p == "/dev/fuse" else real_exists(p))
    with pytest.raises(RunError) as exc:
        prepare(RunConfig(nemesis="lose-unsynced", net="direct", store=str(tmp_path)))
    assert "/dev/fuse" in str(exc.value) and "\n" not in str(exc.value)
    prepare(RunConfig(nemesis="kill", net="direct", store=str(tmp_path)))  # nothing else changes


class FakeCluster:
    """Process control without processes: PIDs count up, lose_unsynced reports bytes."""

    def __init__(self) -> None:
        self.node_ids = ["n1", "n2", "n3"]
        self.pids = {n: 100 + i for i, n in enumerate(self.node_ids)}
        self.next = 200
        self.lost: list[str] = []

    def pid(self, node: str) -> int | None:
        return self.pids.get(node)

    def is_running(self, node: str) -> bool:
        return node in self.pids

    def kill(self, node: str) -> None:
        self.pids.pop(node, None)

    def start(self, node: str) -> None:
        self.next += 1
        self.pids[node] = self.next

    def lose_unsynced(self, node: str) -> dict:
        self.lost.append(node)
        return {"files": 1, "bytes": 42, "paths": ["/log"]}


def test_heal_brings_back_what_lose_unsynced_holds() -> None:
    cluster = FakeCluster()
    ctx = NemesisCtx(cluster)

    async def answers(node: str, timeout: float) -> bool:  # a started fake node answers
        return cluster.is_running(node)

    ctx.answers = answers  # type: ignore[method-assign]
    actions = DiskActions(ctx, ctx.record)

    async def go() -> None:
        await actions.begin({"f": "lose-unsynced", "value": ["n3", "n1"]}, {"at": 1.0})
        assert not cluster.is_running("n1") and not cluster.is_running("n3")
        await actions.heal()

    asyncio.run(go())
    assert all(cluster.is_running(n) for n in cluster.node_ids)
    assert cluster.lost == ["n1", "n3"]
    (f0, v0, _), (f1, v1, fields) = ctx.events
    assert (f0, v0, f1, v1) == ("lose-unsynced", ["n1", "n3"], "lose-unsynced-end", ["n1", "n3"])
    ev = fields["evidence"]
    assert ev["effective"] is True and ev["discarded"]["n1"] == {"files": 1, "bytes": 42,
                                                                    "torn_bytes": 0}
    assert ev["pid_before"] == {"n1": 100, "n3": 102} and ev["pid_after"]["n1"] >= 200


def test_a_restart_watch_holds_no_plan_and_a_later_fault_is_not_a_failed_start() -> None:
    """The end of lose-unsynced restarts the nodes and returns at once (the plan
    goes on while they boot, as in simulation); the -end event follows when they
    answer. A node a later fault kills while it boots is no finding: the watch
    stops there (``superseded``) instead of reading our kill as a failed start."""
    from faults.findings import durability

    cluster = FakeCluster()
    ctx = NemesisCtx(cluster)
    booted = asyncio.Event()

    async def answers(node: str, timeout: float) -> bool:  # n1 boots once told to
        return cluster.is_running(node) and (node != "n1" or booted.is_set())

    ctx.answers = answers  # type: ignore[method-assign]
    actions = DiskActions(ctx, ctx.record)
    op = {"f": "lose-unsynced", "value": ["n1", "n2"]}

    async def go() -> None:
        await actions.begin(op, {"at": 1.0})
        await actions.end(op, {"at": 2.0})
        assert cluster.is_running("n1") and cluster.is_running("n2")
        assert [f for f, _, _ in ctx.events] == ["lose-unsynced"]  # n1 still boots
        actions.touch(["n1"])  # a later kill of n1, as the interpreter begins it
        cluster.kill("n1")
        await actions.settle()

    asyncio.run(go())
    (f1, v1, fields) = ctx.events[-1]
    assert (f1, v1, fields["at"]) == ("lose-unsynced-end", ["n1", "n2"], 2.0)
    ev = fields["evidence"]
    assert ev["superseded"] == ["n1"] and "crashed" not in ev and "refused" not in ev, ev
    assert durability([{"process": "nemesis", "f": f1, "value": v1, "evidence": ev}]) == []
