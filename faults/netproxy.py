"""The network proxy: every peer message between nodes passes through here.

``python -m faults.netproxy --cluster PATH [--journal FILE] [--seed N] [--t0-ns NS]``

Owns the message-level network of a ``--net proxy`` run (docs/faults.md):

- one ROUTER per destination bound at ``proxy.listen[dest]``; every node's
  DEALER for ``dest`` connects there, so the ROUTER's routing id names the
  source node;
- one DEALER per (src, dest), routing id = src, connected to
  ``nodes[dest].peer_bind``: the destination sees the same routing id it
  would see without the proxy, so nodes cannot tell the modes apart;
- those ROUTERs and DEALERs are nodes/common/zmtp.py's (ZMTP on plain
  sockets in the proxy's one poll, as the nodes' own), not libzmq's: a
  message does not cross an I/O thread twice on its way through, and the
  messages of one pass to one destination leave in one ``send``;
- the grudge (``dest`` cannot hear from ``src``) and link faults (loss,
  delay fixed/uniform/exponential, duplication, reordering; per link or for
  all) applied to each message;
- a control ROUTER at ``proxy.control``: msgpack request/reply (see
  ``Proxy._control_ops``); a malformed request gets ``{"ok": false,
  "error": ...}``, never a crash;
- counters per link, and a message journal (JSON lines: time, src, dest,
  type, result) only when ``--journal`` is given.

Invariants:
- The message loop is one thread polling all sockets. It takes what each
  ready socket brought and does nothing per message beyond a lookup, two
  attribute reads, a counter increment and a queued send unless a fault or
  the journal is on for that link; the queued sends leave at the end of the
  pass. No logging in the loop.
- A message that cannot be sent at once (destination down or its queue full)
  is dropped and counted: the proxy never blocks and never hoards a burst
  of stale messages for a node that comes back (ZMQ_IMMEDIATE).
- Delayed messages stay in flight across a heal: healing changes what
  happens to new messages, like a real network.
- The proxy exits on SIGTERM (clean, exit 0) and when its parent dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import heapq
import json
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import msgpack
import zmq

from nodes.common.clusterfile import ConfigError, load_cluster
from nodes.common.zmtp import POLLOUT, Dealer, Router

#: Control requests taken per pass.
BATCH = 256
#: Longest poll wait, so SIGTERM and parent death are noticed quickly.
IDLE_POLL_MS = 100
SERVICE_NS = 10_000_000  # how often the DEALERs are looked after (reconnects)
#: Bytes queued on one link (a paused destination) past which it drops, as libzmq's
#: default high-water mark of 1000 messages did: a node that resumes gets no
#: bigger burst of stale messages than it did.
MAX_LINK_BACKLOG = 1 << 20
DELAY_DISTS = ("fixed", "uniform", "exponential")


class ProxyConfigError(Exception):
    """cluster.json cannot drive a proxy; the message is one line."""


class RequestError(Exception):
    """A control request is malformed; the message goes back to the caller."""


@dataclass(frozen=True)
class LinkFaults:
    """What happens to each message on a link. All probabilities in [0, 1].

    Delay: ``fixed`` waits ``delay_ms``; ``uniform`` waits uniformly between
    ``delay_ms`` and ``delay_max_ms``; ``exponential`` waits with mean
    ``delay_ms``. ``reorder`` holds a message back an extra uniform
    0..``reorder_ms`` so later ones overtake it; ``duplicate`` sends a second
    copy with its own delay.
    """

    loss: float = 0.0
    delay_ms: float = 0.0
    delay_dist: str = "fixed"
    delay_max_ms: float | None = None
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_ms: float = 50.0

    @classmethod
    def from_dict(cls, raw: Any) -> LinkFaults:
        if not isinstance(raw, dict):
            raise RequestError("faults must be a map")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown:
            raise RequestError(f"unknown fault field(s): {', '.join(unknown)}")
        for name in ("loss", "duplicate", "reorder"):
            v = raw.get(name, 0.0)
            if not _is_number(v) or not 0.0 <= v <= 1.0:
                raise RequestError(f"{name} must be a probability in [0, 1], not {v!r}")
        for name in ("delay_ms", "reorder_ms"):
            v = raw.get(name, 0.0)
            if not _is_number(v) or v < 0:
                raise RequestError(f"{name} must be a number >= 0, not {v!r}")
        dist = raw.get("delay_dist", "fixed")
        if dist not in DELAY_DISTS:
            raise RequestError(f"delay_dist must be one of {', '.join(DELAY_DISTS)}, not {dist!r}")
        vmax = raw.get("delay_max_ms")
        if vmax is not None and (not _is_number(vmax) or vmax < raw.get("delay_ms", 0.0)):
            raise RequestError(f"delay_max_ms must be a number >= delay_ms, not {vmax!r}")
        return cls(**{k: (float(v) if _is_number(v) else v) for k, v in raw.items()})

    def is_noop(self) -> bool:
        return self.loss == 0 and self.delay_ms == 0 and self.duplicate == 0 and self.reorder == 0

    def delay_s(self, rng: random.Random) -> float:
        """One sampled delay in seconds (reordering hold-back included)."""
        ms = self.delay_ms
        if self.delay_dist == "uniform":
            hi = self.delay_max_ms if self.delay_max_ms is not None else 2 * ms
            ms = rng.uniform(ms, hi)
        elif self.delay_dist == "exponential" and ms > 0:
            ms = rng.expovariate(1.0 / ms)
        if self.reorder and rng.random() < self.reorder:
            ms += rng.uniform(0.0, self.reorder_ms)
        return ms / 1000.0


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Link:
    """One directed link src -> dest: its outgoing socket, faults, counters."""

    __slots__ = (
        "cut",
        "deaf",
        "delayed",
        "delivered",
        "dest",
        "dropped",
        "duplicated",
        "faults",
        "sock",
        "src",
    )

    def __init__(self, src: str, dest: str, sock: Dealer) -> None:
        self.src = src
        self.dest = dest
        self.sock = sock
        self.deaf = False  # dest cannot hear src (the grudge)
        self.faults: LinkFaults | None = None  # None: forward as is
        self.delivered = 0
        self.dropped = 0  # every drop: grudge, loss, or a full socket
        self.cut = 0  # drops by the grudge alone: the evidence of a partition
        self.duplicated = 0
        self.delayed = 0

    def counters(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "dropped": self.dropped,
            "cut": self.cut,
            "duplicated": self.duplicated,
            "delayed": self.delayed,
        }


@dataclass(frozen=True)
class ProxySpec:
    """What the proxy needs from cluster.json."""

    control: str
    listen: dict[str, str]  # dest -> address the proxy binds for it
    peer_bind: dict[str, str]  # dest -> the node's own peer address
    t0_ns: int | None = None

    @classmethod
    def load(cls, path: Path) -> ProxySpec:
        """The proxy's part of a valid cluster.json (read by nodes.common.clusterfile)."""
        try:
            cluster = load_cluster(path)
        except ConfigError as exc:
            raise ProxyConfigError(str(exc)) from None
        proxy = cluster.proxy
        if proxy is None or proxy.control is None:
            raise ProxyConfigError(f"{path}: no proxy.control address (is this a --net proxy run?)")
        for nid in cluster.nodes:
            if nid not in proxy.listen:
                raise ProxyConfigError(f"{path}: proxy.listen has no address for node {nid}")
        return cls(
            control=proxy.control,
            listen={nid: proxy.listen[nid] for nid in cluster.nodes},
            peer_bind={nid: node.peer_bind for nid, node in cluster.nodes.items()},
            t0_ns=proxy.t0_ns,
        )


class Proxy:
    """The proxy's sockets, state and loop. ``run()`` returns on ``stop()``."""

    def __init__(
        self,
        spec: ProxySpec,
        *,
        journal: IO[str] | None = None,
        seed: int | None = None,
        t0_ns: int | None = None,
        ctx: zmq.Context | None = None,
    ) -> None:
        self.spec = spec
        self.node_ids = list(spec.peer_bind)
        self.rng = random.Random(seed)
        self.journal = journal
        self.t0_ns = t0_ns if t0_ns is not None else (spec.t0_ns or time.monotonic_ns())
        self.ctx = ctx or zmq.Context.instance()
        self.running = True
        self.unknown_src = 0
        self.default_faults: LinkFaults | None = None
        self.link_faults: dict[tuple[str, str], LinkFaults] = {}
        self.grudge: dict[str, set[str]] = {}
        self._pending: list[tuple[float, int, Link, bytes]] = []  # delay heap
        self._seq = 0
        self._journal_buf: list[str] = []
        self._sockets: list[zmq.Socket] = []
        self._routers: list[Router] = []
        self._dirty: set[Link] = set()  # links with messages queued in this pass

        try:
            self.control = self._socket(zmq.ROUTER)
            self.control.bind(spec.control)
            # routes[dest][src routing id] -> Link
            self.routes: dict[str, dict[bytes, Link]] = {}
            self.listeners: dict[Router, str] = {}
            self.links: dict[tuple[str, str], Link] = {}
            for dest in self.node_ids:
                # A restarted node takes its routing id back (handover).
                router = Router(spec.listen[dest], {}, identities=True)
                self._routers.append(router)
                self.listeners[router] = dest
                table: dict[bytes, Link] = {}
                for src in self.node_ids:
                    if src == dest:
                        continue
                    # A send before its handshake completed, or past its backlog,
                    # fails at once (as ZMQ_IMMEDIATE): dropped and counted.
                    out = Dealer(spec.peer_bind[dest], identity=src.encode(),
                                 max_queued=MAX_LINK_BACKLOG)
                    out.service(time.monotonic_ns())
                    link = Link(src, dest, out)
                    table[src.encode()] = link
                    self.links[(src, dest)] = link
                self.routes[dest] = table
        except BaseException:
            self.close()
            raise

    def _socket(self, kind: int) -> zmq.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        self._sockets.append(s)
        return s

    def _poll_items(self) -> tuple[list[tuple[Any, int]], dict[Any, Any]]:
        """What to poll, and each item's handler (rebuilt when a socket changed)."""
        items: list[tuple[Any, int]] = [(self.control, zmq.POLLIN)]
        handlers: dict[Any, Any] = {self.control: lambda _fd, _ev: self._serve_control()}
        for router in self.listeners:
            items += router.poll_items
            for fd, _ in router.poll_items:
                handlers[fd] = router.event
        for link in self.links.values():
            d = link.sock
            fd = d.fileno()
            if fd >= 0:
                items.append((fd, zmq.POLLIN | zmq.POLLOUT if d.want_write else zmq.POLLIN))
                handlers[fd] = lambda _fd, ev, d=d: self._dealer_event(d, ev)
        return items, handlers

    @staticmethod
    def _dealer_event(d: Dealer, ev: int) -> None:
        if ev & POLLOUT:
            d.on_writable(time.monotonic_ns())
        if ev & ~POLLOUT and d.sock is not None:
            d.read_frames()  # a node sends nothing back on these; this sees it close

    # --- the message loop -------------------------------------------------------

    def stop(self) -> None:
        self.running = False

    def run(self, parent_pid: int | None = None) -> None:
        next_parent_check = time.monotonic() + 0.5
        zmq_poll = zmq.zmq_poll
        listeners = list(self.listeners.items())
        dealers = [link.sock for link in self.links.values()]
        key: tuple[int, ...] = ()
        items: list[tuple[Any, int]] = []
        handlers: dict[Any, Any] = {}
        next_service = 0
        while self.running:
            now_key = (*[r.version for r, _ in listeners], *[d.version for d in dealers])
            if now_key != key:
                key = now_key
                items, handlers = self._poll_items()
            timeout = IDLE_POLL_MS
            if self._pending:
                wait_ms = (self._pending[0][0] - time.monotonic()) * 1000.0
                timeout = max(0, min(timeout, int(wait_ms) + 1))
            retries = [t for d in dealers if (t := d.next_retry()) is not None]
            if retries:
                wait_ms = (min(retries) - time.monotonic_ns()) / 1e6
                timeout = max(0, min(timeout, int(wait_ms) + 1))
            for sock, ev in zmq_poll(items, timeout):
                handler = handlers.get(sock)
                if handler is not None:
                    handler(sock, ev)
            for router, dest in listeners:
                got = router.take()
                if got:
                    self._pump(got, dest)
            if self._pending:
                self._release_due()
            if self._dirty:
                for link in self._dirty:
                    link.sock.flush()
                self._dirty.clear()
            now_ns = time.monotonic_ns()
            if retries or now_ns >= next_service:
                next_service = now_ns + SERVICE_NS
                for d in dealers:
                    d.service(now_ns)  # reconnects
            if self._journal_buf:
                self._flush_journal()
            if parent_pid is not None:
                now = time.monotonic()
                if now >= next_parent_check:
                    next_parent_check = now + 0.5
                    if os.getppid() != parent_pid:
                        self.running = False

    def _pump(self, got: list[tuple[bytes, bytes | None]], dest: str) -> None:
        """The messages to ``dest`` that one pass read: (routing id = src, frame)."""
        table = self.routes[dest]
        journal = self.journal is not None
        for src, frame in got:
            link = table.get(src)
            if link is None or frame is None:  # a stranger, or not one frame: not a node's
                self.unknown_src += 1
                continue
            body = frame
            if link.deaf:
                link.dropped += 1
                link.cut += 1
                if journal:
                    self._journal(link, body, "dropped")
            elif link.faults is None:
                self._send(link, body, journal)
            else:
                self._faulty(link, body, journal)

    def _send(self, link: Link, body: bytes, journal: bool, dup: bool = False) -> None:
        if link.sock.send(body):
            self._dirty.add(link)  # flushed at the end of the pass
        else:  # the destination is down or its backlog is full
            link.dropped += 1
            if journal:
                self._journal(link, body, "dropped", unreachable=True)
            return
        link.delivered += 1
        if journal:
            self._journal(link, body, "delivered", dup=dup)

    def _faulty(self, link: Link, body: bytes, journal: bool) -> None:
        faults = link.faults
        assert faults is not None
        rng = self.rng
        if faults.loss and rng.random() < faults.loss:
            link.dropped += 1
            if journal:
                self._journal(link, body, "dropped")
            return
        copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
        if copies == 2:
            link.duplicated += 1
        for i in range(copies):
            delay = faults.delay_s(rng)
            if delay <= 0:
                self._send(link, body, journal, dup=i > 0)
            else:
                link.delayed += 1
                self._seq += 1
                due = time.monotonic() + delay
                # a negative sequence number marks the duplicate copy
                heapq.heappush(self._pending, (due, self._seq if i == 0 else -self._seq, link, body))

    def _release_due(self) -> None:
        now = time.monotonic()
        pending = self._pending
        journal = self.journal is not None
        while pending and pending[0][0] <= now:
            _, seq, link, body = heapq.heappop(pending)
            # a grudge set while the message was in flight still cuts it
            if link.deaf:
                link.dropped += 1
                link.cut += 1
                if journal:
                    self._journal(link, body, "dropped")
            else:
                self._send(link, body, journal, dup=seq < 0)

    # --- journal -------------------------------------------------------------------

    def _journal(self, link: Link, body: bytes, result: str, **extra: bool) -> None:
        kind: Any = None
        try:
            msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
            if isinstance(msg, dict):
                kind = msg.get("type")
        except (ValueError, TypeError, msgpack.UnpackException):  # still journaled
            kind = None
        rec: dict[str, Any] = {
            "time": time.monotonic_ns() - self.t0_ns,
            "src": link.src,
            "dest": link.dest,
            "type": kind if isinstance(kind, (str, int)) else None,
            "result": result,
        }
        for k, v in extra.items():
            if v:
                rec[k] = True
        self._journal_buf.append(json.dumps(rec, separators=(",", ":")))

    def _flush_journal(self) -> None:
        assert self.journal is not None
        self.journal.write("\n".join(self._journal_buf) + "\n")
        self.journal.flush()
        self._journal_buf.clear()

    # --- control -------------------------------------------------------------------

    def _serve_control(self) -> None:
        for _ in range(BATCH):
            try:
                frames = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue  # no envelope: nobody to answer
            try:
                reply = self.handle(msgpack.unpackb(frames[-1], raw=False))
            except RequestError as exc:
                reply = {"ok": False, "error": str(exc)}
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                reply = {"ok": False, "error": f"malformed request: {exc}"}
            except Exception as exc:  # noqa: BLE001 -- a bad request must never stop the traffic
                reply = {"ok": False, "error": f"bad request: {type(exc).__name__}: {exc}"}
            try:
                self.control.send_multipart(frames[:-1] + [msgpack.packb(reply)], zmq.NOBLOCK)
            except zmq.Again:
                pass  # the asker is gone

    def handle(self, req: Any) -> dict[str, Any]:
        """Answer one control request (a decoded msgpack map)."""
        if not isinstance(req, dict):
            raise RequestError("a request must be a map with an 'op'")
        op = req.get("op")
        fn = self._control_ops().get(op) if isinstance(op, str) else None
        if fn is None:
            raise RequestError(f"unknown op {op!r} (ops: {', '.join(self._control_ops())})")
        return fn(req)

    def _control_ops(self) -> dict[str, Any]:
        return {
            "ping": lambda req: {"ok": True},
            "state": lambda req: {"ok": True, **self.state()},
            "grudge": self._op_grudge,
            "links": self._op_links,
            "heal": self._op_heal,
            "counters": self._op_counters,
        }

    def state(self) -> dict[str, Any]:
        return {
            "nodes": self.node_ids,
            "grudge": {d: sorted(s) for d, s in sorted(self.grudge.items()) if s},
            "default": asdict(self.default_faults) if self.default_faults else None,
            "links": [
                {"src": s, "dest": d, "faults": asdict(f)}
                for (s, d), f in sorted(self.link_faults.items())
            ],
            "journal": self.journal is not None,
            "in_flight": len(self._pending),
        }

    def _node(self, v: Any, what: str) -> str:
        if v not in self.spec.peer_bind:
            raise RequestError(f"{what}: unknown node {v!r}")
        return v

    def _op_grudge(self, req: dict) -> dict[str, Any]:
        """{"op": "grudge", "grudge": {dest: [srcs dest cannot hear]}} replaces the grudge."""
        raw = req.get("grudge")
        if not isinstance(raw, dict):
            raise RequestError("grudge must be a map of node -> [nodes it cannot hear from]")
        grudge: dict[str, set[str]] = {}
        for dest, srcs in raw.items():
            self._node(dest, "grudge")
            if not isinstance(srcs, (list, tuple)):
                raise RequestError(f"grudge[{dest}] must be a list of node ids")
            grudge[dest] = {self._node(s, f"grudge[{dest}]") for s in srcs if s != dest}
        self.grudge = grudge
        for (src, dest), link in self.links.items():
            link.deaf = src in grudge.get(dest, ())
        return {"ok": True, **self.state()}

    def _op_links(self, req: dict) -> dict[str, Any]:
        """{"op": "links", "faults": {...} | None, "links": "all" | [[src, dest], ...]}.

        ``"all"`` (the default) sets the faults of every link without its own;
        a list sets those links. ``faults`` None or {} clears them."""
        raw = req.get("faults")
        faults = None if raw is None or raw == {} else LinkFaults.from_dict(raw)
        if faults is not None and faults.is_noop():
            faults = None
        target = req.get("links", "all")
        if target == "all":
            self.default_faults = faults
        elif isinstance(target, (list, tuple)):
            pairs = []
            for pair in target:
                if not isinstance(pair, (list, tuple)) or len(pair) != 2 or pair[0] == pair[1]:
                    raise RequestError(f"a link is [src, dest] with two different nodes: {pair!r}")
                pairs.append((self._node(pair[0], "links"), self._node(pair[1], "links")))
            for pair in pairs:
                if faults is None:
                    self.link_faults.pop(pair, None)
                else:
                    self.link_faults[pair] = faults
        else:
            raise RequestError("links must be \"all\" or a list of [src, dest]")
        self._apply_faults()
        return {"ok": True, **self.state()}

    def _apply_faults(self) -> None:
        for key, link in self.links.items():
            link.faults = self.link_faults.get(key, self.default_faults)

    def _op_heal(self, req: dict) -> dict[str, Any]:
        self.grudge = {}
        self.default_faults = None
        self.link_faults = {}
        for link in self.links.values():
            link.deaf = False
        self._apply_faults()
        return {"ok": True, **self.state()}

    def _op_counters(self, req: dict) -> dict[str, Any]:
        links = {f"{s}->{d}": link.counters() for (s, d), link in self.links.items()}
        reply = {"ok": True, "links": links, "unknown_src": self.unknown_src}
        if req.get("reset"):
            for link in self.links.values():
                link.delivered = link.dropped = link.cut = link.duplicated = link.delayed = 0
            self.unknown_src = 0
        return reply

    def close(self) -> None:
        if self._journal_buf and self.journal is not None:
            self._flush_journal()
        for s in self._sockets:
            s.close(linger=0)
        self._sockets.clear()
        for link in getattr(self, "links", {}).values():
            link.sock.close()
        for router in self._routers:
            router.close()
        self._routers.clear()


# --- command line ------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the parent dies (the loop also checks)."""
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faults.netproxy",
        description="Forward peer messages between nodes, applying partitions and link faults.",
    )
    parser.add_argument("--cluster", required=True, type=Path, help="the run's cluster.json")
    parser.add_argument("--journal", type=Path, help="append one JSON line per message here")
    parser.add_argument("--seed", type=int, help="seed for loss/delay decisions (default: random)")
    parser.add_argument(
        "--t0-ns", type=int,
        help="CLOCK_MONOTONIC ns of the run start, so journal times match the history "
        "(default: cluster.json proxy.t0_ns, else the proxy's own start)",
    )
    args = parser.parse_args(argv)
    parent = os.getppid()
    _die_with_parent()
    try:
        spec = ProxySpec.load(args.cluster)
    except ProxyConfigError as exc:
        print(f"netproxy: error: {exc}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        journal: IO[str] | None = None
        if args.journal:
            try:
                journal = stack.enter_context(open(args.journal, "a", encoding="utf-8"))
            except OSError as exc:
                print(f"netproxy: error: {args.journal}: {exc.strerror}", file=sys.stderr)
                return 2
        try:
            proxy = Proxy(spec, journal=journal, seed=args.seed, t0_ns=args.t0_ns)
        except (zmq.ZMQError, OSError, ValueError) as exc:
            print(f"netproxy: error: cannot bind: {exc}", file=sys.stderr)
            return 2
        stack.callback(proxy.close)  # before the journal closes: it flushes into it
        signal.signal(signal.SIGTERM, lambda *_: proxy.stop())
        signal.signal(signal.SIGINT, lambda *_: proxy.stop())
        print(
            f"netproxy: forwarding for {', '.join(proxy.node_ids)}; control at {spec.control}",
            file=sys.stderr, flush=True,
        )
        proxy.run(parent_pid=parent)
    print("netproxy: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
