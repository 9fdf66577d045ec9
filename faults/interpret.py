"""The interpreter: carries a fault plan out on real processes and the proxy/netns.

Owns
- ``Interpreter(plan, ctx, net)``: the ``Nemesis`` for every plan (the
  hunting plan, named kinds, the demonstration mixes and their scripted
  moves, replays): it asks the plan (faults/plan.py) for its operations,
  passing a fresh ``ClusterView`` (node ids, the leader, the network's link
  faults, every node's ``status``), waits until each one's ``at``, resolves
  and applies it (SIGKILL/SIGSTOP through faults.process, grudges and link
  faults through the ``NetworkControl``, disk and clock kinds through
  faults.disk), and ends it ``hold`` seconds later, or when the plan's
  ``end`` names it, or when a later operation ``replaces`` it; ``wait``
  asks the plan again at its time;
- the evidence that each fault bit (docs/faults.md "Evidence"), written on
  the fault's ``-end`` event, and ``ineffective_faults(events)``, the windows
  whose evidence says the fault had no effect (results.json).

Invariants:
- Every start and end goes through ``Interpreter.record``: the history gets
  the value (docs/faults.md "Nemesis events"), ``at`` (seconds since the
  nemesis started, taken when the step began), and the requested
  ``target``; the ``-end`` event repeats the start's value. Control
  operations (``wait``, ``end``) are never recorded.
- Operations may overlap: the network carries the union of the active
  partitions and every active net operation, each recorded on its own.
- Steps run in time order, ends before starts at the same instant; once
  ``stop`` is set no step starts, and ``heal()`` ends every active operation
  (with its evidence), then anything an interrupted start left.
- Replica agreement (faults/agreement.py): every ``status`` the
  interpreter asks for (each view, a sampler every ``AGREE_EVERY_S`` while
  it runs, and a last round in ``heal()`` once the nodes have applied the
  same index or ``AGREE_SETTLE_S`` passed) feeds one ``AgreementWatch``; a
  divergence it proves is recorded at once as its ``agreement-end`` event.
  The same statuses feed one ``ElectionWatch`` (faults/election.py): two
  nodes that led one term are recorded at once as ``election-end``; and one
  ``DurableWatch`` (faults/durable.py): a node restarted from less than it
  reported before is recorded at once as ``durable-end``.
- Evidence is measured, never assumed: a kill compares PIDs and times the
  node's absence, a pause asks the node for ``status`` while it is stopped
  (both in faults.process); a partition or link fault reads the network's
  per-link counters before and after (the proxy counts messages, netns's
  nftables rules count packets). A backend without counters gives
  ``effective`` null (unknown), which is not flagged.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from typing import Any

from faults import disk
from faults.agreement import EVENT as AGREEMENT_EVENT
from faults.agreement import AgreementWatch
from faults.api import NemesisContext, NetworkControl, link_faults_of
from faults.durable import EVENT as DURABLE_EVENT
from faults.durable import DurableWatch
from faults.election import EVENT as ELECTION_EVENT
from faults.election import ElectionWatch
from faults.plan import ClusterView, FaultOp, Plan
from faults.process import ProcessFaults, current_leader

log = logging.getLogger(__name__)

#: When a pause's probe asks the paused nodes for ``status`` (faults.process):
#: this share of the hold, at most PROBE_MAX_S after the start.
PROBE_SHARE = 0.5
PROBE_MAX_S = 0.3
#: How often the agreement sampler asks every node for ``status``, and how long
#: ``heal()`` waits at most for the nodes to apply the same index before its
#: last round (faults/agreement.py).
AGREE_EVERY_S = 0.5
AGREE_SETTLE_S = 5.0


def network_of(ctx: NemesisContext) -> NetworkControl | None:
    """The network backend of ``ctx``: its ``network``, else a ProxyControl on
    its ``proxy_control``, else None (``--net direct``)."""
    if ctx.network is not None:
        return ctx.network
    if ctx.proxy_control:
        from faults.proxyctl import ProxyControl

        return ProxyControl(ctx.proxy_control)
    return None


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; False (at once) if ``stop`` is set meanwhile.
    True means the window ran its course."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return True
    return False


class _Active:
    """One operation being carried out, and what its evidence needs."""

    __slots__ = ("before", "op", "seq")

    def __init__(self, op: FaultOp, seq: int) -> None:
        self.op = op
        self.seq = seq
        self.before: Any = None  # the network's per-link counters at the start


#: The fault kinds the network carries.
_NETWORK = ("partition", "net")


class Interpreter:
    """Carries a plan out (see the module header).

    Operations may overlap. The network carries the union of the active
    partitions' grudges and every active net operation's link faults (applied
    in start order); each operation's events carry its own value. A process
    operation holds exactly the nodes of its value (faults.process)."""

    def __init__(self, plan: Plan, ctx: NemesisContext, net: NetworkControl | None) -> None:
        self.ctx = ctx
        self.net = net
        self.procs = ProcessFaults(ctx, self.record)
        self.disk = disk.DiskActions(ctx, self.record)  # lose-unsynced, corrupt, clock
        #: Loop time the nemesis started (``run``); events carry ``at`` from it.
        self.t0: float | None = None
        self._lock = asyncio.Lock()
        self.plan = plan
        self.active: dict[int, _Active] = {}
        self._ids: dict[Any, int] = {}  # plan-given op id -> seq of the active op
        self._seq = 0
        self._link_sets: list[Any] = []  # the ``links`` the network has faults on now
        self.agree = AgreementWatch()
        self.elections = ElectionWatch()
        self.durable = DurableWatch()

    async def view(self) -> ClusterView:
        """The cluster now: node ids, the leader, the link faults the network
        can apply, and every node's fresh ``status`` (asked in parallel)."""
        nodes = tuple(self.ctx.cluster.node_ids)
        leader_task = current_leader(self.ctx.leader)
        if self.ctx.status is None or not getattr(self.plan, "reads_statuses", True):
            return ClusterView(nodes, await leader_task, link_faults_of(self.net), now=self.now())
        leader, statuses = await asyncio.gather(leader_task, self.statuses())
        self._observe(statuses)
        return ClusterView(nodes, leader, link_faults_of(self.net), statuses, now=self.now())

    # --- replica agreement (faults/agreement.py) ----------------------------------

    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        """Every node's fresh ``status`` (None: dead, paused, silent, or no
        ``ctx.status``), asked in parallel."""
        status = self.ctx.status
        nodes = tuple(self.ctx.cluster.node_ids)
        if status is None:
            return dict.fromkeys(nodes)

        async def one(node: str) -> dict[str, Any] | None:
            try:
                return await status(node)  # type: ignore[misc]
            except (OSError, TimeoutError):
                return None

        return dict(zip(nodes, await asyncio.gather(*(one(n) for n in nodes))))

    def _observe(self, statuses: dict[str, dict[str, Any] | None]) -> None:
        """Feed the watches; record each divergence, unsafe election and lost
        durable state they prove (without ``at``: the replay plan reads ``at``
        as the nemesis's own steps)."""
        for node, st in statuses.items():
            if st:
                pid = st.get("pid")
                for d in self.agree.observe(node, pid, st.get("agree")):
                    self.ctx.record(AGREEMENT_EVENT, d["value"], evidence=d["evidence"])
                for d in self.elections.observe(node, pid, st.get("led")):
                    self.ctx.record(ELECTION_EVENT, d["value"], evidence=d["evidence"])
                for d in self.durable.observe(node, pid, st):
                    self.ctx.record(DURABLE_EVENT, d["value"], evidence=d["evidence"])

    async def _sample_agreement(self, stop: asyncio.Event) -> None:
        while await sleep_unless(stop, AGREE_EVERY_S):
            self._observe(await self.statuses())

    async def _settle_agreement(self) -> None:
        """After the heal: wait (at most AGREE_SETTLE_S) until every node that
        answers reports the same applied index twice in a row, observing each
        round. Nodes that answer without an agreement chain (``--system``
        programs, test fakes) have nothing to settle: no wait."""
        if self.ctx.status is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AGREE_SETTLE_S
        last: set[Any] | None = None
        while True:
            statuses = await self.statuses()
            self._observe(statuses)
            answered = [st for st in statuses.values() if st]
            applied = {(st.get("agree") or {}).get("applied") for st in answered
                       if isinstance(st.get("agree"), dict)}
            if answered and not applied:
                return  # the nodes keep no agreement chain: nothing to settle
            if (len(applied) == 1 and applied == last) or loop.time() >= deadline:
                return
            last = applied
            await asyncio.sleep(0.25)

    async def run(self, stop: asyncio.Event) -> None:
        sampler = asyncio.create_task(self._sample_agreement(stop))
        try:
            await self._run(stop)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    async def _run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time()
        ends: list[tuple[float, int]] = []  # (when, seq) of active operations with a hold
        # The view the plan chose ``nxt`` from; an operation due at once is resolved
        # against it instead of a second view (on real processes a view costs a
        # status round to every node, and a reaction should cost one).
        seen: ClusterView | None = await self.view()
        nxt = self.plan.next(seen)
        while not stop.is_set():
            t_start = nxt["at"] if nxt is not None else float("inf")
            t_end = ends[0][0] if ends else float("inf")
            if t_start == t_end == float("inf"):
                await stop.wait()
                return
            wait = min(t_start, t_end) - self.now()
            if not await sleep_unless(stop, wait):
                return
            # nothing passed since ``seen`` (no wait, no end carried out): still the cluster now
            fresh = wait <= 0 and seen is not None
            async with self._lock:
                if stop.is_set():
                    return
                if t_end <= t_start:
                    _, seq = heapq.heappop(ends)
                    act = self._take(seq)
                    if act is not None:  # not ended already (an ``end`` or ``replaces``)
                        await self._end(act)
                        seen = None
                    continue
                assert nxt is not None
                if nxt["f"] == "end":
                    act = self._take(self._ids.get(nxt.get("ref")))
                    if act is not None:
                        await self._end(act)
                elif nxt["f"] != "wait":
                    op = self.plan.resolve(nxt, seen if fresh else await self.view())
                    act = _Active(op, self._seq)
                    self._seq += 1
                    replaced = self._take(self._ids.get(op.get("replaces")))
                    self.active[act.seq] = act
                    if "id" in op:
                        self._ids[op["id"]] = act.seq
                    await self._begin(act, replaced)
                    if op.get("hold") is not None:
                        heapq.heappush(ends, (op["at"] + op["hold"], act.seq))
            seen = await self.view()
            nxt = self.plan.next(seen)

    def now(self) -> float:
        """Seconds since the nemesis started (0 before ``run``)."""
        if self.t0 is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.t0

    def record(self, f: str, value: Any, **fields: Any) -> None:
        """One nemesis event, with ``at`` (seconds since the nemesis started)
        unless the caller gives it, and any other ``fields`` (target, evidence)."""
        if self.t0 is not None:
            fields.setdefault("at", round(self.now(), 6))
        if fields:
            self.ctx.record(f, value, **fields)
        else:
            self.ctx.record(f, value)

    def _take(self, seq: int | None) -> _Active | None:
        """Remove the active operation ``seq`` (and its plan id); None if not active."""
        act = self.active.pop(seq, None) if seq is not None else None
        if act is not None and "id" in act.op:
            self._ids.pop(act.op["id"], None)
        return act

    async def heal(self) -> None:
        async with self._lock:
            errors: list[BaseException] = []
            for seq in sorted(self.active):
                try:
                    act = self._take(seq)
                    if act is not None:
                        await self._end(act)
                except Exception as exc:  # noqa: BLE001 -- end the rest, then heal all
                    log.error("heal: ending %s failed: %s", seq, exc)
                    errors.append(exc)
            if errors and self.net is not None:
                await asyncio.to_thread(self.net.heal)  # whatever an op left
                self._link_sets = []
            for step in (self.procs.resume, self.procs.restart, self.disk.heal):
                try:  # anything an interrupted start left
                    await step()
                except Exception as exc:  # noqa: BLE001 -- heal the rest even if one fails
                    log.error("heal: %s failed: %s", step.__name__, exc)
                    errors.append(exc)
            if errors:
                raise errors[0]
        try:
            await self._settle_agreement()
        except Exception as exc:  # noqa: BLE001 -- a last look, never a failed heal
            log.error("heal: the agreement check failed: %s", exc)

    # --- one operation ------------------------------------------------------------

    def _fields(self, op: FaultOp) -> dict[str, Any]:
        fields: dict[str, Any] = {"at": round(self.now(), 6)}
        if "target" in op:
            fields["target"] = op["target"]
        return fields

    async def _begin(self, act: _Active, replaced: _Active | None = None) -> None:
        op = act.op
        f, value, fields = op["f"], op["value"], self._fields(op)
        if replaced is not None and (f not in _NETWORK or replaced.op["f"] not in _NETWORK
                                     or self.net is None):
            await self._end(replaced)  # nothing to do in one step
            replaced = None
        held = value if f in ("kill", "pause", "lose-unsynced") else (
            value.get("nodes") if f == "corrupt" and isinstance(value, dict) else None)
        if held:
            self.disk.touch(list(held))  # a restart watch on these nodes ends here
        if f in disk.KINDS:
            await self.disk.begin(op, fields)
        elif f == "kill":
            await self.procs.kill(list(value), **fields)
        elif f == "pause":
            await self.procs.pause(list(value), min(PROBE_MAX_S, (op.get("hold") or 1.0)
                                                    * PROBE_SHARE), **fields)
        elif self.net is None:
            log.info("no network backend for %s; skipped", f)
        else:
            act.before = await self._counters()
            await self._apply_network({f} | ({replaced.op["f"]} if replaced else set()))
            if replaced is not None:  # ended in the same network update
                self._record_end(replaced, act.before, {"at": fields["at"]})
            self.record(f, value, **fields)
            log.info("%s %s", f, value)

    async def _end(self, act: _Active) -> None:
        op = act.op
        f, fields = op["f"], self._fields(op)
        if f in disk.KINDS:
            await self.disk.end(op, fields)
        elif f == "kill":
            await self.procs.restart(list(op["value"]), fields)
        elif f == "pause":
            await self.procs.resume(list(op["value"]), fields)
        elif self.net is not None:
            after = await self._counters()
            await self._apply_network({f})
            self._record_end(act, after, fields)

    def _record_end(self, act: _Active, after: dict | None,
                    fields: dict[str, Any] | None = None) -> None:
        fields = fields if fields is not None else self._fields(act.op)
        fields["evidence"] = _network_evidence(act.op, act.before, after)
        self.record(f"{act.op['f']}-end", act.op["value"], **fields)

    async def _apply_network(self, changed: set[str]) -> None:
        """Make the network carry the active operations (see the class doc):
        with none active, heal it whole; else re-set what ``changed`` names."""
        assert self.net is not None
        acts = [self.active[s] for s in sorted(self.active)
                if self.active[s].op["f"] in _NETWORK]
        if not acts:
            await asyncio.to_thread(self.net.heal)
            self._link_sets = []
            return
        if "partition" in changed:
            grudge: dict[str, set[str]] = {}
            for a in acts:
                if a.op["f"] == "partition":
                    for dest, srcs in a.op["value"]["grudge"].items():
                        grudge.setdefault(dest, set()).update(srcs)
            await asyncio.to_thread(self.net.set_grudge,
                                    {d: sorted(srcs) for d, srcs in grudge.items() if srcs})
        if "net" in changed:
            for links in self._link_sets:
                await asyncio.to_thread(self.net.set_links, None, links)
            self._link_sets = []
            for a in acts:
                if a.op["f"] == "net":
                    value = a.op["value"]
                    faults = {k: v for k, v in value.items() if k != "links"}
                    await asyncio.to_thread(self.net.set_links, faults, value["links"])
                    self._link_sets.append(value["links"])

    # --- evidence -----------------------------------------------------------------

    async def _counters(self) -> dict[str, dict[str, int]] | None:
        read: Callable[[], Any] | None = getattr(self.net, "counters", None)
        if read is None:
            return None
        try:
            reply = await asyncio.to_thread(read)
        except Exception as exc:  # noqa: BLE001 -- no evidence is not a failed fault
            log.info("counters: %s", exc)
            return None
        links = reply.get("links") if isinstance(reply, dict) else None
        return links if isinstance(links, dict) else None


def _network_evidence(op: FaultOp, before: dict | None, after: dict | None) -> dict[str, Any]:
    """What the proxy's per-link counters say about a partition or link fault:
    messages cut (grudge) or dropped, delayed or duplicated (link faults) on
    the links the fault named, and on any other link."""
    if before is None or after is None:
        return {"counters": None, "effective": None}
    value = op["value"]

    def delta(link: str, keys: tuple[str, ...]) -> int:
        a, b = after.get(link) or {}, before.get(link) or {}
        return sum(max(0, int(a.get(k, 0)) - int(b.get(k, 0))) for k in keys)

    if op["f"] == "partition":
        named = {f"{s}->{d}" for d, srcs in value["grudge"].items() for s in srcs}
        keys: tuple[str, ...] = ("cut",)
    else:
        links = value.get("links")
        named = set(after) if links == "all" else {f"{s}->{d}" for s, d in links}
        keys = ("dropped", "delayed", "duplicated")
    hit = {link: n for link in sorted(named) if (n := delta(link, keys))}
    elsewhere = sum(delta(link, keys) for link in after if link not in named)
    ev: dict[str, Any] = {"links": len(named), "hit": hit, "elsewhere": elsewhere,
                          "effective": bool(hit)}
    if not hit:
        ev["why"] = f"no message {'cut' if op['f'] == 'partition' else 'touched'} on " \
                    f"{len(named)} named link(s)"
    return ev


def ineffective_faults(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every fault window whose ``-end`` evidence says it had no effect, in
    history order: ``{"kind", "value", "at", "end_ns", "why"}`` (results.json)."""
    found = []
    for e in events:
        f = e.get("f")
        ev = e.get("evidence")
        if (e.get("process") == "nemesis" and isinstance(f, str) and f.endswith("-end")
                and isinstance(ev, dict) and ev.get("effective") is False):
            found.append({"kind": f.removesuffix("-end"), "value": e.get("value"),
                          "at": e.get("at"), "end_ns": e.get("time"),
                          "why": ev.get("why", "")})
    return found
