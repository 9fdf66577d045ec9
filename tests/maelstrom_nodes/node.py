"""A small Maelstrom node runtime for the test nodes (doc/protocol.md): one thread,
stdin JSON lines in, stdout JSON lines out, stderr for logs, timers.

Used only by the nodes in this folder, which the harness runs as real processes
(``--system maelstrom:'python3 tests/maelstrom_nodes/NAME.py'``). It follows the
protocol to the letter: it answers ``init`` with ``init_ok``, numbers its own
messages (``msg_id``) and answers requests with ``in_reply_to``; an unknown
request type gets error 10 (not-supported).
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import select
import sys
import time
from collections.abc import Callable
from typing import Any

Body = dict[str, Any]


class Node:
    def __init__(self) -> None:
        self.id = ""
        self.ids: list[str] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.callbacks: dict[int, Callable[[Body], None]] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.on_init: Callable[[], None] | None = None
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._out: list[str] = []

    @property
    def peers(self) -> list[str]:
        return [n for n in self.ids if n != self.id]

    def log(self, text: str) -> None:
        print(f"{self.id or '?'} {text}", file=sys.stderr, flush=True)

    def on(self, kind: str, fn: Callable[[dict[str, Any]], None]) -> None:
        self.handlers[kind] = fn

    def send(self, dest: str, body: Body) -> None:
        self._out.append(json.dumps({"src": self.id, "dest": dest, "body": body}))

    def reply(self, msg: dict[str, Any], body: Body) -> None:
        body = dict(body)
        body["in_reply_to"] = msg["body"].get("msg_id")
        body["msg_id"] = next(self._ids)
        self.send(msg["src"], body)

    def error(self, msg: dict[str, Any], code: int, text: str) -> None:
        self.reply(msg, {"type": "error", "code": code, "text": text})

    def rpc(self, dest: str, body: Body, cb: Callable[[Body], None]) -> int:
        mid = next(self._ids)
        self.callbacks[mid] = cb
        self.send(dest, {**body, "msg_id": mid})
        return mid

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + seconds, next(self._seq), fn))

    def every(self, seconds: float, fn: Callable[[], None]) -> None:
        def tick() -> None:
            fn()
            self.after(seconds, tick)
        self.after(seconds, tick)

    def _handle(self, msg: dict[str, Any]) -> None:
        body = msg.get("body") or {}
        kind = body.get("type")
        irt = body.get("in_reply_to")
        if irt is not None and irt in self.callbacks:
            self.callbacks.pop(irt)(body)
            return
        if kind == "init":
            self.id = body["node_id"]
            self.ids = list(body["node_ids"])
            self.reply(msg, {"type": "init_ok"})
            if self.on_init:
                self.on_init()
            return
        fn = self.handlers.get(kind)
        if fn is not None:
            fn(msg)
        elif irt is None and "msg_id" in body:
            self.error(msg, 10, f"unsupported type {kind!r}")

    def run(self) -> None:
        fd = sys.stdin.fileno()
        buf = b""
        while True:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            self._flush()
            wait = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else 1.0
            if not select.select([fd], [], [], min(wait, 1.0))[0]:
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                self._flush()
                return
            lines = (buf + data).split(b"\n")
            buf = lines.pop()
            for line in lines:
                if line.strip():
                    self._handle(json.loads(line))
            self._flush()

    def _flush(self) -> None:
        if self._out:
            sys.stdout.write("\n".join(self._out) + "\n")
            sys.stdout.flush()
            self._out.clear()


def flag(name: str) -> bool:
    """``--NAME`` on the command line (the buggy variants)."""
    return f"--{name}" in sys.argv[1:]


class Cell:
    """This node's own value in the lin-kv service (so it survives a kill of every
    node): updates are batched and written by one cas at a time; ``done`` callbacks
    run once their update is stored. ``combine(old, batch) -> new``."""

    def __init__(self, node: Node, key: str, empty: Any,
                 combine: Callable[[Any, list[Any]], Any]) -> None:
        self.node, self.key, self.empty, self.combine = node, key, empty, combine
        self.value: Any = None  # unknown until loaded
        self.pending: list[Any] = []
        self.waiters: list[Callable[[], None]] = []
        self.busy = False

    def load(self, then: Callable[[Any], None]) -> None:
        def got(body: Body) -> None:
            self.value = body["value"] if body.get("type") == "read_ok" else self.empty
            then(self.value)
            self._flush()
        self.node.rpc("lin-kv", {"type": "read", "key": self.key}, got)

    def update(self, delta: Any, done: Callable[[], None]) -> None:
        self.pending.append(delta)
        self.waiters.append(done)
        self._flush()

    def _flush(self) -> None:
        if self.busy or self.value is None or not self.pending:
            return
        batch, waiters = self.pending, self.waiters
        self.pending, self.waiters = [], []
        new = self.combine(self.value, batch)
        self.busy = True

        def stored(body: Body) -> None:
            self.busy = False
            if body.get("type") == "cas_ok":
                self.value = new
                for w in waiters:
                    w()
                self._flush()
                return
            self.pending[:0], self.waiters[:0] = batch, waiters  # try again on what is there
            self.value = None
            self.load(lambda _v: None)

        self.node.rpc("lin-kv", {"type": "cas", "key": self.key, "from": self.value, "to": new,
                                 "create_if_not_exists": True}, stored)
