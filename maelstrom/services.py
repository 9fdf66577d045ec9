"""Maelstrom's services for one run: lin-kv, seq-kv, lww-kv and lin-tso (doc/services.md).

``python -m maelstrom.services --bind ADDR --cluster PATH --watch-pid PID [--watch-file LOG]``

Owns the services a Maelstrom node may send RPCs to, each with the
consistency it promises:

- ``lin-kv``: one map, every request applied in arrival order, so every
  operation takes effect at one instant between its request and reply
  (linearizable);
- ``seq-kv``: sequentially consistent: updates apply to the newest state;
  a read may observe any state between the newest one its client has already
  observed (or made) and the newest overall, and moves its client there, so
  each client's operations stay in one total order (stale reads happen);
- ``lww-kv``: five replicas that answer independently, each update stamped
  with its replica's slightly skewed clock, merged by last-write-wins every
  ``GOSSIP_S`` (reads may be stale, cas may act on a stale value, writes lost);
- ``lin-tso``: strictly increasing integers, ``{"type": "ts"}`` -> ``ts_ok``.

``read``, ``write`` and ``cas`` (with ``from``, ``to`` and optional
``create_if_not_exists``) answer as the lin-kv workload does: code 20 for a
missing key, 22 for a cas whose ``from`` does not match; an unknown type is
10, a request without its fields 12.

One process per run, started by the first adapter that needs it
(maelstrom/host.py ``ensure_services``) and reached by every adapter directly,
never through the network proxy, so faults do not touch it (as in Maelstrom).
It is in no node's process tree: killing a node does not lose the services'
state. It ends when the harness process ``--watch-pid`` ends or no longer
holds ``--watch-file`` (a node log, which the harness closes when it ends the
cluster), checked twice a second, so no run leaves it behind.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import random
import signal
import sys
import time
from typing import Any

import psutil
import zmq

from maelstrom.protocol import dumps, error_body, loads

GOSSIP_S = 0.2
LWW_REPLICAS = 5
#: Versions of one key seq-kv keeps for stale reads.
SEQ_HISTORY = 32
_MISSING = object()


def _hkey(key: Any) -> Any:
    """A dict key for a JSON key of any type (lists and maps by their JSON text)."""
    return key if key is None or isinstance(key, (str, int, float, bool)) else dumps(key)


class KV:
    """The request handling shared by the three stores; subclasses say where a key's
    value is read and written."""

    def handle(self, src: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        mid = body.get("msg_id")
        if kind not in ("read", "write", "cas"):
            return error_body(10, f"{kind!r} is not supported (read, write, cas)", mid)
        need = {"read": ("key",), "write": ("key", "value"), "cas": ("key", "from", "to")}[kind]
        missing = [f for f in need if f not in body]
        if missing:
            return error_body(12, f"{kind} needs {', '.join(missing)}", mid)
        key = _hkey(body["key"])
        if kind == "read":
            value = self.read(src, key)
            if value is _MISSING:
                return error_body(20, "key does not exist", mid)
            return {"type": "read_ok", "value": value, "in_reply_to": mid}
        if kind == "write":
            self.write(src, key, body["value"])
            return {"type": "write_ok", "in_reply_to": mid}
        current = self.current(src, key)
        if current is _MISSING:
            if not body.get("create_if_not_exists"):
                return error_body(20, "key does not exist", mid)
        elif current != body["from"]:
            return error_body(22, f"expected {body['from']!r}, but had {current!r}", mid)
        self.write(src, key, body["to"])
        return {"type": "cas_ok", "in_reply_to": mid}

    def read(self, src: str, key: Any) -> Any:
        raise NotImplementedError

    def current(self, src: str, key: Any) -> Any:
        """The value a cas compares against."""
        raise NotImplementedError

    def write(self, src: str, key: Any, value: Any) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Called every GOSSIP_S."""


class LinKV(KV):
    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}

    def read(self, src: str, key: Any) -> Any:
        return self.data.get(key, _MISSING)

    current = read

    def write(self, src: str, key: Any, value: Any) -> None:
        self.data[key] = value


class SeqKV(KV):
    """See the module header. ``version`` numbers every update; ``pos`` is the newest
    version each client has observed or made."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.version = 0
        self.versions: dict[Any, list[int]] = {}
        self.values: dict[Any, list[Any]] = {}
        self.pos: dict[str, int] = {}

    def read(self, src: str, key: Any) -> Any:
        lo, hi = self.pos.get(src, 0), self.version
        at = hi if self.rng.random() < 0.5 else self.rng.randint(lo, hi)
        vers = self.versions.get(key)
        if vers and at < vers[0] and len(vers) >= SEQ_HISTORY:
            at = vers[0]  # older states of this key are forgotten: read the oldest kept
        self.pos[src] = at
        if not vers:
            return _MISSING
        i = bisect.bisect_right(vers, at) - 1
        return self.values[key][i] if i >= 0 else _MISSING

    def current(self, src: str, key: Any) -> Any:
        self.pos[src] = self.version
        vals = self.values.get(key)
        return vals[-1] if vals else _MISSING

    def write(self, src: str, key: Any, value: Any) -> None:
        self.version += 1
        vers = self.versions.setdefault(key, [])
        vals = self.values.setdefault(key, [])
        vers.append(self.version)
        vals.append(value)
        if len(vers) > SEQ_HISTORY:
            del vers[0], vals[0]
        self.pos[src] = self.version


class LwwKV(KV):
    """See the module header: each request goes to one replica at random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.replicas: list[dict[Any, tuple[int, Any]]] = [{} for _ in range(LWW_REPLICAS)]
        self.skew = [rng.randint(-5_000_000, 5_000_000) for _ in range(LWW_REPLICAS)]
        self.at = 0

    def _pick(self) -> int:
        self.at = self.rng.randrange(LWW_REPLICAS)
        return self.at

    def read(self, src: str, key: Any) -> Any:
        entry = self.replicas[self._pick()].get(key)
        return _MISSING if entry is None else entry[1]

    current = read  # the cas then writes to the same replica (self.at)

    def write(self, src: str, key: Any, value: Any) -> None:
        self.replicas[self.at][key] = (time.monotonic_ns() + self.skew[self.at], value)

    def handle(self, src: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") == "write":
            self._pick()
        return super().handle(src, body)

    def tick(self) -> None:
        merged: dict[Any, tuple[int, Any]] = {}
        for rep in self.replicas:
            for key, entry in rep.items():
                old = merged.get(key)
                if old is None or entry[0] > old[0]:
                    merged[key] = entry
        for rep in self.replicas:
            rep.update(merged)


class Services:
    """Every service of one run: ``handle(line) -> reply line or None``."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.kv: dict[str, KV] = {"lin-kv": LinKV(), "seq-kv": SeqKV(rng), "lww-kv": LwwKV(rng)}
        self.ts = 0

    def handle(self, line: bytes) -> bytes | None:
        try:
            msg = loads(line)
        except ValueError:
            return None
        if not isinstance(msg, dict) or not isinstance(msg.get("body"), dict):
            return None
        src, dest, body = msg.get("src"), msg.get("dest"), msg["body"]
        if not isinstance(src, str):
            return None
        if body.get("type") == "ping":
            reply = {"type": "pong", "in_reply_to": body.get("msg_id")}
        elif dest == "lin-tso":
            if body.get("type") == "ts":
                self.ts += 1
                reply = {"type": "ts_ok", "ts": self.ts, "in_reply_to": body.get("msg_id")}
            else:
                reply = error_body(10, "lin-tso serves only ts", body.get("msg_id"))
        elif dest in self.kv:
            reply = self.kv[dest].handle(src, body)
        else:
            reply = error_body(1, f"no service {dest!r}", body.get("msg_id"))
        return dumps({"src": dest, "dest": src, "body": reply})

    def tick(self) -> None:
        for kv in self.kv.values():
            kv.tick()


def ping(addr: str, timeout: float) -> bool:
    """Whether a services process answers at ``addr`` within ``timeout`` seconds."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    try:
        sock.connect(addr)
        if not sock.poll(int(timeout * 1000), zmq.POLLOUT):
            return False
        sock.send(dumps({"src": "ping", "dest": "lin-kv", "body": {"type": "ping", "msg_id": 1}}))
        return bool(sock.poll(int(timeout * 1000), zmq.POLLIN))
    finally:
        sock.close(linger=0)


def _holds(pid: int, path: str) -> bool:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return True
    except OSError:
        return False
    return False


def serve(addr: str, watch_pid: int, watch_file: str | None, seed: int) -> int:
    try:
        harness = psutil.Process(watch_pid)
        born = harness.create_time()
    except psutil.Error:
        return 0  # the harness is already gone
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    try:
        sock.bind(addr)
    except zmq.ZMQError as exc:
        print(f"maelstrom services: cannot bind {addr}: {exc}", file=sys.stderr)
        ctx.destroy(linger=0)
        return 2
    services = Services(seed)
    next_tick = next_watch = time.monotonic()
    try:
        while True:
            if sock.poll(50):
                for _ in range(1024):
                    try:
                        rid, line = sock.recv_multipart(zmq.NOBLOCK)[-2:]
                    except (zmq.Again, ValueError):
                        break
                    reply = services.handle(line)
                    if reply is not None:
                        with contextlib.suppress(zmq.Again):
                            sock.send_multipart([rid, reply], zmq.NOBLOCK)
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + GOSSIP_S
                services.tick()
            if now >= next_watch:
                next_watch = now + 0.5
                try:
                    alive = harness.is_running() and harness.create_time() == born
                except psutil.Error:
                    alive = False
                if not alive or (watch_file and not _holds(watch_pid, watch_file)):
                    return 0
    finally:
        ctx.destroy(linger=0)
        if addr.startswith("ipc://") and addr.endswith(".sock"):  # and the adapters' lock
            for path in (addr[len("ipc://"):], addr[len("ipc://"):-len(".sock")] + ".lock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m maelstrom.services")
    ap.add_argument("--bind", required=True)
    ap.add_argument("--cluster", required=True, help="the run's cluster.json (names the run)")
    ap.add_argument("--watch-pid", type=int, required=True)
    ap.add_argument("--watch-file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    # SIGTERM (the harness ending the cluster's process trees) still cleans up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return serve(args.bind, args.watch_pid, args.watch_file, args.seed)


if __name__ == "__main__":
    sys.exit(main())
