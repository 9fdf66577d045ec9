"""Talking to nodes: the pipelined operation engine the workers use, and status calls.

Wire format (docs/node-contract.md, "Client requests and replies"): a DEALER
sends one msgpack map per request and gets one map back, matched by ``id``.
The framing and the synchronous ``call`` live in nodes/common/wire.py (the
system under test owns its wire; the tester imports it), re-exported here.

``Pipeline`` runs many operations at once over ONE connection per node
(replies are matched to operations by request id), in one thread, with no
asyncio and no task per operation: a timer heap, a deadline heap and an
epoll. Its connections are harness/zmtp.py's DEALERs in plain sockets: the
requests queued during one pass of the loop leave in one ``send`` per node,
and the replies waiting are read with one ``recv``. What an operation does
after each reply or failed send is harness/retry_rules.py's (the simulated
clients follow the same rules). ``NodeClient`` is the small asyncio client
of ``status`` polls (libzmq).

Invariants:
- A request is re-sent only after a *definite* refusal (``definite: true``,
  e.g. ``not_leader``) or when it provably never left this process; after a
  timeout its outcome is unknown and it is never sent again, since a second
  copy could take effect later than the first and fake an anomaly.
- A request is queued only on a connection whose handshake completed (as
  ZMQ_IMMEDIATE): a node that is down makes ``send`` fail at once (definite)
  instead of queueing the request for delivery after a restart.
- Nothing queued waits: every ``step`` sends what is queued before it polls
  and again before it returns. Just before those sends it calls ``on_send(t)``
  with ``t`` read from the clock, so an owner can stamp the invocations of
  the requests about to leave: an invoke time is then at most one ``send``
  before its request leaves.
- Replies with an unknown ``id`` (to a request that already timed out, or
  garbled) are dropped; request ids are never reused by a Pipeline, so a late
  reply cannot complete a newer operation.
- Completion times are read right after the ``recv`` that brought the reply
  (or when the deadline passes), before any other work, so a latency is what
  the wire saw.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import select
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from harness import retry_rules as rules
from harness.zmtp import Connection
from nodes.common.wire import call, decode_reply, pack_request

unpackb = msgpack.unpackb

__all__ = ["Call", "NodeClient", "Pipeline", "call"]

_ids = itertools.count(1)

_IN, _OUT = select.EPOLLIN, select.EPOLLOUT


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
    """Operations to a cluster, many in flight, one connection per node; see the header.

    Not thread-safe: one thread calls ``start``, ``at`` and ``step``."""

    def __init__(self, addrs: dict[str, str], *, follow_leader: bool = True,
                 on_send: Callable[[int], None] | None = None) -> None:
        self.addrs = dict(addrs)
        self.nodes = list(addrs)
        self.follow_leader = follow_leader
        #: Called with the clock's time just before queued requests are sent.
        self.on_send = on_send
        self._epoll = select.epoll()
        self._conns: dict[str, Connection] = {}
        self._by_fd: dict[int, tuple[str, Connection]] = {}
        self._masks: dict[int, int] = {}
        self._queued: set[Connection] = set()  # connections with requests not yet sent
        self._spare: set[Connection] = set()  # empty; swapped in while _queued is sent
        now = time.monotonic_ns()
        for node, addr in self.addrs.items():
            conn = Connection(addr)
            conn.on_socket = self._socket_changed
            self._conns[node] = conn
            conn.service(now)
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
        """Wait until every connection completed its handshake (or ``timeout``)."""
        deadline = time.monotonic_ns() + int(timeout * 1e9)
        while not all(c.ready for c in self._conns.values()):
            left = deadline - time.monotonic_ns()
            if left <= 0:
                return False
            self._io(min(left, 5_000_000))
        return True

    def start(self, c: Call, body: dict[str, Any], timeout_ns: int,
              now: int | None = None) -> None:
        """Begin operation ``body`` on ``c`` (which has none in flight). Its request
        leaves at the next send (``step``)."""
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
        """Send what is queued, wait up to ``max_wait_ns`` for replies; handle replies,
        timers and deadlines; send what that queued."""
        now = time.monotonic_ns()
        self._fire(now)
        self._send_queued()
        wake = now + max_wait_ns
        if self._timers and self._timers[0][0] < wake:
            wake = self._timers[0][0]
        if self._deadlines and self._deadlines[0][0] < wake:
            wake = self._deadlines[0][0]
        self._io(wake - now)
        self._fire(time.monotonic_ns())
        self._send_queued()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.on_socket = None
            conn.close()
        self._conns.clear()
        self._epoll.close()

    # --- sockets ------------------------------------------------------------------

    def _socket_changed(self, conn: Connection, old_fd: int | None = None) -> None:
        if old_fd is not None:
            self._by_fd.pop(old_fd, None)
            if self._masks.pop(old_fd, None) is not None:
                self._epoll.unregister(old_fd)
            self._queued.discard(conn)
            return
        fd = conn.fileno()
        node = next(n for n, c in self._conns.items() if c is conn)
        self._by_fd[fd] = (node, conn)
        self._masks[fd] = _IN | _OUT
        self._epoll.register(fd, _IN | _OUT)

    def _watch(self, conn: Connection) -> None:
        """Watch for writability only while it is needed."""
        fd = conn.fileno()
        if fd < 0:
            return
        mask = _IN | _OUT if conn.want_write else _IN
        if self._masks.get(fd) != mask:
            self._masks[fd] = mask
            self._epoll.modify(fd, mask)

    def _send_queued(self) -> None:
        queued = self._queued
        if not queued:
            return
        # A flush that finds its socket gone drops the connection, which discards
        # it from the live set (_socket_changed): that set must not be this one,
        # so the two sets swap (no new set per pass).
        self._queued, self._spare = self._spare, queued
        if self.on_send is not None:
            self.on_send(time.monotonic_ns())
        for conn in queued:
            conn.flush()
            if conn.want_write:
                self._watch(conn)
        queued.clear()

    def _io(self, wait_ns: int) -> None:
        """Poll the connections for up to ``wait_ns``; read replies, finish handshakes."""
        now = time.monotonic_ns()
        for conn in self._conns.values():
            retry = conn.next_retry()
            if retry is not None:
                if retry <= now:
                    conn.service(now)
                else:
                    wait_ns = min(wait_ns, retry - now)
        timeout = max(0, -(-wait_ns // 1_000_000)) / 1000  # ceil ms, so never early
        try:
            events = self._epoll.poll(timeout)
        except InterruptedError:
            return
        if not events:
            return
        pending = self.pending
        monotonic_ns = time.monotonic_ns
        for fd, ev in events:
            entry = self._by_fd.get(fd)
            if entry is None:
                continue
            node, conn = entry
            if ev & _OUT:
                conn.on_writable(monotonic_ns())
                self._watch(conn)
            if ev & ~_OUT:
                frames = conn.read_frames()
                t = monotonic_ns()
                if conn.want_write:
                    self._watch(conn)
                if not frames:
                    continue
                for data in frames:
                    try:  # nodes/common/wire.py decode_reply, without its two calls
                        got = unpackb(data, raw=False, strict_map_key=False)
                    except (ValueError, TypeError, msgpack.UnpackException):
                        continue
                    # A batching node sends arrays of replies (zmtp.py, "Batches").
                    for reply in got if type(got) is list else (got,):
                        if type(reply) is not dict:
                            continue
                        c = pending.pop(reply.get("id"), None)  # type: ignore[arg-type]
                        if c is not None:
                            self._on_reply(c, node, reply, t)

    # --- the operation's life -------------------------------------------------

    def _fire(self, now: int) -> None:
        # Deadlines first: they complete at ``now``, and the timers' callbacks read the
        # clock again, so the completions they make come later in time too.
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, seq, c = heapq.heappop(deadlines)
            if c.seq == seq and self.pending.pop(c.rid, None) is c:
                self._finish(c, rules.INFO, None, c.node, "timeout", now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, fn, arg = heapq.heappop(timers)
            fn(arg)

    def _finish(self, c: Call, type_: str, reply: dict[str, Any] | None, node: str | None,
                error: str | None, t: int) -> None:
        c.seq = 0  # its deadline entry is void now
        c.done(c, type_, reply, node, error, t)

    def _attempt(self, c: Call, node: str, now: int) -> None:
        if c.deadline <= now:
            self._finish(c, rules.FAIL, c.last, c.last_node, rules.expired_error(c.last), now)
            return
        c.node = node
        c.rid = rid = next(self._rids)
        body = c.body
        body["id"] = rid
        c.frame = frame = self._pack(body)
        c.send_deadline = rules.send_deadline(now, c.deadline)
        conn = self._conns[node]
        if conn.send(frame):  # the common case, without _send's call
            self._queued.add(conn)
            self.pending[rid] = c
        else:
            self._unsent(c, now)

    def _send(self, c: Call, now: int) -> None:
        conn = self._conns[c.node]
        if conn.send(c.frame):
            self._queued.add(conn)
            self.pending[c.rid] = c
        else:
            self._unsent(c, now)

    def _unsent(self, c: Call, now: int) -> None:
        """The request could not be queued (no connection, or a full backlog)."""
        next_node, when = rules.after_unsent(now, c.send_deadline, c.deadline)
        if not next_node:
            self.at(when, self._resend, c)
            return
        c.last_node = c.node
        if when <= now:
            self._attempt(c, self._next_node[c.node], now)
        else:
            c.node = self._next_node[c.node]
            self.at(when, self._retry_at_node, c)

    def _resend(self, c: Call) -> None:
        self._send(c, time.monotonic_ns())

    def _retry_at_node(self, c: Call) -> None:
        self._attempt(c, c.node, time.monotonic_ns())

    def _retry_home(self, c: Call) -> None:
        self._attempt(c, c.home, time.monotonic_ns())

    def _on_reply(self, c: Call, node: str, reply: dict[str, Any], t: int) -> None:
        kind = rules.outcome(reply)
        if kind is rules.OK:
            c.seq = 0  # as _finish does
            c.done(c, kind, reply, node, None, t)
            return
        c.last, c.last_node = reply, node
        if kind is not rules.REFUSED:  # info: may take effect; fail: a real answer
            self._finish(c, kind, reply, node, reply.get("error"), t)
            return
        target, when = rules.after_refusal(reply, node, self.addrs, self.follow_leader, t,
                                           c.deadline)
        if target is not None:
            self._attempt(c, target, t)
        else:
            self.at(when, self._retry_home, c)


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

