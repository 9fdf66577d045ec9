"""Fault plans: seeded generators of fault operations, as plain data (docs/faults.md "Plans").

A plan says *what* fault to inject and *when*; an interpreter (faults/interpret.py
for real processes and the proxy/netns; the simulator can have its own) carries it
out. Jepsen splits its generator and nemesis the same way.

An operation is a plain dict (JSON-able)::

    {"f": "kill", "target": "leader", "at": 2.5, "hold": 1.8}          # as planned
    {"f": "kill", "target": "leader", "value": ["n3"], "at": 2.5, ...}  # resolved

- ``f``: ``kill``, ``pause``, ``partition``, ``net``.
- ``at``: seconds from the start of the nemesis; ``hold``: seconds until it ends.
- ``target``: what was asked for. kill/pause: ``one``, ``minority``, ``majority``,
  ``all``, ``leader`` or an explicit list of nodes; partition: the shape
  (``halves``, ``leader``, ...); net: ``"all"`` or ``"node"`` (one node's links).
- ``value``: the resolved operation, exactly the value of its nemesis events in
  the history (docs/faults.md "Nemesis events"), filled in by ``resolve``.

Invariants:
- A plan touches no socket, process, PID or clock. Its only input besides its
  own rng is the ``ClusterView`` an interpreter hands to ``resolve`` (node ids,
  the leader, the link faults the network can apply), so every interpreter
  gets the same operations from the same seed and the same views.
- ``next()`` returns operations in ``at`` order; an interpreter resolves one
  operation (``resolve``) before it asks for the next, so the rng is drawn in
  one order.
- Role targets (``leader``, shape ``leader``) are resolved against the view
  when the operation runs; the requested target stays beside the resolved value.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faults import disk
from faults.partition import SHAPES, Partition, make
from faults.process import TARGETS, pick_targets

#: The process and network kinds (what ``--nemesis all`` and the hunting plan use).
BASE_KINDS = ("kill", "pause", "partition", "net")
#: Every kind of fault operation a plan may hold: also the disk and clock kinds
#: (faults/disk.py), which need the cluster set up for them and are named only.
KINDS = BASE_KINDS + disk.KINDS
#: Control operations, carried out but never recorded: ``wait`` (call ``next``
#: again at ``at`` with a fresh view) and ``end`` (end the active op whose
#: ``id`` is ``ref``, at ``at``).
CONTROL = ("wait", "end")
#: Share of a one-way partition among partitions.
ONEWAY_P = 0.3
#: A fault holds for this share of the interval (uniform); the rest is calm.
HOLD = (0.3, 0.6)

FaultOp = dict[str, Any]


@dataclass(frozen=True)
class ClusterView:
    """What a plan may know about the cluster when an operation runs."""

    node_ids: tuple[str, ...]
    #: The current leader (the nodes' ``status``), or None when unknown.
    leader: str | None = None
    #: The link faults the network can apply (faults.api.link_faults_of); () without one.
    link_faults: tuple[str, ...] = ()
    #: Each node's latest ``status`` reply (docs/node-contract.md: role, leader,
    #: term or ballot, voted_for, commit_index, last_applied, log_len), None when
    #: the node is down, paused or silent; empty when the interpreter asks none.
    statuses: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    #: Seconds since the nemesis started, when the interpreter built this view.
    now: float = 0.0


class Plan(Protocol):
    """A seeded source of fault operations. A plan whose ``reads_statuses`` is
    False (RandomPlan, ReplayPlan) is sent views without ``statuses``, which
    are quicker to build (no node is asked); a plan without the attribute
    gets them."""

    def next(self, view: ClusterView | None = None) -> FaultOp | None:
        """The next operation (``f``, ``target``, ``at``, ``hold``), or None when done.
        ``view``: the cluster now (an interpreter passes a fresh one; None is allowed).
        Besides fault kinds, a plan may return the control ops of ``CONTROL``."""
        ...

    def resolve(self, op: FaultOp, view: ClusterView) -> FaultOp:
        """``op`` with its ``value`` decided against ``view``."""
        ...


class RandomPlan:
    """One fault at a time: after half an interval of calm, every ``interval_s``
    one operation of a random kind starts, holds 30% to 60% of the interval and
    ends; the rest is calm. Everything random comes from ``rng``."""

    reads_statuses = False

    def __init__(self, kinds: Sequence[str], interval_s: float, rng: random.Random) -> None:
        if interval_s <= 0:
            raise ValueError(f"nemesis interval must be > 0 s, not {interval_s}")
        self.kinds = tuple(kinds)
        self.interval_s = interval_s
        self.rng = rng
        self._i = 0

    def next(self, view: ClusterView | None = None) -> FaultOp | None:
        if not self.kinds:
            return None
        rng = self.rng
        at = self.interval_s / 2 + self._i * self.interval_s
        self._i += 1
        f = rng.choice(self.kinds)
        hold = self.interval_s * rng.uniform(*HOLD)
        op: FaultOp = {"f": f, "at": round(at, 6), "hold": round(hold, 6)}
        if f in ("kill", "pause"):
            op["target"] = rng.choice(TARGETS)
        elif f == "partition":
            op["target"] = rng.choice(SHAPES)
            op["oneway"] = rng.random() < ONEWAY_P
        elif f in disk.KINDS:
            op.update(disk.plan_fields(f, rng))
        return op

    def resolve(self, op: FaultOp, view: ClusterView) -> FaultOp:
        rng, nodes, f = self.rng, list(view.node_ids), op["f"]
        if f in ("kill", "pause"):
            value: Any = pick_targets(op["target"], nodes, rng, view.leader)
        elif f == "partition":
            value = make(op["target"], nodes, rng, oneway=op.get("oneway", False),
                         leader=view.leader).value()
        elif f in disk.KINDS:
            value = disk.resolve_value(op, view, rng)
        else:
            faults, links = net_profile(rng, nodes, view.link_faults)
            op = {**op, "target": "all" if links == "all" else "node"}
            value = {"links": links, **faults}
        return {**op, "value": value}


def net_profile(rng: random.Random, nodes: Sequence[str],
                supported: Iterable[str]) -> tuple[dict[str, Any], Any]:
    """A seeded link-fault profile, on all links or on the links of one node;
    only the faults ``supported`` lists (netns: loss only)."""
    supported = tuple(supported)
    profiles = ("loss", "delay", "mixed") if "delay" in supported else ("loss",)
    profile = rng.choice(profiles)
    faults: dict[str, Any] = {}
    if profile in ("loss", "mixed"):
        faults["loss"] = rng.choice((0.05, 0.1, 0.2, 0.3))
    if profile in ("delay", "mixed"):
        dist = rng.choice(("fixed", "uniform", "exponential"))
        faults["delay_ms"] = rng.choice((5, 10, 20, 50))
        faults["delay_dist"] = dist
        if dist == "uniform":
            faults["delay_max_ms"] = faults["delay_ms"] * 4
    if profile == "mixed" and "duplicate" in supported:
        faults["duplicate"] = rng.choice((0.0, 0.05, 0.1))
        faults["reorder"] = rng.choice((0.0, 0.1, 0.3))
    nodes = list(nodes)
    if rng.random() < 0.5:
        return faults, "all"
    x = rng.choice(nodes)
    links = [[x, y] for y in nodes if y != x] + [[y, x] for y in nodes if y != x]
    return faults, links


# --- replay -------------------------------------------------------------------------


def recorded_ops(events: Iterable[dict[str, Any]]) -> list[FaultOp]:
    """The fault operations a run recorded, from its history's nemesis events:
    each start (with its ``at`` and requested ``target``) and the ``at`` of its
    ``-end`` (the first later end of the same kind and value), in start order.
    A fault never ended holds to the last nemesis event."""
    from checker.nemesis import FaultReader  # the one reading of nemesis events

    reader = FaultReader()
    starts: list[dict[str, Any]] = []
    last = 0.0
    for e in events:
        if e.get("process") != "nemesis" or not isinstance(e.get("f"), str):
            continue
        at = e.get("at")
        if not isinstance(at, (int, float)):
            continue  # written before plans recorded offsets: nothing to place it by
        last = max(last, float(at))
        if not e["f"].endswith("-end") and e["f"] in KINDS:
            starts.append(e)
            reader.feed(e["f"], e.get("value"), float(at), len(starts) - 1)
        elif e["f"].endswith("-end"):
            reader.feed(e["f"], e.get("value"), float(at))
    ops = []
    for w in reader.windows:
        if w.kind not in KINDS or w.index is None:
            continue
        e = starts[w.index]
        end = w.end if w.end is not None else last
        op: FaultOp = {"f": w.kind, "at": float(w.start), "hold": max(0.0, float(end) - w.start),
                       "value": w.value}
        if "target" in e:
            op["target"] = e["target"]
        ops.append(op)
    return ops


class ReplayPlan:
    """The operations a run recorded, at the same offsets; role targets
    (``leader``) are resolved again against the view, everything else is
    applied as recorded."""

    reads_statuses = False

    def __init__(self, ops: Sequence[FaultOp]) -> None:
        self.ops = sorted(ops, key=lambda op: op["at"])
        self._i = 0

    def next(self, view: ClusterView | None = None) -> FaultOp | None:
        if self._i >= len(self.ops):
            return None
        op = self.ops[self._i]
        self._i += 1
        return dict(op)

    def resolve(self, op: FaultOp, view: ClusterView) -> FaultOp:
        leader = view.leader if view.leader in view.node_ids else None
        value = op.get("value")
        if leader is None:
            return op
        if op["f"] in ("kill", "pause") and op.get("target") == "leader":
            return {**op, "value": [leader]}
        if op["f"] == "partition" and isinstance(value, dict) and value.get("shape") == "leader":
            return {**op, "value": _moved(value, leader)}
        return op


def _moved(value: dict[str, Any], leader: str) -> dict[str, Any]:
    """A recorded ``leader`` partition aimed at ``leader``: the node it isolated
    (the one every other node was cut from, or that was cut from all) and the
    new leader swap places in the grudge."""
    grudge = {d: set(s) for d, s in (value.get("grudge") or {}).items()}
    nodes = set(grudge) | {s for srcs in grudge.values() for s in srcs}
    counts = {n: sum(n in srcs for srcs in grudge.values()) + len(grudge.get(n, ())) for n in nodes}
    old = max(sorted(counts), key=lambda n: counts[n]) if counts else leader
    swap = {old: leader, leader: old}
    moved = {swap.get(d, d): {swap.get(s, s) for s in srcs} for d, srcs in grudge.items()}
    return Partition(value.get("shape", "leader"), bool(value.get("oneway")), moved).value()


# --- reactive plans -------------------------------------------------------------------

#: A reactive plan's script: a generator that yields operations and is sent the
#: view the interpreter builds for the next ``next`` call.
Script = Generator[FaultOp, "ClusterView | None", None]


class ScriptPlan:
    """A reactive plan written as a generator: ``script(view)`` is started with
    the first view and yields operations; after each one it is sent the view
    of the next ``next`` call (``view = yield op``). It decides every value
    itself from its views (``resolve`` fills nothing in) and waits with
    ``wait(at)``. Everything random comes from the rng the script closes over."""

    def __init__(self, script: Callable[[ClusterView], Script]) -> None:
        self._script = script
        self._gen: Script | None = None
        self._done = False

    def next(self, view: ClusterView | None = None) -> FaultOp | None:
        if self._done:
            return None
        try:
            if self._gen is None:
                self._gen = self._script(view if view is not None else ClusterView(()))
                return next(self._gen)
            return self._gen.send(view)
        except StopIteration:
            self._done = True
            return None

    def resolve(self, op: FaultOp, view: ClusterView) -> FaultOp:
        if "value" not in op:
            raise ValueError(f"a reactive plan's {op['f']} operation has no value")
        return op


def wait(at: float) -> FaultOp:
    """The control op that asks for the next view at ``at`` (nothing is recorded)."""
    return {"f": "wait", "at": round(at, 6)}


def end(ref: Any, at: float) -> FaultOp:
    """The control op that ends the active operation whose ``id`` is ``ref``."""
    return {"f": "end", "ref": ref, "at": round(at, 6)}


def term_of(status: Mapping[str, Any] | None) -> int:
    """A ``status`` reply's term: Raft's term or Paxos's promised ballot round
    (0 when the node says neither)."""
    status = status or {}
    term = status.get("term", status.get("ballot"))
    return term if isinstance(term, int) else 0


def leader_of(view: ClusterView) -> str | None:
    """The leader the freshest status replies name (a node that says it leads,
    the newest term first), else the view's ``leader``."""
    leaders = [(term_of(s), n) for n, s in view.statuses.items()
               if s and s.get("role") == "leader" and n in view.node_ids]
    if leaders:
        return max(leaders)[1]
    return view.leader if view.leader in view.node_ids else None


#: The steps of a reactive script: ``yield from`` them inside a ScriptPlan's generator.
Steps = Generator[FaultOp, "ClusterView | None", Any]


class Player:
    """The bookkeeping of a reactive script (faults/hunt.py, faults/mixes.py,
    faults/moves/): the latest view, starting and ending operations, waiting
    for a time or for a condition on the view. Each helper is a generator of
    steps (``yield from``); afterwards ``self.view`` is the view the
    interpreter sent with its next ``next`` call."""

    def __init__(self) -> None:
        self.view = ClusterView(())
        self._ids = 0
        #: Operations started without a hold (ended by ``end``), by id.
        self.open: dict[int, FaultOp] = {}

    def _got(self, view: ClusterView | None, at: float) -> None:
        # an interpreter that sends no views: the plan's own clock goes on
        self.view = view if view is not None else ClusterView(self.view.node_ids, now=at)

    def status(self, node: str) -> dict[str, Any] | None:
        """``node``'s status in the latest view (None: down, paused, silent or unknown)."""
        return self.view.statuses.get(node)

    def until(self, t: float) -> Steps:
        """Wait until ``t``; ``self.view`` is then the view of that moment."""
        while self.view.now < t - 1e-6:
            self._got((yield wait(t)), t)

    def emit(self, f: str, target: Any, value: Any, hold: float | None = None,
             **extra: Any) -> Steps:
        """Start one operation now; held ``hold`` seconds, or until ``end``
        (None). Returns its id."""
        now = self.view.now
        self._ids += 1
        if extra.get("replaces", 0) is None:
            del extra["replaces"]  # nothing to replace
        op: FaultOp = {"f": f, "target": target, "value": value, "at": round(now, 6),
                       "hold": None if hold is None else round(hold, 6), "id": self._ids, **extra}
        self.started(op)
        if hold is None:
            self.open[self._ids] = op
        self.open.pop(extra.get("replaces"), None)  # type: ignore[arg-type]
        self._got((yield op), now)
        return self._ids

    def started(self, op: FaultOp) -> None:
        """Called for every operation as it is emitted (subclasses keep books)."""

    def end(self, ref: int | None) -> Steps:
        """End the open operation ``ref`` now (nothing if it is not open)."""
        if ref is not None and self.open.pop(ref, None) is not None:
            now = self.view.now
            self._got((yield end(ref, now)), now)

    def end_all(self, f: str | None = None) -> Steps:
        """End every open operation (of kind ``f``), oldest first."""
        for ref in [r for r, op in self.open.items() if f is None or op["f"] == f]:
            yield from self.end(ref)

    def wait_for(self, check: Callable[[], Any], timeout: float, poll: float) -> Steps:
        """Poll the view every ``poll`` s until ``check()`` returns something
        (returned) or ``timeout`` s pass (None)."""
        deadline = self.view.now + max(0.0, timeout)
        while True:
            found = check()
            if found is not None:
                return found
            if self.view.now >= deadline:
                return None
            yield from self.until(min(self.view.now + poll, deadline))
