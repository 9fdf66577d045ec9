"""Talking to nodes: one-shot requests and the asyncio client the workers use.

Wire format (docs/node-contract.md, "Client requests and replies"): a DEALER
socket sends one msgpack map per request and gets one map back, matched by
``id``. The framing and the synchronous ``call`` live in nodes/common/wire.py
(the system under test owns its wire; the tester imports it), re-exported here.

Invariants:
- A request is re-sent only after a *definite* refusal (``definite: true``,
  e.g. ``not_leader``) or when it provably never left this process; after a
  timeout its outcome is unknown and it is never sent again, since a second
  copy could take effect later than the first and fake an anomaly.
- Sockets set ZMQ_IMMEDIATE, so a message is queued only on a completed
  connection: a node that is down makes ``send`` fail at once (definite)
  instead of queueing the request for delivery after a restart.
- Replies with a stale ``id`` (to a request that already timed out) are dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

import zmq
import zmq.asyncio

from nodes.common.wire import call, decode_reply, pack_request

__all__ = ["NodeClient", "Outcome", "call"]

_ids = itertools.count(1)


@dataclass(slots=True)
class Outcome:
    """How one client operation ended.

    ``type`` is the history completion type: ``ok``, ``fail`` (certainly no
    effect) or ``info`` (unknown). ``reply`` is the last reply (None after a
    timeout); ``node`` the node that gave it.
    """

    type: str
    reply: dict | None
    node: str | None
    error: str | None = None


class NodeClient:
    """An asyncio client bound to one home node that follows leader hints.

    Keeps one DEALER socket per node it has talked to. ``request`` sends to the
    home node; a definite refusal that names a leader is retried there, other
    definite refusals are retried after a short pause, all within the timeout.
    """

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

    async def request(self, req: dict, timeout: float) -> Outcome:
        """Run one operation (``req`` without ``id``) to an ok/fail/info outcome."""
        deadline = time.monotonic() + timeout
        node = self.home
        last: dict | None = None
        last_node: str | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Outcome("fail", last, last_node, (last or {}).get("error", "unavailable"))
            attempt = dict(req, id=next(_ids))
            reply = await self.send_once(node, attempt, left)
            if reply is False:  # never sent (node down): try the next node
                last_node, node = node, self._next(node)
                continue
            if reply is None:
                return Outcome("info", None, node, "timeout")
            if reply.get("ok"):
                return Outcome("ok", reply, node)
            last, last_node = reply, node
            if not reply.get("definite"):
                return Outcome("info", reply, node, reply.get("error"))
            error = reply.get("error")
            if error not in ("not_leader", "unavailable"):
                return Outcome("fail", reply, node, error)  # e.g. cas_mismatch: a real answer
            hint = reply.get("leader")
            if self.follow_leader and hint in self.addrs and hint != node:
                node = hint
            else:
                node = self.home
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _next(self, node: str) -> str:
        ids = list(self.addrs)
        return ids[(ids.index(node) + 1) % len(ids)]

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

