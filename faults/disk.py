"""Disk and clock faults: ``lose-unsynced``, ``corrupt``, ``clock`` (docs/disk-and-clock.md).

Owns the seam faults/plan.py and faults/interpret.py call for these kinds:

- ``KINDS``; ``plan_fields(f, rng)`` (the planned fields of one operation)
  and ``resolve_value(op, view, rng)`` (its value against a ClusterView):
  pure, so the simulator's interpreter gets the same operations;
- ``needs(kinds)`` (what LocalCluster must set up: a lazy file system under
  every data directory, libfaketime in every node) and
  ``unavailable_reason(kinds)`` (one line when this machine cannot);
- ``DiskActions(ctx, record)``: the interpreter's part, in the style of
  faults/process.py: ``begin(op, fields)``, ``end(op, fields)``, ``heal()``.

What each does on real processes:

- ``lose-unsynced`` (targets as kill): SIGKILL the targets, then discard
  everything they wrote and never fsynced (the lazy file system's ``lose``:
  a power loss of their disks); with ``torn`` (half the planned ones), a
  seeded prefix of each file's oldest unsynced write reaches the disk first
  (a torn write, which a correct node drops as a torn tail); the end starts
  them again and watches them as ``corrupt`` does: a node that exits instead
  of coming back is recorded (``refused``/``crashed``), a durability finding
  (faults/findings.py).
- ``corrupt`` (one node): SIGKILL it, damage one of its data files
  (faults/corrupt.py), start it at the end and record what it did: it
  recovered (answers ``status``), or refused to start (exit 2, one line), or
  crashed some other way (a node bug). A node that does not come back is
  repaired as an operator would -- the damaged file is put back from the
  copy taken before the damage -- and started again, so after ``heal`` no
  node is down because of the nemesis. (Wiping the node and letting it
  rejoin empty is not done: Raft and Multi-Paxos without a catch-up phase
  for an amnesiac voter are not meant to survive it.)
- ``clock``: faults/clock.py.

Evidence (on each ``-end``): ``lose-unsynced``: ``pid_before``,
``pid_after``, ``down_ms`` and ``discarded`` per node (``files``, ``bytes``,
``torn_bytes``: what the power loss threw away, and what of it reached the
disk torn; 0 bytes is normal for a node that syncs before it acknowledges),
``refused`` (node -> its exit-2 line) and ``crashed`` (node -> exit code and
line) for nodes that did not come back; no effect when a node was not running,
kept its PID, or the run has no lazy file system. ``corrupt``: ``damage`` (file,
mode, offset, length, sizes), ``outcome`` (``recovered``, ``refused``,
``crashed``), ``exit_code``, ``line`` (the node's last log line), ``repair``.

Invariant: a node is remembered as held *before* it is killed, so a heal
after an interrupted start still brings it back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faults import clock, corrupt
from faults.process import TARGETS, pick_targets

log = logging.getLogger(__name__)

KINDS = ("lose-unsynced", "corrupt", "clock")
#: Share of power losses that tear the write in flight (a prefix reaches the disk).
TORN_P = 0.5
#: Seconds a corrupted node gets to answer ``status`` (recovered) or exit (refused).
START_TIMEOUT_S = 8.0


def plan_fields(f: str, rng: random.Random) -> dict[str, Any]:
    """The planned fields (besides f, at, hold) of one operation of kind ``f``."""
    if f == "lose-unsynced":
        return {"target": rng.choice(TARGETS), "torn": rng.random() < TORN_P}
    if f == "corrupt":
        return {"target": rng.choice(("one", "leader")), "mode": rng.choice(corrupt.MODES),
                "file": rng.choice(corrupt.WHICH)}
    if f == "clock":
        return clock.plan_fields(rng)
    raise ValueError(f"not a disk or clock fault: {f!r}")


def resolve_value(op: dict[str, Any], view: Any, rng: random.Random) -> Any:
    """The value of a planned operation against ``view`` (a faults.plan.ClusterView)."""
    nodes, leader, f = list(view.node_ids), view.leader, op["f"]
    if f == "lose-unsynced":
        target = op.get("target", "one")
        if isinstance(target, list):
            return sorted(target)
        return pick_targets(target, nodes, rng, leader)
    if f == "corrupt":
        target = op.get("target", "one")
        one = [target[0]] if isinstance(target, list) and target else \
            pick_targets(target if target in ("one", "leader") else "one", nodes, rng, leader)
        return {"nodes": one, "mode": op.get("mode", "flip"), "file": op.get("file", "random")}
    if f == "clock":
        return clock.resolve_value(op, nodes, rng, leader)
    raise ValueError(f"not a disk or clock fault: {f!r}")


def needs(kinds: Sequence[str]) -> dict[str, bool]:
    """What LocalCluster must set up for these fault kinds."""
    return {"lazyfs": "lose-unsynced" in kinds, "faketime": "clock" in kinds}


def unavailable_reason(kinds: Sequence[str]) -> str | None:
    """One line why these kinds cannot run on this machine, else None."""
    if "lose-unsynced" in kinds:
        from faults.lazyfs import unavailable_reason as fuse_reason

        reason = fuse_reason()
        if reason:
            return reason
    if "clock" in kinds:
        return clock.unavailable_reason()
    return None


class DiskActions:
    """The interpreter's part of the disk and clock kinds (see the module header)."""

    def __init__(self, ctx: Any, record: Callable[..., None]) -> None:
        self.ctx = ctx
        self.record = record
        self.clock = clock.ClockFaults(ctx, record)
        self.lost: dict[str, dict[str, Any]] = {}  # node -> pid_before, since, discarded
        self.corrupted: dict[str, dict[str, Any]] = {}  # node -> value, pid_before, damage
        #: Watches of restarts after a power loss still running (their -end events to come).
        self._watching: set[asyncio.Task[None]] = set()
        #: node -> how many process faults (kill, pause, power loss, corrupt) began on it:
        #: a watch whose node a later fault took over stops there, so our own kill is
        #: never read as the node failing to start.
        self._touched: dict[str, int] = {}

    def touch(self, nodes: Sequence[str]) -> None:
        """A process fault begins on ``nodes`` (the interpreter calls this first)."""
        for n in nodes:
            self._touched[n] = self._touched.get(n, 0) + 1

    # -- dispatch ---------------------------------------------------------------------

    async def begin(self, op: dict[str, Any], fields: dict[str, Any]) -> None:
        f, value = op["f"], op["value"]
        if f == "lose-unsynced":
            await self._lose(sorted(value), fields, bool(op.get("torn")))
        elif f == "corrupt":
            await self._corrupt(value, fields)
        else:
            await self.clock.begin(value, fields)

    async def end(self, op: dict[str, Any], fields: dict[str, Any]) -> None:
        f, value = op["f"], op["value"]
        if f == "lose-unsynced":
            await self._restart_lost(sorted(value), fields)
        elif f == "corrupt":
            await self._end_corrupt(value, fields)
        else:
            await self.clock.end(value, fields)

    async def heal(self) -> None:
        if self.lost:
            await self._restart_lost(sorted(self.lost), {})
        await self.settle()
        for node, held in list(self.corrupted.items()):
            await self._end_corrupt(held["value"], {})
        await self.clock.heal()

    async def settle(self) -> None:
        """Wait for the restart watches still running: every -end event is recorded."""
        while self._watching:
            await asyncio.gather(*list(self._watching), return_exceptions=True)

    # -- lose-unsynced -------------------------------------------------------------------

    async def _lose(self, nodes: list[str], fields: dict[str, Any], torn: bool = False) -> None:
        cluster = self.ctx.cluster
        loop = asyncio.get_running_loop()
        for node in nodes:
            self.lost[node] = {"pid": cluster.pid(node), "discarded": None}  # before the kill
        for node in nodes:
            await asyncio.to_thread(cluster.kill, node)
        lose = getattr(cluster, "lose_unsynced", None)
        for node in nodes:
            held = self.lost[node]
            held["since"] = loop.time()
            if lose is None:
                held["why"] = "the cluster cannot discard unsynced data"
                continue
            seed = self.ctx.rng.randrange(2**31) if torn else None
            try:
                got = await asyncio.to_thread(lose, node, seed) if torn else \
                    await asyncio.to_thread(lose, node)
                held["discarded"] = {"files": got.get("files", 0), "bytes": got.get("bytes", 0),
                                     "torn_bytes": got.get("torn_bytes", 0)}
            except Exception as exc:  # noqa: BLE001 -- recorded as an ineffective fault
                held["why"] = f"{node}: {exc}"
        self.record("lose-unsynced", nodes, **fields)
        log.info("lost unsynced data of %s", ", ".join(nodes))

    async def _restart_lost(self, nodes: list[str], fields: dict[str, Any]) -> None:
        nodes = [n for n in nodes if n in self.lost]
        if not nodes:
            return
        cluster = self.ctx.cluster
        now = asyncio.get_running_loop().time()
        for node in nodes:
            if not cluster.is_running(node):
                cluster.start(node)  # this thread: the main thread gives a parent-death signal
        held = {n: self.lost.pop(n) for n in nodes}
        # The watch takes the nodes' boot (hundreds of ms): in a task of its own, so
        # the plan goes on meanwhile as it does in simulation, where a node boots
        # while the plan runs; the -end event (its ``at`` is now) comes when it ends.
        touched = {n: self._touched.get(n, 0) for n in nodes}  # now, not when the task runs
        task = asyncio.create_task(self._watch_lost(nodes, held, now, fields, touched))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def _watch_lost(self, nodes: list[str], held: dict[str, dict[str, Any]], now: float,
                          fields: dict[str, Any], touched: dict[str, int]) -> None:
        """Watch each restart: a node that fsyncs what it acknowledged and voted comes
        back from a power loss; one that exits instead has broken its own durability
        contract, and faults/findings.py counts that as an anomaly."""
        cluster = self.ctx.cluster
        watched = await asyncio.gather(*(self._watch(n, touched[n]) for n in nodes))
        before = {n: h["pid"] for n, h in held.items()}
        after = {n: cluster.pid(n) for n in nodes}
        why = [f"{n} was not running" for n, p in before.items() if p is None]
        why += [f"{n} kept PID {p}" for n, p in before.items() if p is not None and after[n] == p]
        why += [h["why"] for h in held.values() if h.get("why")]
        ev: dict[str, Any] = {
            "pid_before": before, "pid_after": after,
            "down_ms": round(max(now - h.get("since", now) for h in held.values()) * 1000, 1),
            "discarded": {n: h["discarded"] for n, h in held.items()},
            "effective": not why}
        refused = {n: line for n, (outcome, _, line) in zip(nodes, watched)
                   if outcome == "refused"}
        crashed = {n: {"exit_code": code, "line": line}
                   for n, (outcome, code, line) in zip(nodes, watched) if outcome == "crashed"}
        if refused:  # the same field as the simulator's (faults/simulate.py)
            ev["refused"] = refused
        if crashed:
            ev["crashed"] = crashed
        cut = [n for n, (outcome, _, _) in zip(nodes, watched) if outcome == "superseded"]
        if cut:  # a later fault took the node over before it answered: no verdict on it
            ev["superseded"] = cut
        if why:
            ev["why"] = "; ".join(why)
        fields = dict(fields)
        fields.setdefault("evidence", ev)
        self.record("lose-unsynced-end", nodes, **fields)
        log.info("restarted %s after losing unsynced data", ", ".join(nodes))

    # -- corrupt --------------------------------------------------------------------------

    def _data_dir(self, node: str) -> Path | None:
        dirs = getattr(self.ctx.cluster, "data_dirs", None)
        return Path(dirs[node]) if dirs and node in dirs else None

    async def _corrupt(self, value: dict[str, Any], fields: dict[str, Any]) -> None:
        cluster = self.ctx.cluster
        node = value["nodes"][0]
        held = self.corrupted[node] = {"value": value, "pid": cluster.pid(node), "damage": None}
        await asyncio.to_thread(cluster.kill, node)
        folder = self._data_dir(node)
        if folder is None:
            held["why"] = "the cluster does not say where its data directories are"
        else:
            saved = folder.with_name(folder.name + ".saved")
            held["saved"] = saved
            try:
                held["damage"] = await asyncio.to_thread(
                    corrupt.corrupt_dir, folder, self.ctx.rng, value["mode"], value["file"],
                    saved)
                sync = getattr(cluster, "sync_disk", None)
                if sync is not None:
                    await asyncio.to_thread(sync, node)  # the damage is on the disk, not cached
            except OSError as exc:
                held["why"] = f"{node}: cannot corrupt {folder}: {exc.strerror or exc}"
            if held["damage"] is not None and held["damage"].get("file") is None:
                held["why"] = f"{node} had no data file to corrupt"
        self.record("corrupt", value, **fields)
        log.info("corrupted %s (%s, %s file)", node, value["mode"], value["file"])

    async def _end_corrupt(self, value: dict[str, Any], fields: dict[str, Any]) -> None:
        node = value["nodes"][0]
        held = self.corrupted.pop(node, None)
        if held is None:
            return
        cluster = self.ctx.cluster
        ev: dict[str, Any] = {"damage": held["damage"], "pid_before": held["pid"], "repair": None}
        outcome, code, line = await self._start_and_watch(node)
        ev.update(outcome=outcome, exit_code=code, line=line)
        damage = held["damage"] or {}
        if outcome != "recovered" and damage.get("file") and held.get("saved"):
            folder = self._data_dir(node)
            assert folder is not None
            await asyncio.to_thread(shutil.copyfile, held["saved"], folder / damage["file"])
            sync = getattr(cluster, "sync_disk", None)
            if sync is not None:
                await asyncio.to_thread(sync, node)
            ev["repair"] = "restored"
            again, code2, line2 = await self._start_and_watch(node)
            if again != "recovered":
                ev["repair"] = f"restored, but it still did not start (exit {code2}: {line2})"
        saved = held.get("saved")
        if saved is not None:
            Path(saved).unlink(missing_ok=True)
        ev["pid_after"] = cluster.pid(node)
        why = held.get("why")
        if held["pid"] is None:
            why = f"{node} was not running"
        ev["effective"] = why is None
        if why:
            ev["why"] = why
        fields = dict(fields)
        fields.setdefault("evidence", ev)
        self.record("corrupt-end", value, **fields)
        log.info("corrupt %s ended: %s", node, outcome)

    async def _start_and_watch(self, node: str) -> tuple[str, int | None, str]:
        """Start ``node`` and see what it does: (outcome, exit code, last log line)."""
        cluster = self.ctx.cluster
        if not cluster.is_running(node):
            cluster.start(node)
        return await self._watch(node)

    async def _watch(self, node: str, touched: int | None = None) -> tuple[str, int | None, str]:
        """What the just-started ``node`` does: it answers ``status`` (``recovered``),
        exits 2 (``refused``), exits otherwise (``crashed``), or neither within
        START_TIMEOUT_S (``silent``: a loaded machine, not a finding). With
        ``touched`` (the node's count of process faults when the watch began), a
        later fault on the node ends the watch (``superseded``)."""
        cluster = self.ctx.cluster
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        exit_info = getattr(cluster, "exit_info", None)
        while loop.time() < deadline:
            if touched is not None and self._touched.get(node, 0) != touched:
                return "superseded", None, ""
            if not cluster.is_running(node):
                if touched is not None and self._touched.get(node, 0) != touched:
                    return "superseded", None, ""
                code, line = exit_info(node) if exit_info else (None, "")
                return ("refused" if code == 2 else "crashed"), code, line
            if self.ctx.answers is not None and await self.ctx.answers(node, 0.2):
                return "recovered", None, ""
            if self.ctx.answers is None:
                await asyncio.sleep(0.5)
                if cluster.is_running(node):
                    return "recovered", None, ""
            await asyncio.sleep(0.05)
        return "silent", None, ""
