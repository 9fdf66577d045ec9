"""Simulated clients: the real workers' and Pipeline's behaviour in simulated time.

Owns ``SimPipeline`` (harness/client.py ``Pipeline`` over a ``World``) and
``SimLoad`` (harness/workers.py's slots), recording events in the history
format of docs/history.md with simulated-ns times. The generators are handed
in (built by the caller from ``harness.workload``); what a request does after
each reply or failed send, and what a completion records, are
harness/retry_rules.py's, the same pure decisions the real Pipeline and
workers carry out, so the simulated clients retry exactly as the real ones.

The rules kept from the real clients:
- one operation in flight per slot; its next start ``gap()`` after the last
  start (or at its completion if later), the first ``first_delay()`` after
  the load starts; slot ``s``'s home node is ``nodes[s % n]``;
- a request to a node whose process is not running cannot be sent (the real
  sockets set ZMQ_IMMEDIATE): ``retry_rules.after_unsent``; a reply:
  ``retry_rules.outcome`` and, for a refusal, ``after_refusal`` (the sim's
  clients always follow leader hints, as the workers' do); no reply by the
  request timeout is ``info`` (never re-sent);
- a request id is never reused, so a late reply to a timed-out request is
  dropped;
- after an ``info`` a slot continues under a fresh process number. The sim
  runs all slots in ONE virtual worker process (real runs use one per core,
  which would make the numbers depend on the machine): fresh numbers are
  ``concurrency``, ``concurrency + 1``, ..., and ``seen`` (the newest value
  per key, for cas) is shared by all slots, as within one real worker.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

from harness import retry_rules as rules
from harness.retry_rules import completion_value
from nodes.sim.world import World

__all__ = ["FinalReads", "SimCall", "SimLoad", "SimPipeline", "completion_value"]

CLIENT_ID = b"sim-client"


class SimCall:
    """One operation in a SimPipeline (see harness/client.py ``Call``)."""

    __slots__ = ("body", "deadline", "done", "home", "last", "last_node", "node", "rid",
                 "send_deadline", "seq")

    def __init__(self, home: str, done: Callable[..., None]) -> None:
        self.home = home
        self.done = done  # done(call, type, reply, node, error, t)
        self.body: dict[str, Any] = {}
        self.deadline = 0
        self.node = home
        self.rid = 0
        self.last: dict[str, Any] | None = None
        self.last_node: str | None = None
        self.send_deadline = 0
        self.seq = 0


class SimPipeline:
    """Operations to the simulated cluster, many in flight; see the module header."""

    def __init__(self, world: World, node_ids: list[str]) -> None:
        self.world = world
        self.nodes = list(node_ids)
        self._next_node = {n: self.nodes[(i + 1) % len(self.nodes)]
                           for i, n in enumerate(self.nodes)}
        self._rids = itertools.count(1)
        self._seqs = itertools.count(1)
        self.pending: dict[int, SimCall] = {}
        # The deadlines, as the real Pipeline keeps them: a heap of (deadline, seq, call)
        # apart from the world's events, with ONE world event at the earliest deadline
        # of a call still running (most calls end long before theirs: no event each).
        self._deadlines: list[tuple[int, int, SimCall]] = []
        self._wake_at: int | None = None
        world.reply_sink = self._on_reply_raw

    def start(self, c: SimCall, body: dict[str, Any], timeout_ns: int) -> None:
        now = self.world.now
        c.body = body
        c.deadline = now + timeout_ns
        c.last = c.last_node = None
        c.seq = seq = next(self._seqs)
        heappush(self._deadlines, (c.deadline, seq, c))
        if self._wake_at is None or c.deadline < self._wake_at:
            self._arm()
        self._attempt(c, c.home, now)

    def _arm(self) -> None:
        """One world event at the earliest deadline of a running call (if sooner
        than the one armed); the calls that ended are dropped from the top."""
        dl = self._deadlines
        while dl and dl[0][2].seq != dl[0][1]:
            heappop(dl)
        if dl and (self._wake_at is None or dl[0][0] < self._wake_at):
            self._wake_at = dl[0][0]
            self.world.at(self._wake_at, self._expire, self._wake_at)

    def _expire(self, at: int) -> None:
        """The calls whose deadline has come end ``info`` (timeout), each at its deadline."""
        if self._wake_at == at:
            self._wake_at = None
        now = self.world.now
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            _, seq, c = heappop(dl)
            if c.seq == seq and self.pending.pop(c.rid, None) is c:
                self._finish(c, rules.INFO, None, c.node, "timeout", now)
        self._arm()

    def _finish(self, c: SimCall, type_: str, reply: dict[str, Any] | None, node: str | None,
                error: str | None, t: int) -> None:
        c.seq = 0
        c.done(c, type_, reply, node, error, t)

    def _attempt(self, c: SimCall, node: str, now: int) -> None:
        if c.deadline - now <= 0:
            self._finish(c, rules.FAIL, c.last, c.last_node, rules.expired_error(c.last), now)
            return
        c.node = node
        c.rid = rid = next(self._rids)
        c.body["id"] = rid
        c.send_deadline = rules.send_deadline(now, c.deadline)
        self._send(c, now)

    def _send(self, c: SimCall, now: int) -> None:
        world = self.world
        if not world.reachable(c.node):
            next_node, when = rules.after_unsent(now, c.send_deadline, c.deadline)
            if not next_node:
                world.at(when, self._resend, (c, c.seq))
                return
            c.last_node = c.node
            if when <= now:
                self._attempt(c, self._next_node[c.node], now)
            else:
                c.node = self._next_node[c.node]
                world.at(when, self._retry_at_node, (c, c.seq))
            return
        # The request crosses the wire: the node gets its own copy.
        world.client_send(c.node, CLIENT_ID, dict(c.body))
        self.pending[c.rid] = c

    def _resend(self, arg: tuple[SimCall, int]) -> None:
        c, seq = arg
        if c.seq == seq:
            self._send(c, self.world.now)

    def _retry_at_node(self, arg: tuple[SimCall, int]) -> None:
        c, seq = arg
        if c.seq == seq:
            self._attempt(c, c.node, self.world.now)

    def _retry_home(self, arg: tuple[SimCall, int]) -> None:
        c, seq = arg
        if c.seq == seq:
            self._attempt(c, c.home, self.world.now)

    def _on_reply_raw(self, _client: bytes, reply: dict[str, Any], node: str, t: int) -> None:
        c = self.pending.pop(reply.get("id"), None)  # type: ignore[arg-type]
        if c is None:
            return  # a late reply to a request that already ended
        kind = rules.outcome(reply)
        if kind is rules.OK:
            self._finish(c, kind, reply, node, None, t)
            return
        c.last, c.last_node = reply, node
        if kind is not rules.REFUSED:  # info: may take effect; fail: a real answer
            self._finish(c, kind, reply, node, reply.get("error"), t)
            return
        target, when = rules.after_refusal(reply, node, self._next_node, True, t, c.deadline)
        if target is not None:
            self._attempt(c, target, t)
        else:
            self.world.at(when, self._retry_home, (c, c.seq))


class _Slot(SimCall):
    __slots__ = ("drawn", "ended", "gen", "next_at", "op", "process", "slot")
    # declared for the type checker (and mypyc's native attributes); set in SimLoad
    drawn: int
    ended: bool
    gen: Any
    next_at: int
    op: Any
    process: int
    slot: int


class SimLoad:
    """The run's client slots on one SimPipeline, recording into ``events``.

    ``drop_slots``: slots that invoke nothing; ``skip_ops``: (slot, n) pairs
    whose n-th generated operation (0-based) is drawn but not invoked, the
    slot waiting that operation's gap, so later operations keep their times
    (the shrinker's client mask: every other operation stays what it was,
    each slot's rng being its own). ``keep_ops`` (None: no such mask): a slot
    invokes only its listed (slot, n) operations, every other one drawn and
    skipped as a ``skip_ops`` one (a pair in both is skipped); past its last
    listed one it ends, and a slot with none listed starts nothing (so a
    shrink candidate invokes a subset of what it was given, never more).
    ``ops``: the (slot, n) of every invoked operation, in invoke order."""

    def __init__(self, world: World, node_ids: list[str], gens: list[Any],
                 request_timeout_s: float, events: list[dict[str, Any]], *,
                 drop_slots: frozenset[int] = frozenset(),
                 skip_ops: frozenset[tuple[int, int]] = frozenset(),
                 keep_ops: frozenset[tuple[int, int]] | None = None) -> None:
        self.world = world
        self.pipe = SimPipeline(world, node_ids)
        self.events = events
        self.timeout_ns = int(request_timeout_s * 1e9)
        self.stopping = False
        self.active = 0
        self.counts = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        concurrency = len(gens)
        self._fresh = itertools.count(concurrency)
        self.drop_slots = drop_slots
        self.skip_ops = skip_ops
        self.keep_ops = keep_ops
        #: slot -> the number of its last kept operation (keep_ops only)
        self._last_kept: dict[int, int] = {}
        for slot, n in keep_ops or ():
            self._last_kept[slot] = max(n, self._last_kept.get(slot, n))
        self.ops: list[tuple[int, int]] = []
        self.slots: list[_Slot] = []
        for slot, gen in enumerate(gens):
            s = _Slot(node_ids[slot % len(node_ids)], self._done)
            s.gen = gen
            s.process = slot
            s.slot = slot
            s.drawn = 0
            s.op = None
            s.next_at = 0
            s.ended = False
            self.slots.append(s)

    def go(self) -> None:
        now = self.world.now
        for s in self.slots:
            if s.slot in self.drop_slots or (
                    self.keep_ops is not None and s.slot not in self._last_kept):
                s.ended = True  # never started: stop() must not end it again
                continue
            self.active += 1
            s.next_at = now + int(s.gen.first_delay() * 1e9)
            self.world.at(s.next_at, self._begin, s)

    def _begin(self, s: _Slot) -> None:
        if self.stopping or s.ended:
            self._end(s)
            return
        n = s.drawn
        keep = self.keep_ops
        if keep is not None and n > self._last_kept[s.slot]:
            self._end(s)  # past its last kept operation: as a dropped slot, it is done
            return
        op = s.op = s.gen.next_op()
        s.drawn += 1
        if (self.skip_ops and (s.slot, n) in self.skip_ops) or (
                keep is not None and (s.slot, n) not in keep):
            # Drawn, not invoked: its time stays empty (its gap drawn as if it had
            # run), so the slot's later operations keep their times and draws.
            s.next_at += int(s.gen.gap() * 1e9)
            self.world.at(max(s.next_at, self.world.now), self._begin, s)
            return
        self.ops.append((s.slot, n))
        self.events.append({"time": self.world.now, "process": s.process, "type": "invoke",
                            "f": op.f, "key": op.key, "value": op.value})
        self.counts["invoke"] += 1
        self.pipe.start(s, op.request(), self.timeout_ns)

    def _done(self, s: _Slot, type_: str, reply: dict[str, Any] | None, node: str | None,
              error: str | None, t: int) -> None:
        op = s.op
        assert op is not None
        value = completion_value(op, type_, reply)
        event: dict[str, Any] = {"time": t, "process": s.process, "type": type_, "f": op.f,
                                 "key": op.key, "value": value}
        if node is not None:
            event["node"] = node
        if type_ != "ok" and error:
            event["error"] = error
        self.events.append(event)
        self.counts[type_] += 1
        s.gen.observe(op, type_, value)
        if type_ == "info":
            s.process = next(self._fresh)
        s.next_at = max(s.next_at + int(s.gen.gap() * 1e9), t)
        if self.stopping:
            self._end(s)
        elif s.next_at <= t:
            self._begin(s)
        else:
            self.world.at(s.next_at, self._begin, s)

    def stop(self) -> None:
        """Start no more operations; those in flight end within the request timeout."""
        self.stopping = True
        for s in self.slots:
            if s.seq == 0:
                self._end(s)

    def _end(self, s: _Slot) -> None:
        if not s.ended:
            s.ended = True
            self.active -= 1

    def next_process(self) -> int:
        return next(self._fresh)


class FinalReads:
    """After healing: read every key, each attempt under a fresh process
    number, retrying 100 ms after a non-ok until one is ok or the deadline
    (harness/workers.py ``final_reads``)."""

    def __init__(self, load: SimLoad, keys: list[str], request_timeout_s: float,
                 deadline_ns: int) -> None:
        self.load = load
        self.world = load.world
        self.pipe = load.pipe
        self.deadline = deadline_ns
        self.timeout_ns = int(request_timeout_s * 2e9)
        self.ok: dict[str, bool] = dict.fromkeys(keys, False)
        self.open = len(keys)
        nodes = load.pipe.nodes
        for i, key in enumerate(keys):
            c = _Read(nodes[i % len(nodes)], self._done)
            c.key = key
            c.process = 0
            self._begin(c)

    def _begin(self, c: _Read) -> None:
        now = self.world.now
        if now >= self.deadline:
            self.open -= 1
            return
        c.process = self.load.next_process()
        self.load.events.append({"time": now, "process": c.process, "type": "invoke",
                                 "f": "read", "key": c.key, "value": None})
        self.load.counts["invoke"] += 1
        timeout = min(self.timeout_ns, max(100_000_000, self.deadline - now))
        self.pipe.start(c, {"op": "read", "key": c.key}, timeout)

    def _done(self, c: _Read, type_: str, reply: dict[str, Any] | None, node: str | None,
              error: str | None, t: int) -> None:
        event: dict[str, Any] = {"time": t, "process": c.process, "type": type_, "f": "read",
                                 "key": c.key,
                                 "value": (reply or {}).get("value") if type_ == "ok" else None}
        if node is not None:
            event["node"] = node
        if type_ != "ok" and error:
            event["error"] = error
        self.load.events.append(event)
        self.load.counts[type_] += 1
        if type_ == "ok":
            self.ok[c.key] = True
            self.open -= 1
        else:
            self.world.at(t + 100_000_000, self._begin, c)

    @property
    def done(self) -> bool:
        return self.open <= 0


class _Read(SimCall):
    __slots__ = ("key", "process")
    key: str
    process: int
