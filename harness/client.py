"""Talking to nodes: the pipelined operation engine the workers use, and status calls.

Wire format (docs/node-contract.md, "Client requests and replies"): a DEALER
socket sends one msgpack map per request and gets one map back, matched by
``id``. The framing and the synchronous ``call`` live in nodes/common/wire.py
(the system under test owns its wire; the tester imports it), re-exported here.

``Pipeline`` runs many operations at once over ONE DEALER socket per node
(replies are matched to operations by request id), in one thread, with no
asyncio and no task per operation: a timer heap, a deadline heap and a
zmq poll. ``NodeClient`` is the small asyncio client of ``status`` polls.

Invariants:
- A request is re-sent only after a *definite* refusal (``definite: true``,
  e.g. ``not_leader``) or when it provably never left this process; after a
  timeout its outcome is unknown and it is never sent again, since a second
  copy could take effect later than the first and fake an anomaly.
- Sockets set ZMQ_IMMEDIATE, so a message is queued only on a completed
  connection: a node that is down makes ``send`` fail at once (definite)
  instead of queueing the request for delivery after a restart.
- Replies with an unknown ``id`` (to a request that already timed out, or
  garbled) are dropped; request ids are never reused by a Pipeline, so a late
  reply cannot complete a newer operation.
- Completion times are read right after the reply's ``recv`` (or when the
  deadline passes), before any other work, so a latency is what the wire saw.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from nodes.common.wire import call, decode_reply, pack_request

__all__ = ["Call", "NodeClient", "Pipeline", "call"]

_ids = itertools.count(1)

SEND_WAIT_NS = 250_000_000  # how long one node may refuse to take a request (down)
SEND_RETRY_NS = 10_000_000
REFUSED_PAUSE_NS = 50_000_000  # after a definite refusal without a usable leader hint


class Call:
    """One operation in a Pipeline: ``body`` (the request without ``id``), sent
    first to ``home``, ended by one call of ``done(call, type, reply, node,
    error, t_ns)`` with ``type`` ok, fail (certainly no effect) or info
    (unknown). Subclass it to carry state; the Pipeline sets the rest."""

    __slots__ = (
        "body",
        "deadline",
        "done",
        "frame",
        "home",
        "last",
        "last_node",
        "node",
        "rid",
        "send_deadline",
        "seq",
    )

    def __init__(self, home: str, done: Callable[..., None]) -> None:
        self.home = home
        self.done = done
        self.body: dict[str, Any] = {}
        self.deadline = 0
        self.node = home
        self.rid = 0
        self.last: dict[str, Any] | None = None
        self.last_node: str | None = None
        self.send_deadline = 0
        self.frame = b""
        self.seq = 0


class Pipeline:
    """Operations to a cluster, many in flight, one socket per node; see the header.

    Not thread-safe: one thread calls ``start``, ``at`` and ``step``."""

    def __init__(self, addrs: dict[str, str], *, ctx: zmq.Context | None = None,
                 follow_leader: bool = True) -> None:
        self.addrs = dict(addrs)
        self.nodes = list(addrs)
        self.follow_leader = follow_leader
        self._ctx = ctx or zmq.Context.instance()
        self._socks: dict[str, zmq.Socket] = {}
        self._node_of: dict[zmq.Socket, str] = {}
        self._poller = zmq.Poller()
        for node, addr in self.addrs.items():
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.setsockopt(zmq.RCVHWM, 100_000)
            sock.connect(addr)
            self._socks[node] = sock
            self._node_of[sock] = node
            self._poller.register(sock, zmq.POLLIN)
        self._next_node = {n: self.nodes[(i + 1) % len(self.nodes)]
                           for i, n in enumerate(self.nodes)}
        self._rids = itertools.count(1)
        self._seqs = itertools.count(1)
        self.pending: dict[int, Call] = {}
        self._timers: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._deadlines: list[tuple[int, int, Call]] = []
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack

    # --- public -----------------------------------------------------------------

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every socket has a completed connection (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        for sock in self._socks.values():
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLOUT):
                return False
        return True

    def start(self, c: Call, body: dict[str, Any], timeout_ns: int,
              now: int | None = None) -> None:
        """Begin operation ``body`` on ``c`` (which has none in flight)."""
        now = time.monotonic_ns() if now is None else now
        c.body = body
        c.deadline = now + timeout_ns
        c.last = c.last_node = None
        c.seq = seq = next(self._seqs)
        heapq.heappush(self._deadlines, (c.deadline, seq, c))
        self._attempt(c, c.home, now)

    def at(self, when_ns: int, fn: Callable[[Any], None], arg: Any) -> None:
        """Call ``fn(arg)`` from ``step`` once the monotonic clock reaches ``when_ns``."""
        heapq.heappush(self._timers, (when_ns, next(self._seqs), fn, arg))

    def idle(self) -> bool:
        """No operation in flight and no timer pending."""
        return not self.pending and not self._timers and not any(
            c.seq == s for _, s, c in self._deadlines)

    def step(self, max_wait_ns: int) -> None:
        """Wait up to ``max_wait_ns`` for replies; handle replies, timers, deadlines."""
        now = time.monotonic_ns()
        self._fire(now)
        wake = now + max_wait_ns
        if self._timers and self._timers[0][0] < wake:
            wake = self._timers[0][0]
        if self._deadlines and self._deadlines[0][0] < wake:
            wake = self._deadlines[0][0]
        wait_ms = max(0, -((now - wake) // 1_000_000))  # ceil, so a timer is never early
        ready = self._poller.poll(wait_ms)
        if ready:
            pending = self.pending
            monotonic_ns = time.monotonic_ns
            for sock, _ in ready:
                node = self._node_of[sock]
                while True:
                    try:
                        data = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    t = monotonic_ns()
                    reply = decode_reply(data)
                    if reply is None:
                        continue
                    c = pending.pop(reply.get("id"), None)  # type: ignore[arg-type]
                    if c is not None:
                        self._on_reply(c, node, reply, t)
        self._fire(time.monotonic_ns())

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close(linger=0)
        self._socks.clear()

    # --- the operation's life -------------------------------------------------

    def _fire(self, now: int) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, fn, arg = heapq.heappop(timers)
            fn(arg)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, seq, c = heapq.heappop(deadlines)
            if c.seq == seq and self.pending.pop(c.rid, None) is c:
                self._finish(c, "info", None, c.node, "timeout", now)

    def _finish(self, c: Call, type_: str, reply: dict[str, Any] | None, node: str | None,
                error: str | None, t: int) -> None:
        c.seq = 0  # its deadline entry is void now
        c.done(c, type_, reply, node, error, t)

    def _attempt(self, c: Call, node: str, now: int) -> None:
        left = c.deadline - now
        if left <= 0:
            last = c.last
            self._finish(c, "fail", last, c.last_node,
                         (last or {}).get("error", "unavailable"), now)
            return
        c.node = node
        c.rid = rid = next(self._rids)
        body = c.body
        body["id"] = rid
        c.frame = self._pack(body)
        c.send_deadline = now + min(left, SEND_WAIT_NS)
        self._send(c, now)

    def _send(self, c: Call, now: int) -> None:
        try:
            self._socks[c.node].send(c.frame, zmq.NOBLOCK)
        except zmq.Again:  # no completed connection (node down or still connecting)
            if now + SEND_RETRY_NS <= c.send_deadline:
                self.at(now + SEND_RETRY_NS, self._resend, c)
            else:  # never sent: try the next node
                c.last_node = c.node
                if c.deadline - now > SEND_RETRY_NS:
                    self._attempt(c, self._next_node[c.node], now)
                else:
                    c.node = self._next_node[c.node]
                    self.at(c.deadline, self._retry_at_node, c)
            return
        self.pending[c.rid] = c

    def _resend(self, c: Call) -> None:
        self._send(c, time.monotonic_ns())

    def _retry_at_node(self, c: Call) -> None:
        self._attempt(c, c.node, time.monotonic_ns())

    def _retry_home(self, c: Call) -> None:
        self._attempt(c, c.home, time.monotonic_ns())

    def _on_reply(self, c: Call, node: str, reply: dict[str, Any], t: int) -> None:
        if reply.get("ok"):
            self._finish(c, "ok", reply, node, None, t)
            return
        c.last, c.last_node = reply, node
        error = reply.get("error")
        if not reply.get("definite"):
            self._finish(c, "info", reply, node, error, t)
            return
        if error not in ("not_leader", "unavailable"):
            self._finish(c, "fail", reply, node, error, t)  # e.g. cas_mismatch: a real answer
            return
        hint = reply.get("leader")
        if self.follow_leader and hint in self.addrs and hint != node:
            self._attempt(c, hint, t)
        else:
            self.at(t + min(REFUSED_PAUSE_NS, max(0, c.deadline - t)), self._retry_home, c)


class NodeClient:
    """An asyncio client for ``status`` (the poller, the nemesis): one DEALER per
    node it has asked, one request at a time per socket, no retries. (``home`` and
    ``follow_leader`` are kept for callers; operations go through ``Pipeline``.)"""

    def __init__(
        self,
        addrs: dict[str, str],
        home: str,
        *,
        ctx: zmq.asyncio.Context | None = None,
        follow_leader: bool = True,
    ) -> None:
        self.addrs = addrs
        self.home = home
        self.follow_leader = follow_leader
        self._ctx = ctx or zmq.asyncio.Context.instance()
        self._socks: dict[str, zmq.asyncio.Socket] = {}
        self._closed = False

    def _sock(self, node: str) -> zmq.asyncio.Socket:
        sock = self._socks.get(node)
        if sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.connect(self.addrs[node])
            self._socks[node] = sock
        return sock

    async def connect_all(self) -> None:
        """Open sockets to every node now, so the first request need not wait."""
        for node in self.addrs:
            self._sock(node)

    async def send_once(
        self, node: str, req: dict, timeout: float, send_wait: float = 0.25
    ) -> dict | None | bool:
        """One attempt at ``node``: the reply, None on timeout, or False if the
        request could not be sent within ``send_wait`` (so it never left)."""
        sock = self._sock(node)
        now = time.monotonic()
        deadline = now + timeout
        send_deadline = now + min(timeout, send_wait)
        frame = pack_request(req)
        while True:
            try:
                await sock.send(frame, flags=zmq.NOBLOCK)
                break
            except zmq.Again:  # no completed connection (node down or still connecting)
                if time.monotonic() + 0.01 > send_deadline:
                    return False
                await asyncio.sleep(0.01)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not await sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            # Never a blocking recv: a run hung for minutes in one after poll
            # had reported the socket readable (a peer killed mid-request).
            try:
                frame_in = await sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                await asyncio.sleep(0.001)
                continue
            reply = decode_reply(frame_in)
            if reply is not None and reply.get("id") == req["id"]:
                return reply

    async def status(self, node: str, timeout: float) -> dict | None:
        """The ``status`` of ``node``, or None if it does not answer in time."""
        reply = await self.send_once(node, {"id": next(_ids), "op": "status"}, timeout)
        return reply if isinstance(reply, dict) else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for sock in self._socks.values():
                sock.close(linger=0)
            self._socks.clear()

