"""The simulator's interpreter: carries a fault plan out on a simulated cluster.

Owns ``SimInterpreter(plan, world, record)``: the second interpreter of the
plans of faults/plan.py (the first is faults/interpret.py, on real processes
and the proxy/netns). It takes the same plan objects (``faults.schedule.
build_plan``, ``ReplayPlan``), asks them in the same order with the same
``ClusterView`` fields (node ids, the leader, the link faults, each node's
status, ``now``), and records the same nemesis events: ``f`` KIND at a start
and KIND-end with the same value at its end, ``at`` (seconds since the
nemesis started, when the step began), the requested ``target`` on starts,
and ``evidence`` on ends (docs/faults.md "Evidence"), so checker/nemesis.py,
``recorded_ops``, ``--replay``, results.json and the report read a simulated
run like a real one.

The world is a ``nodes.sim.world.World`` (it imports nothing from here): the
interpreter calls its ``kill``/``restart``, ``pause``/``resume``,
``set_grudge``/``set_links``/``heal`` and ``counters``, and schedules itself
with ``world.at``. Every fault kind of real runs exists with its name: kill,
pause, partition (every shape, one-way too), net (loss, delay, duplicate,
reorder), and of issue 17 ``lose-unsynced`` (power loss: the page cache's
unsynced writes are dropped, nodes/sim/disk.py) and ``clock`` (offset, bump,
strobe, drift of one node's clock: its ticks) and ``corrupt`` (faults/corrupt.py's
damage to a stopped node's file; at the end the node restarts if storage.py's
recovery accepts its files, else it refuses as a real node exits 2, and is
repaired from the copy of the file taken before the damage and started
again, as faults/disk.py does; a node whose files a power loss left
unreadable stays down, as a real one does). ``SIM_ONLY``: the kinds no real network can produce (none so
far); a run that uses one lists it in results.json ``sim_only_faults`` and
the report says so.

Invariants (those of the real interpreter):
- steps run in time order, ends before starts at the same instant; a plan
  is asked for its next operation only after the previous one is resolved
  and begun (one rng order);
- control ops (``wait``, ``end``) are carried out, never recorded; an op may
  carry ``id``, ``hold: None`` (held until an ``end`` op or ``heal``) and
  ``replaces`` (end that op and start this one in one network update);
- active ops may overlap: the network carries the union of the active
  partitions' grudges and every active net op's links, in start order;
- ``heal()`` ends every active op (with its evidence), then heals the
  network, resumes and restarts whatever the nemesis still holds.
"""

from __future__ import annotations

import heapq
import inspect
import random
from collections.abc import Callable
from typing import Any

from faults import clock
from faults.interpret import PROBE_MAX_S, PROBE_SHARE, _network_evidence
from faults.plan import ClusterView, FaultOp, Plan

#: Fault kinds only the simulator can produce (labelled in results.json and the report).
SIM_ONLY: tuple[str, ...] = ()
NETWORK_KINDS = ("partition", "net")


class _Active:
    __slots__ = ("base", "before", "damage", "first", "lost", "op", "pids", "probe", "saved",
                 "seq", "since", "strobe")

    def __init__(self, op: FaultOp, seq: int) -> None:
        self.op = op
        self.seq = seq
        self.before: Any = None  # link counters at the start (network faults)
        self.pids: dict[str, int | None] = {}  # kill/pause: the process ids at the start
        self.since = 0  # world time the fault took effect
        self.probe: list[str] | None = None  # pause: the nodes that answered the probe
        self.lost: dict[str, Any] = {}  # lose-unsynced: what each node's power loss dropped
        self.strobe = -1  # clock strobe: the jumps so far (-1: not strobing)
        self.damage: dict[str, Any] | None = None  # corrupt: what was done
        self.saved: bytes | None = None  # corrupt: the file before the damage (the repair)
        self.first: tuple[int, int, int] | None = None  # clock: the node's clock after the start
        self.base = 0.0  # clock: the node's offset before it (s)


class SimInterpreter:
    """Carries ``plan`` out on ``world``; see the module header.

    ``record(f, value, **fields)`` writes one nemesis event (the caller stamps
    the simulated time). ``link_faults``: what the simulated network applies."""

    def __init__(self, plan: Plan, world: Any, record: Callable[..., None],
                 link_faults: tuple[str, ...]) -> None:
        self.plan = plan
        self.world = world
        self.record = record
        self.link_faults = link_faults
        self.t0 = 0
        self.active: dict[int, _Active] = {}
        self.by_id: dict[Any, int] = {}
        self._ends: list[tuple[int, int]] = []  # (time ns, seq)
        self._next: FaultOp | None = None
        self._next_at = 0
        self._seq = 0
        self._stopped = False
        self._wake_token = 0
        self.killed: list[str] = []
        #: clock: each node's lasting gain from drifts (ns), and its drift in course (since, rate)
        self.gain: dict[str, int] = {}
        self.drift: dict[str, tuple[int, float]] = {}
        self.paused: list[str] = []
        self.used_kinds: list[str] = []
        self._pass_view = _takes_view(plan)
        for n, node in world.nodes.items():  # (until the world tells its disks itself)
            node.disk.node_id = n
            node.disk.fsyncs = world.sync

    # --- the schedule ------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the nemesis started."""
        return (self.world.now - self.t0) / 1e9

    def _ns(self, at: float) -> int:
        return self.t0 + round(at * 1e9)

    def start(self) -> None:
        """Start the nemesis now (time 0 of ``at``)."""
        self.t0 = self.world.now
        self._ask()
        self._schedule()

    def stop(self) -> None:
        """No step starts after this (``heal`` ends what is active)."""
        self._stopped = True

    def _ask(self) -> None:
        view = self.view() if self._pass_view else None
        self._next = self.plan.next(view) if self._pass_view else self.plan.next()
        if self._next is not None:
            self._next_at = self._ns(float(self._next.get("at", 0.0)))

    def _schedule(self) -> None:
        """One wake-up at the earliest pending step (an older wake-up is voided)."""
        times = []
        if self._next is not None:
            times.append(self._next_at)
        if self._ends:
            times.append(self._ends[0][0])
        if not times or self._stopped:
            return
        self._wake_token += 1
        self.world.at(min(times), self._wake, self._wake_token)

    def _wake(self, token: int) -> None:
        if token != self._wake_token or self._stopped:
            return
        now = self.world.now
        while not self._stopped:
            t_end = self._ends[0][0] if self._ends else None
            t_start = self._next_at if self._next is not None else None
            if t_end is not None and t_end <= now and (t_start is None or t_end <= t_start):
                _, seq = heapq.heappop(self._ends)
                act = self.active.pop(seq, None)
                if act is not None:
                    self._end(act)
                continue
            if t_start is not None and t_start <= now:
                op, self._next = self._next, None
                assert op is not None
                self._step(op)
                self._ask()
                continue
            break
        self._schedule()

    def _step(self, op: FaultOp) -> None:
        f = op.get("f")
        if f == "wait":
            return  # the plan asks again with a fresh view (the _ask that follows)
        if f == "end":
            seq = self.by_id.pop(op.get("ref"), None)
            act = self.active.pop(seq, None) if seq is not None else None
            if act is not None:
                self._end(act)
            return
        replaced = None
        if op.get("replaces") is not None:
            seq = self.by_id.pop(op["replaces"], None)
            replaced = self.active.pop(seq, None) if seq is not None else None
        resolved = self.plan.resolve(op, self.view())
        act = _Active(resolved, self._seq)
        self._seq += 1
        self.active[act.seq] = act
        if "id" in resolved:
            self.by_id[resolved["id"]] = act.seq
        if replaced is not None:  # its end and this start are one network update
            self._end(replaced, update=False)
        self._begin(act)
        hold = resolved.get("hold", 0.0)
        if hold is not None:
            heapq.heappush(self._ends, (self._ns(float(resolved["at"]) + float(hold)), act.seq))

    def view(self) -> ClusterView:
        w = self.world
        # a plan that says it reads no statuses (reads_statuses = False) gets none: cheaper
        if getattr(self.plan, "reads_statuses", True):
            statuses = {n: w.status(n) for n in w.ids}
            leader = w.leader(statuses)  # from the same replies: each node asked once
        else:
            statuses, leader = {}, w.leader()
        return ClusterView(tuple(w.ids), leader, self.link_faults, statuses, now=self.now())

    # --- one operation -------------------------------------------------------------

    def _fields(self, op: FaultOp) -> dict[str, Any]:
        fields: dict[str, Any] = {"at": round(self.now(), 6)}
        if "target" in op:
            fields["target"] = op["target"]
        return fields

    def _begin(self, act: _Active) -> None:
        op = act.op
        f, value, fields = op["f"], op["value"], self._fields(op)
        if f not in self.used_kinds:
            self.used_kinds.append(f)
        w = self.world
        act.since = w.now
        if f == "kill":
            self.record("kill", self._hold(act, w.kill, self.killed), **fields)
        elif f == "pause":
            self.record("pause", self._hold(act, w.pause, self.paused), **fields)
            wait = min(PROBE_MAX_S, float(op.get("hold") or 0.0) * PROBE_SHARE)
            if op.get("hold") is None:
                wait = PROBE_MAX_S
            w.at(w.now + int(wait * 1e9), self._probe, act)
        elif f in NETWORK_KINDS:
            act.before = w.counters()["links"]
            self._apply_network()
            self.record(f, value, **fields)
        elif f == "lose-unsynced":
            act.lost = {}

            def lose(n: str) -> None:
                # torn: a prefix of each file's unsynced bytes reached the disk
                w.kill(n)
                torn = random.Random(w.disk_rng.randrange(2**31)) if op.get("torn") else None
                act.lost[n] = w.nodes[n].disk.lose_unsynced(w.now, torn)

            self.record("lose-unsynced", self._hold(act, lose, self.killed), **fields)
        elif f == "clock":
            act.base = (self.clock_ns(value["node"]) - w.now) / 1e9
            self._clock(act, start=True)
            self.record("clock", value, **fields)
            act.first = self._sample(value["node"])
        elif f == "corrupt":
            node = value["nodes"][0]
            act.pids = {node: w.nodes[node].pid if w.nodes[node].up else None}
            w.kill(node)
            if node not in self.killed:
                self.killed.append(node)
            act.damage, act.saved = w.nodes[node].disk.corrupt(
                w.disk_rng, value["mode"], value["file"])
            self.record("corrupt", value, **fields)
        else:
            raise ValueError(f"the simulator cannot carry out fault kind {f!r}")

    def _hold(self, act: _Active, do: Callable[[str], Any], held: list[str]) -> list[str]:
        """Stop ``act``'s nodes with ``do`` (kill, pause, a power loss), remembering
        their process ids first and each node as ``held`` by the nemesis."""
        w = self.world
        nodes = sorted(act.op["value"])
        act.pids = {n: w.nodes[n].pid if w.nodes[n].up else None for n in nodes}
        for n in nodes:
            do(n)
            if n not in held:
                held.append(n)
        return nodes

    def _clock(self, act: _Active, *, start: bool) -> None:
        """A clock fault on the node's clock (docs/disk-and-clock.md "clock"):
        offset and bump jump it (and back at the end), strobe jumps it back and
        forth every ``period_ms`` while it holds, drift runs it at ``rate`` (the
        time it gained stays at the end)."""
        w = self.world
        value = act.op["value"]
        node, mode = value["node"], value.get("mode", "offset")
        offset = int(float(value.get("offset_s", 0.0)) * 1e9)
        if mode in ("offset", "bump"):
            w.clock_jump(node, offset if start else -offset)
        elif mode == "drift":
            rate = float(value.get("rate", 1.0))
            w.set_clock(node, rate=rate if start else 1.0)
            if start:
                self.drift[node] = (w.now, rate)
            elif node in self.drift:  # the time it gained stays
                since, rate = self.drift.pop(node)
                self.gain[node] = self.gain.get(node, 0) + int((w.now - since) * (rate - 1.0))
        elif mode == "strobe":
            if start:
                act.strobe = 0
                self._strobe(act)
            elif act.strobe % 2 == 1:
                w.clock_jump(node, -offset)  # end in the true phase
            act.strobe = -1

    def clock_ns(self, node: str) -> int:
        """The node's clock now (wall and monotonic alike): true time, its jumps,
        and what drifts made it gain or lose."""
        w = self.world
        t = w.now + w.nodes[node].clock_offset_ns + self.gain.get(node, 0)
        if node in self.drift:
            since, rate = self.drift[node]
            t += int((w.now - since) * (rate - 1.0))
        return t

    def _sample(self, node: str) -> tuple[int, int, int]:
        """What the real interpreter reads from a node's status: (true ns, wall, mono)."""
        t = self.clock_ns(node)
        return self.world.now, t, t

    def _strobe(self, act: _Active) -> None:
        if act.strobe < 0 or act.seq not in self.active:
            return
        w = self.world
        value = act.op["value"]
        offset = int(float(value.get("offset_s", 0.0)) * 1e9)
        w.clock_jump(value["node"], offset if act.strobe % 2 == 0 else -offset)
        act.strobe += 1
        w.at(w.now + int(float(value.get("period_ms", 100)) * 1e6), self._strobe, act)

    def _probe(self, act: _Active) -> None:
        if act.seq in self.active:  # the probe's answer came while the pause held
            act.probe = [n for n in sorted(act.op["value"]) if self.world.status(n) is not None]

    def _end(self, act: _Active, update: bool = True) -> None:
        op = act.op
        f, value, fields = op["f"], op["value"], self._fields(op)
        w = self.world
        if f in ("kill", "lose-unsynced"):
            nodes = sorted(value)
            refused = {}
            for n in nodes:
                if n in self.killed:
                    self.killed.remove(n)
                line = self._start(n)
                if line is not None:
                    refused[n] = line
            after = {n: w.nodes[n].pid for n in nodes}
            why = [f"{n} was not running" for n, pid in act.pids.items() if pid is None]
            why += [f"{n} kept PID {pid}" for n, pid in act.pids.items()
                    if pid is not None and after[n] == pid]
            ev: dict[str, Any] = {"pid_before": act.pids, "pid_after": after,
                                  "down_ms": round((w.now - act.since) / 1e6, 1),
                                  "effective": not why}
            if f == "lose-unsynced":
                ev["discarded"] = act.lost
            if refused:  # the node exits 2 at once, as a real one does, and stays down
                ev["refused"] = refused
            if why:
                ev["why"] = "; ".join(why)
            self.record(f"{f}-end", nodes, **fields, evidence=ev)
        elif f == "corrupt":
            self._end_corrupt(act, fields)
        elif f == "clock":
            last = self._sample(value["node"])
            self._clock(act, start=False)
            self.record("clock-end", value, **fields,
                        evidence=clock.evidence(value, act.first, last, True, act.base))
        elif f == "pause":
            nodes = sorted(value)
            for n in nodes:
                if n in self.paused:
                    self.paused.remove(n)
                w.resume(n)
            why = [f"{n} was not running" for n, pid in act.pids.items() if pid is None]
            why += [f"{n} answered status while paused" for n in act.probe or ()]
            ev = {"answered": act.probe,
                  "effective": False if why else (None if act.probe is None else True)}
            if why:
                ev["why"] = "; ".join(why)
            self.record("pause-end", nodes, **fields, evidence=ev)
        else:
            if update:
                self._apply_network()
            after = w.counters()["links"]
            self.record(f"{f}-end", value, **fields,
                        evidence=_network_evidence(op, act.before, after))

    def _start(self, node: str) -> str | None:
        """Start ``node`` if its files let it (storage.py's recovery); else the line a
        real node exits 2 with (it stays down)."""
        line = self.world.nodes[node].disk.refusal()
        if line is None:
            self.world.restart(node)
        return line

    def _end_corrupt(self, act: _Active, fields: dict[str, Any]) -> None:
        """Start the corrupted node and record what it did; a refusal is repaired
        from the saved copy and the node started again (faults/disk.py)."""
        w = self.world
        value = act.op["value"]
        node = value["nodes"][0]
        if node in self.killed:
            self.killed.remove(node)
        damage = act.damage or {}
        ev: dict[str, Any] = {"damage": act.damage, "pid_before": act.pids.get(node),
                              "repair": None}
        line = self._start(node)
        ev.update(outcome="recovered" if line is None else "refused",
                  exit_code=None if line is None else 2, line=line or "")
        if line is not None and damage.get("file") and act.saved is not None:
            disk = w.nodes[node].disk
            disk.repair(damage["file"], act.saved)
            ev["repair"] = "restored"
            again = self._start(node)
            if again is not None:
                ev["repair"] = f"restored, but it still did not start (exit 2: {again})"
        ev["pid_after"] = w.nodes[node].pid
        why = None
        if damage.get("file") is None:
            why = f"{node} had no data file to corrupt"
        if act.pids.get(node) is None:
            why = f"{node} was not running"
        ev["effective"] = why is None
        if why:
            ev["why"] = why
        self.record("corrupt-end", value, **fields, evidence=ev)

    def _apply_network(self) -> None:
        """The union of the active partitions and the active link faults, in start order."""
        w = self.world
        grudge: dict[str, set[str]] = {}
        nets: list[dict[str, Any]] = []
        for seq in sorted(self.active):
            op = self.active[seq].op
            if op["f"] == "partition":
                for dest, srcs in op["value"]["grudge"].items():
                    grudge.setdefault(dest, set()).update(srcs)
            elif op["f"] == "net":
                nets.append(op["value"])
        w.set_grudge({d: sorted(s) for d, s in sorted(grudge.items())})
        w.link_faults = {}
        w.set_links(None, "all")
        for value in nets:
            faults = {k: v for k, v in value.items() if k != "links"}
            w.set_links(faults, value["links"])

    # --- the end of the run -----------------------------------------------------------

    def heal(self) -> None:
        """End every active op (with its evidence), then anything still held."""
        self._stopped = True
        for seq in sorted(self.active):
            act = self.active.pop(seq)
            self._end(act)
        self.by_id.clear()
        self._ends = []
        w = self.world
        w.heal()
        for n in list(self.paused):
            w.resume(n)
        for n in list(self.killed):
            self._start(n)
        self.paused = []
        self.killed = []

    def sim_only(self) -> list[str]:
        """The sim-only fault kinds this run used."""
        return [k for k in self.used_kinds if k in SIM_ONLY]


def _takes_view(plan: Plan) -> bool:
    """Whether ``plan.next`` accepts the view (the extended Plan protocol)."""
    try:
        return len(inspect.signature(plan.next).parameters) >= 1
    except (TypeError, ValueError):
        return False
