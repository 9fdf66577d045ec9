"""The node driver: one poll loop that gives a pure core its I/O.

Owns the process side of a node for any protocol (``core_api.ProtocolSpec``):
sockets (nodes/common/zmtp.py's ZMTP ``Router`` for peers and for clients, a
``Dealer`` per peer, all plain sockets in one poll), the data directory,
time, signals, log lines and the state machine (``nodes/common/applier.py``). The contract it keeps with the core is
docs/node-contract.md, "The core and the driver". The loop, in order:

1. poll every socket, at most until the next tick is due; the peer messages
   and client requests that arrived are read here;
2. feed the peer messages read through ``codec.decode`` into ``core.step``,
   then flush (step 5): a leader's
   commits from these acks reach clients without waiting for the fsync of
   the next batch of writes;
3. take every client request read in step 1 (a frame may be an array of
   requests, docs/node-contract.md "Batches"), validated, into ONE
   ``core.requests(batch)``; ``status`` is answered here at once;
4. call ``core.tick()`` once per ``Timing.tick_ms`` of monotonic time that
   has passed (timers come from poll timeouts, never from threads); the
   peer DEALERs reconnect and send heartbeats at the same granularity;
5. flush: ``rd = core.ready()`` once, carried out in order -- persist and
   fsync (storage; ``early_messages`` go out between the log write and its
   fsync), the applier applies ``rd.committed`` and answers ``rd.reads``,
   peer messages, client replies (one frame per batching client, holding all
   its replies of the Ready; one ``send`` per client connection) -- then
   ``core.advance(rd)`` once, and a
   snapshot the applier took goes to ``core.compact``.

So each batch of inputs (the peer messages of step 2; the client requests and
ticks of steps 3-4) is followed by exactly one ready()/advance() pair.
Because step 1 reads everything that queued up while the previous fsync ran,
many client writes share one Ready and one fsync (group commit), and the batch
grows with load by itself.

Invariants:
- Nothing a Ready asks to persist is sent to a peer or client before it is
  fsynced; a disk error stops the node (exit 1): a node that cannot persist
  must not speak.
- Malformed input (undecodable frames, codec ``ValueError``, bad client
  requests) is logged, rate-limited, and dropped or answered ``malformed``;
  it never reaches the core and never stops the node.
- SIGTERM/SIGINT: clean exit 0 within one tick. The node also exits when its
  parent process dies (``os.getppid()`` changes), so a killed harness leaves
  no orphans.
- Log lines are per event a person cares about (start, role and leader
  changes as reported by ``Ready.soft_state``, dropped torn tail, malformed
  input), never per message.

Randomness: ``CoreConfig.rng`` is seeded from the node id, pid and start
time, so nodes (re)started at the same moment still draw different election
timeouts. ``NODES_SEED=<int>`` in the environment replaces pid and time with
that value for a reproducible node. The seed is logged at start.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import signal
import sys
import threading
import time
from typing import Any, TextIO

import zmq

from nodes.common import wire
from nodes.common.applier import Applier
from nodes.common.clusterfile import ClusterConfig
from nodes.common.core_api import CoreConfig, ProtocolSpec, SoftState
from nodes.common.options import CoreOptions
from nodes.common.storage import Storage, StorageError
from nodes.common.zmtp import POLLIN, POLLOUT, Dealer, Router

MAX_TICK_CATCHUP = 50  # after a long stall (SIGSTOP), do not replay more ticks than this
PARENT_CHECK_S = 0.2
BIND_RETRY_S = 2.0  # a restarted node may briefly race its predecessor's socket close
MAX_BATCHED_CLIENTS = 4096  # routing ids remembered as taking arrays of replies


class NodeExit(Exception):
    """Stop the node with ``code`` after printing ``message`` (one line)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def make_dealer(addr: str, node_id: str) -> Dealer:
    """A DEALER to one peer (docs/node-contract.md, "Sockets"): routing id = own id;
    a send to a peer with no completed handshake or a full backlog fails at once
    (ZMQ_IMMEDIATE); ZMTP heartbeats close a connection to a peer that stopped
    answering, so sends fail fast instead of queueing a stale burst."""
    return Dealer(addr, identity=node_id.encode(),
                  heartbeat_ns=wire.HEARTBEAT_IVL_MS * 1_000_000,
                  heartbeat_timeout_ns=wire.HEARTBEAT_TIMEOUT_MS * 1_000_000,
                  max_queued=wire.MAX_MESSAGE_BYTES)


def make_seed(node_id: str) -> int:
    fixed = os.environ.get("NODES_SEED")
    basis = f"{node_id}:{fixed}" if fixed else f"{node_id}:{os.getpid()}:{time.time_ns()}"
    return int.from_bytes(hashlib.sha256(basis.encode()).digest()[:8], "big")


class Driver:
    """Runs one node of ``spec`` as ``node_id`` of ``cluster`` until told to stop."""

    def __init__(
        self,
        spec: ProtocolSpec,
        cluster: ClusterConfig,
        node_id: str,
        *,
        log: TextIO = sys.stderr,
    ) -> None:
        if node_id not in cluster.nodes:
            raise NodeExit(2, f"{node_id}: not a node of {cluster.path} "
                              f"(it has {', '.join(cluster.node_ids)})")
        self.spec = spec
        self.cluster = cluster
        self.id = node_id
        self.me = cluster.nodes[node_id]
        self.peers = cluster.peers_of(node_id)
        self._log_file = log
        self._stop = False
        self._stop_reason = ""
        self._warned_at = 0.0
        self._suppressed = 0
        self.dropped_sends = 0

    # -- logging --------------------------------------------------------------

    def log(self, text: str) -> None:
        t = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(t))
        ms = int(t * 1000) % 1000
        try:
            self._log_file.write(f"{stamp}.{ms:03d} {self.id} {text}\n")
            self._log_file.flush()
        except (OSError, ValueError):
            pass  # stderr gone (closed pipe, dead parent): a node never dies of logging

    def warn_malformed(self, text: str) -> None:
        """Log at most one line per second about bad input, with a count of the rest."""
        now = time.monotonic()
        if now - self._warned_at >= 1.0:
            more = f" (and {self._suppressed} more since the last report)" if self._suppressed else ""
            self.log(f"dropped malformed input: {text}{more}")
            self._warned_at = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    # -- setup ----------------------------------------------------------------

    def _lock_data_dir(self) -> int:
        d = self.me.data_dir
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(d / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise NodeExit(2, f"{self.id}: cannot use data dir {d}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise NodeExit(2, f"{self.id}: data dir {d} is in use by another process") from None
        return fd

    # -- the loop -------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT or parent death; return the exit code."""
        self._install_signals()  # first: a SIGTERM during recovery still ends cleanly
        lock_fd = self._lock_data_dir()
        bugs = CoreOptions.parse(self.cluster.options).bugs
        storage = Storage(self.me.data_dir, self.id, sync="no-fsync" not in bugs)
        try:
            restored = storage.open()
        except StorageError as exc:
            raise NodeExit(2, str(exc)) from None
        seed = make_seed(self.id)
        config = CoreConfig(
            node_id=self.id,
            peers=self.peers,
            timing=self.cluster.timing,
            options=self.cluster.options,
            rng=random.Random(seed),
        )
        try:
            core = self.spec.make_core(config, restored)
            applier = Applier(self.id, restored.snapshot,
                              CoreOptions.parse(self.cluster.options).snapshot_entries)
        except ValueError as exc:  # restored state the core cannot use: damage, not a bug
            raise NodeExit(2, f"{self.id}: data dir {self.me.data_dir} holds state the "
                              f"{self.spec.name} core cannot use: {exc}") from None
        snap = restored.snapshot
        self.log(
            f"starting {self.spec.name} (pid {os.getpid()}, seed {seed}): peers "
            f"{','.join(self.peers) or 'none'}; restored meta {restored.meta}, "
            f"snapshot at {snap.index if snap else 0}, {len(restored.entries)} log entries"
            + (f"; dropped a torn log tail of {storage.dropped_tail_bytes} bytes"
               if storage.dropped_tail_bytes else "")
        )
        routers: list[Router] = []
        dealers: dict[str, Dealer] = {}
        try:
            peer_in = self._bind_router(self.me.peer_bind, "peer_bind", {}, identities=True)
            routers.append(peer_in)
            clients = self._bind_router(self.me.client_bind, "client_bind",
                                        {wire.BATCH_PROPERTY: b"1"})
            routers.append(clients)
            for peer in self.peers:
                dealers[peer] = make_dealer(self.cluster.routes[self.id][peer], self.id)
                dealers[peer].service(time.monotonic_ns())  # connect now
            self.log(f"listening: peers at {self.me.peer_bind}, clients at {self.me.client_bind}")
            self._loop(core, applier, storage, peer_in, clients, dealers)
        finally:
            for d in dealers.values():
                d.close()
            for r in routers:
                r.close()
            storage.close()
            os.close(lock_fd)
        self.log(f"stopped ({self._stop_reason})")
        return 0

    def _bind_router(self, addr: str, what: str, metadata: dict[bytes, bytes],
                     identities: bool = False) -> Router:
        """A ROUTER of nodes/common/zmtp.py bound at ``addr`` (retried while a
        restarted node races its predecessor's close)."""
        deadline = time.monotonic() + BIND_RETRY_S
        while True:
            try:
                return Router(addr, metadata, identities=identities)
            except ValueError as exc:
                raise NodeExit(2, f"{self.id}: cannot bind {what} {addr}: {exc}") from None
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise NodeExit(2, f"{self.id}: cannot bind {what} {addr}: "
                                      f"{exc.strerror or exc}") from None
                time.sleep(0.05)

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            self._stop = True
            self._stop_reason = signal.Signals(signum).name

        if threading.current_thread() is not threading.main_thread():
            return  # in-process tests run the driver in a thread and stop it with stop()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def stop(self, reason: str = "asked to stop") -> None:
        """End the loop within one tick (from another thread, e.g. a test)."""
        self._stop_reason = reason
        self._stop = True

    def _loop(
        self,
        core: Any,
        applier: Applier,
        storage: Storage,
        peer_in: Router,
        clients: Router,
        dealers: dict[str, Dealer],
    ) -> None:
        # Locals, not attributes, on the hot path.
        codec = self.spec.codec
        decode, encode, dest_of = codec.decode, codec.encode, codec.dest
        step, requests, tick = core.step, core.requests, core.tick
        ready, advance, compact = core.ready, core.advance, core.compact
        apply = applier.apply
        agreement = applier.agreement  # status: the replicas' agreement chain
        unpackb, packb = wire.unpackb, wire.packb
        validate = wire.validate_request
        monotonic = time.monotonic
        monotonic_ns = time.monotonic_ns
        # zmq_poll (poll(2) on plain descriptors), on a list rebuilt only when a
        # socket or what it waits for changed (the versions).
        zmq_poll = zmq.zmq_poll
        polled: list[tuple[Any, int]] = []
        handlers: dict[int, Any] = {}  # fd -> its event handler
        polled_key: tuple[int, ...] = ()
        dealer_list = list(dealers.values())
        take_peer = peer_in.take
        client_send = clients.send
        take_requests = clients.take
        flush_clients = clients.flush
        persist = storage.persist
        node_id = self.id
        pid = os.getpid()  # in status replies, so a person can `kill -9` the leader by hand
        tick_s = self.cluster.timing.tick_ms / 1000.0
        parent = os.getppid()
        now = monotonic()
        next_tick = now + tick_s
        next_parent_check = now + PARENT_CHECK_S
        shown: list[SoftState | None] = [None]  # the soft state last logged

        def send_all(msgs: list[Any]) -> None:
            """Queue each message on its peer's DEALER, then one ``send`` per peer:
            they leave now (early messages must, before the fsync)."""
            used: list[Dealer] = []
            for m in msgs:
                d = dealers.get(dest_of(m))
                if d is None:
                    continue
                if d.send(packb(encode(m))):
                    if d not in used:
                        used.append(d)
                else:  # no connection or a full backlog: lost, as on a lossy network
                    self.dropped_sends += 1
            for d in used:
                d.flush()

        def dealer_event(d: Dealer, ev: int) -> None:
            if ev & POLLOUT:
                d.on_writable(monotonic_ns())
            if ev & ~POLLOUT and d.sock is not None:
                d.read_frames()  # PONGs; a peer sends nothing else on our DEALER

        # Routing ids of the clients that sent an array of requests: they take their
        # replies as arrays (wire.py, "Batches"). A routing id is never reused by the
        # ROUTER; the set is cleared when large, which only costs those clients maps.
        batched: set[bytes] = set()

        def send_replies(replies: list[tuple[bytes, dict[str, Any]]]) -> None:
            """One frame per batching client (all its replies of this Ready), else one per reply."""
            groups: dict[bytes, list[dict[str, Any]]] = {}
            for client, reply in replies:
                if client in batched:
                    group = groups.get(client)
                    if group is None:
                        groups[client] = [reply]
                    else:
                        group.append(reply)
                    continue
                client_send(client, packb(reply))  # dropped if gone or flooded: it times out
            for client, group in groups.items():
                client_send(client, packb(group))

        def flush() -> None:
            """Carry out the core's one Ready, then advance it (module header, step 5)."""
            rd = ready()
            if rd is None:
                return
            if rd.soft_state is not None:
                shown[0] = self._log_soft_state(rd.soft_state, shown[0])
            early = rd.early_messages
            if (rd.meta is not None or rd.truncate_from is not None or rd.entries
                    or rd.snapshot is not None):
                try:
                    if early:
                        persist(rd, lambda early=early: send_all(early))
                    else:
                        persist(rd)
                except OSError as exc:
                    raise NodeExit(1, f"{node_id}: cannot persist to {storage.dir}: "
                                      f"{exc.strerror or exc}; stopping") from None
            elif early:
                send_all(early)
            snap = apply(rd)
            if rd.messages:
                send_all(rd.messages)
            if rd.replies:
                send_replies(rd.replies)
                flush_clients()
            advance(rd)
            if snap is not None:
                compact(snap)  # saved with the next Ready

        def take(client: bytes, obj: Any, batch: list[tuple[bytes, dict[str, Any]]]) -> None:
            """One decoded client request: into ``batch`` for the core, or answered here."""
            req, why = validate(obj)
            if req is None:
                self.warn_malformed(f"client request: {why}")
                rid = obj.get("id") if isinstance(obj, dict) else None
                client_send(client, packb(wire.malformed(rid, why)))
            elif req["op"] == "status":
                body = core.status()
                # the node's own clocks: the evidence of clock faults (faults/clock.py)
                client_send(client, packb({"id": req["id"], "ok": True, "node": node_id,
                                           "pid": pid, "wall_ns": time.time_ns(),
                                           "mono_ns": time.monotonic_ns(),
                                           "agree": agreement(), **body}))
            else:
                batch.append((client, req))

        while not self._stop:
            wait_ms = (next_tick - monotonic()) * 1000.0
            key = (peer_in.version, clients.version, *[d.version for d in dealer_list])
            if key != polled_key:
                polled_key = key
                polled = [*peer_in.poll_items, *clients.poll_items]
                handlers = {fd: peer_in.event for fd, _ in peer_in.poll_items}
                handlers.update({fd: clients.event for fd, _ in clients.poll_items})
                for d in dealer_list:
                    fd = d.fileno()
                    if fd >= 0:
                        polled.append((fd, POLLIN | POLLOUT if d.want_write else POLLIN))
                        handlers[fd] = (lambda fd, ev, d=d: dealer_event(d, ev))
            # Every socket's input is read here: the peer messages and client
            # requests that arrived (taken below), handshakes, PONGs.
            for fd, ev in zmq_poll(polled, max(0, int(wait_ms) + 1) if wait_ms > 0 else 0):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(fd, ev)
            # Act on the peer messages (commits release client replies without
            # waiting for the next fsync), then on the client requests.
            got_peer = False
            for sender, data in take_peer():
                if data is None:
                    self.warn_malformed("peer message that is not [routing id, one frame]")
                    continue
                try:
                    msg = decode(unpackb(data))
                except Exception as exc:  # noqa: BLE001 -- garbage from the network
                    self.warn_malformed(f"peer message from {sender[:32]!r}: {exc!r}"[:200])
                    continue
                step(msg)
                got_peer = True
            if got_peer:
                flush()
            batch: list[tuple[bytes, dict[str, Any]]] = []
            for client, data in take_requests():
                if data is None:
                    self.warn_malformed("client message that is not one frame")
                    continue
                try:
                    obj = unpackb(data)
                except Exception as exc:  # noqa: BLE001
                    self.warn_malformed(f"undecodable client request: {exc!r}"[:200])
                    client_send(client, packb(wire.malformed(None, "not msgpack")))
                    continue
                if type(obj) is list:  # an array of requests (wire.py, "Batches")
                    if len(batched) >= MAX_BATCHED_CLIENTS:
                        batched.clear()
                    batched.add(client)
                    for one in obj:
                        take(client, one, batch)
                else:
                    take(client, obj, batch)
            if batch:
                requests(batch)

            now = monotonic()
            if now >= next_tick:
                n = 0
                while now >= next_tick:
                    tick()
                    next_tick += tick_s
                    n += 1
                    if n >= MAX_TICK_CATCHUP:
                        next_tick = now + tick_s
                        break
                now_ns = monotonic_ns()
                for d in dealer_list:
                    d.service(now_ns)  # reconnects and heartbeats, at tick granularity
                if now >= next_parent_check:
                    next_parent_check = now + PARENT_CHECK_S
                    if os.getppid() != parent:
                        self._stop = True
                        self._stop_reason = f"parent process {parent} died"
            flush()
            flush_clients()  # status and malformed answers of this pass

    def _log_soft_state(self, soft: SoftState, last: SoftState | None) -> SoftState:
        """One log line when the role or the known leader changed (a term
        change alone is not news); returns the soft state now shown."""
        if last is not None and soft.role == last.role and soft.leader == last.leader:
            return last
        what, term = self.spec.term_name, soft.term
        if soft.role == "leader":
            self.log(f"became leader at {what} {term}")
        elif soft.leader:
            self.log(f"is {soft.role}, following {soft.leader} at {what} {term}")
        else:
            self.log(f"is {soft.role} at {what} {term}, no known leader")
        return soft


def run_node(spec: ProtocolSpec, cluster: ClusterConfig, node_id: str) -> int:
    """Run a node; print one line and return 2 (or 1) on a fatal error."""
    try:
        return Driver(spec, cluster, node_id).run()
    except NodeExit as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return exc.code
