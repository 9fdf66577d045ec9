"""The time-driven simulated cluster: cores, driver, disks and network on one event heap.

Owns ``World``: N cores of one ``ProtocolSpec`` driven by simulated time in
nanoseconds, as the real driver (nodes/common/driver.py) would drive them,
on a simulated network that behaves like the proxy (faults/netproxy.py),
with one simulated data directory (nodes/sim/disk.py) per node. Nothing here
knows Raft, Paxos, the harness or a fault plan: the simulated clients
(nodes/sim/load.py) and the fault interpreter (faults/simulate.py) drive it
through ``client_send``, ``kill``/``restart``, ``pause``/``resume``,
``set_grudge``/``set_links``/``heal`` and ``at`` (a callback at a time).

The event heap: ``(time_ns, seq, fn, arg)``; ``seq`` is a counter, so events
at the same time run in the order they were scheduled -- nothing depends on
hashing, ids or the wall clock. Idle nodes cost nothing but their ticks: each
node has its own tick chain (``tick_ms``, times its clock rate), messages
have delivery times, and nothing else is scheduled.

The node (what the real driver does, docs/node-contract.md):
- an input (a peer message, a client request, a tick) reaching an idle node
  is handed to the core at once and followed by one flush; inputs reaching a
  node that is busy (inside an fsync) or paused wait in its queues, and are
  drained in the driver's order when it is free: all peer messages then one
  flush, then the client requests as ONE ``requests`` batch and the due ticks
  (at most ``MAX_TICK_CATCHUP``), then one flush;
- a flush is ``ready()``; if the Ready persists anything: its writes reach
  the node's page cache (``Disk.write``), early messages leave, the fsync
  completes ``fsync_ns`` later (drawn by the node's disk stream; ``Disk.sync``), and
  only then are the committed entries applied, messages sent, replies sent,
  ``advance`` and ``compact`` called. A kill between the two answers nobody
  (the early messages are out) but keeps what was written: the page cache
  survives a process crash; only ``lose_unsynced`` (power loss) drops what
  was not fsynced. Under the ``no-fsync`` bug the fsync does nothing: the
  Ready is carried out at once and its writes stay in the page cache until
  the kernel's writeback (nodes/sim/disk.py);
- kill: the core, its queues and its unfinished Ready are gone; messages to
  it are lost (the proxy's ZMQ_IMMEDIATE drops them). restart: after
  ``boot_ns`` (the process starting) a new core and applier are built from
  ``Disk.restored()``, as nodes/common/storage.py would read the directory;
- pause: the node runs nothing (no tick, no input, no flush finish); its
  inbound messages and requests wait in its queues (the kernel's sockets) and
  its ticks are owed (the driver catches up at most ``MAX_TICK_CATCHUP``).
  An fsync already issued still completes on the disk.

The network (the proxy's semantics, docs/faults.md): every peer message gets
a latency from its link's stream, FIFO per link (TCP) unless a link fault
delays it; ``grudge[dest]`` is the set of sources ``dest`` cannot hear (a
message is cut when it enters the proxy, and again when a delayed one is
released); link faults per link or for all links: loss, delay
(fixed/uniform/exponential), duplicate (a second copy with its own delay),
reorder (an extra hold-back of up to ``reorder_ms``); per-link counters as
the proxy keeps them (``counters``), for the faults' evidence. Client
requests and replies travel on their own links (clients talk to nodes
directly, not through the proxy: partitions do not cut them). With
``wire=True`` every peer message crosses the codec and msgpack as on the real
wire.

Random streams (each its own ``random.Random``, seeded by name from the
seed; docs/simulation.md): ``net:SEED:SRC>DEST`` per directed peer link
(its latencies and link-fault draws), ``client:SEED:>NODE`` and
``client:SEED:NODE>`` per node (request and reply latencies), ``disk:SEED:NODE``
(fsync times), ``boot:SEED:NODE`` (tick phases), ``core:SEED:ID:N``
(incarnation N's election timeouts); the clients and the fault plan bring
their own. One stream per consumer, so leaving out a message, a client
operation or a fault moves only the draws of the links and nodes it touched,
not everyone's later timing (what shrinking needs, issue 16). ``disk_rng``
(``disk:SEED``) is the fault interpreter's, for torn writes and corruption.

Clocks (issue 17): ``set_clock(node, rate=)`` (its ticks come every
``tick_ns / rate``) and ``clock_jump(node, delta_ns)`` (forward: the driver
runs the ticks it believes it missed, at most ``MAX_TICK_CATCHUP``; back: no
tick until its clock has caught up); ``Node.clock_offset_ns`` is the sum of
the jumps. The cores read no clock but their ticks.
"""

from __future__ import annotations

import heapq
import itertools
import random
import types
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Final

from faults.netproxy import LinkFaults  # the proxy's link faults, drawn the same way
from nodes.common import wire
from nodes.common.applier import Applier
from nodes.common.core_api import Core, CoreConfig, ProtocolSpec, Ready, Timing
from nodes.common.msgcodec import DerivedCodec
from nodes.common.options import CoreOptions
from nodes.common.storage import StorageError
from nodes.sim.disk import Disk

MAX_TICK_CATCHUP = 50  # as nodes/common/driver.py
PEER_HWM = wire.PEER_HWM  # messages a paused node's socket holds before new ones are dropped
#: One-way latency of a peer message through the proxy on localhost: base + uniform(0, span).
PEER_LATENCY_NS = (60_000, 240_000)
#: One-way latency between a client and a node (no proxy): base + uniform(0, span).
CLIENT_LATENCY_NS = (30_000, 80_000)
#: Time the disk takes to make a write durable (uniform).
FSYNC_NS = (300_000, 1_500_000)
#: A restarted node answers after this long (the process starting).
BOOT_NS = 250_000_000

#: The link faults the simulated network applies (all of the proxy's).
LINK_FAULTS = ("loss", "delay", "duplicate", "reorder")


_DEST = attrgetter("dest")

#: An event on the heap: ``(time ns, seq, fn, arg)``. ``(time, seq)`` is unique
#: (seq counts), so the order is total: every correct heap pops the same sequence.
_Event = tuple[Any, ...]


def heappush(heap: list[_Event], item: _Event) -> None:
    """``heapq.heappush`` for events (its sift, so the same layout), in mypyc's
    build: heapq compares two tuples generically (a rich compare per element),
    this compares the two ints of the key natively. Pure Python uses heapq's
    (``NATIVE_HEAP``)."""
    heap.append(item)
    _sift_down(heap, len(heap) - 1, item)


def heappop(heap: list[_Event]) -> _Event:
    """``heapq.heappop`` for events (see ``heappush``): the smaller child moves
    up to a leaf, then the last event sifts down to its place from there."""
    last = heap.pop()
    if not heap:
        return last
    top = heap[0]
    end = len(heap)
    pos = 0
    child = 1
    while child < end:
        right = child + 1
        if right < end:
            a = heap[child]
            b = heap[right]
            at: int = a[0]
            bt: int = b[0]
            if not (at < bt or (at == bt and _seq_of(a) < _seq_of(b))):
                child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    heap[pos] = last
    _sift_down(heap, pos, last)
    return top


def _seq_of(e: _Event) -> int:
    seq: int = e[1]
    return seq


def _sift_down(heap: list[_Event], pos: int, item: _Event) -> None:
    """heapq's ``_siftdown`` from 0: ``item`` (at ``pos``) moves towards the
    root past every parent that sorts after it."""
    t: int = item[0]
    s: int = item[1]
    while pos > 0:
        up = (pos - 1) >> 1
        parent = heap[up]
        pt: int = parent[0]
        if t < pt or (t == pt and s < _seq_of(parent)):
            heap[pos] = parent
            pos = up
        else:
            break
    heap[pos] = item


def _probe() -> None:
    """A module-level function: a plain Python function unless mypyc built this module."""


#: This module's own sifts, whichever build runs (tests/test_sim_world.py
#: compares them with heapq's).
SIFTS = (heappush, heappop)
#: True in mypyc's build of this module. In pure Python heapq's C sifts beat
#: the ones above, so the two names are rebound to heapq's: one set of call sites.
NATIVE_HEAP: Final = not isinstance(_probe, types.FunctionType)
if not NATIVE_HEAP:
    globals().update(heappush=heapq.heappush, heappop=heapq.heappop)


class Link:
    """One directed peer link src -> dest: its FIFO horizon, faults and counters."""

    __slots__ = ("cut", "deaf", "delayed", "delivered", "dest", "dropped", "duplicated",
                 "faults", "last", "node", "rand", "rng", "src")

    def __init__(self, src: str, dest: str, node: Node, seed: int) -> None:
        self.src = src
        self.dest = dest
        self.node = node  # the destination
        # The link's own stream: its latencies and fault draws move only with its traffic.
        self.rng = random.Random(f"net:{seed}:{src}>{dest}")
        self.rand = self.rng.random  # bound once: the send path calls it per message
        self.deaf = False
        self.faults: LinkFaults | None = None
        self.last = 0  # delivery time of the newest message through the FIFO path
        self.delivered = self.dropped = self.cut = self.duplicated = self.delayed = 0

    def counters(self) -> dict[str, int]:
        return {"delivered": self.delivered, "dropped": self.dropped, "cut": self.cut,
                "duplicated": self.duplicated, "delayed": self.delayed}


class Node:
    """One simulated node process and its data directory."""

    __slots__ = ("applier", "boot_rand", "busy", "clock_offset_ns", "clock_rate", "core",
                 "disk", "fsync_rand", "id", "inbox", "incarnation", "paused", "pending",
                 "period", "pid", "reply_rand", "reqs", "request_rand", "restarts", "synced",
                 "tick_ns", "tick_token", "ticks_owed", "up")

    def __init__(self, node_id: str, tick_ns: int, fsyncs: bool = True, seed: int = 0) -> None:
        self.id = node_id
        # The node's own streams (bound methods): client request and reply latencies,
        # fsync times, each start's tick phase.
        self.request_rand = random.Random(f"client:{seed}:>{node_id}").random
        self.reply_rand = random.Random(f"client:{seed}:{node_id}>").random
        self.fsync_rand = random.Random(f"disk:{seed}:{node_id}").random
        self.boot_rand = random.Random(f"boot:{seed}:{node_id}").random
        self.core: Core | None = None
        self.applier: Applier | None = None
        # fsyncs False: the no-fsync bug (renames reach the disk, their data does not)
        self.disk = Disk(fsyncs=fsyncs, node_id=node_id)
        self.up = False  # the process runs (and, once booted, listens)
        self.paused = False
        self.busy = False  # inside an fsync
        self.pending: Ready | None = None  # the Ready whose fsync is in progress
        self.synced = False  # ... and its fsync completed (while paused)
        self.inbox: list[Any] = []  # peer messages waiting for the node
        self.reqs: list[tuple[bytes, dict[str, Any]]] = []  # client requests waiting
        self.ticks_owed = 0
        self.incarnation = 0
        self.restarts = 0
        self.pid: int | None = None  # a simulated process id (evidence of kills)
        self.tick_ns = tick_ns
        self.tick_token = 0  # voids scheduled ticks (kill, restart, a clock jump)
        self.clock_rate = 1.0
        self.period = int(tick_ns / self.clock_rate)  # ns between ticks at this clock rate
        self.clock_offset_ns = 0


#: reply(client, reply body, node id, time ns): how a node's replies reach the clients.
ReplySink = Callable[[bytes, dict[str, Any], str, int], None]


class World:
    """The simulated cluster; see the module header."""

    # Slots: every ``self.x`` of the event paths is a slot read (past 30 attributes an
    # instance dict stops sharing its keys and each read becomes a hashed lookup).
    __slots__ = ("_arrive_fn", "_dest_of", "_heap", "_pids", "_release_fn", "_reply_fn",
                 "_request_fn", "_seq",
                 "_synced_fn", "_tick_fn", "boot_ns", "codec", "default_faults",
                 "disk_rng", "flushes", "fsync_ns", "grudge", "ids", "link_faults", "links",
                 "messages", "nodes", "now", "options", "out", "reply_sink", "seed",
                 "snapshot_entries", "spec", "sync", "timing", "wire")

    def __init__(
        self,
        spec: ProtocolSpec,
        node_ids: Iterable[str],
        *,
        seed: int,
        timing: Timing | None = None,
        options: dict[str, Any] | None = None,
        wire_codec: bool = True,
        fsync_ns: tuple[int, int] = FSYNC_NS,
        boot_ns: int = BOOT_NS,
    ) -> None:
        self.spec = spec
        self.codec = spec.codec
        # The shared codec's dest is the message's ``dest`` field: _send reads it directly.
        self._dest_of: Callable[[Any], str] = (
            _DEST if getattr(type(spec.codec), "dest", None) is DerivedCodec.dest
            else spec.codec.dest)
        self.ids = tuple(sorted(node_ids))
        self.timing = timing or Timing()
        self.options = dict(options or {})
        self.snapshot_entries = CoreOptions.parse(self.options).snapshot_entries
        #: False under the no-fsync bug: the storage's fsync does nothing (storage.py)
        self.sync = "no-fsync" not in (self.options.get("bugs") or ())
        self.seed = seed
        #: the fault interpreter's disk stream (torn writes, corruption); fsync times
        #: are each node's own (Node.fsync_rand)
        self.disk_rng = random.Random(f"disk:{seed}")
        self.wire = wire_codec
        self.fsync_ns = fsync_ns
        self.boot_ns = boot_ns
        self.now = 0
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        tick_ns = self.timing.tick_ms * 1_000_000
        self.nodes: dict[str, Node] = {i: Node(i, tick_ns, self.sync, seed) for i in self.ids}
        self.links: dict[tuple[str, str], Link] = {
            (a, b): Link(a, b, self.nodes[b], seed) for a in self.ids for b in self.ids if a != b}
        #: src -> dest -> link: the send path's one lookup per message.
        self.out: dict[str, dict[str, Link]] = {
            a: {b: self.links[(a, b)] for b in self.ids if b != a} for a in self.ids}
        self.grudge: dict[str, set[str]] = {}
        self.default_faults: LinkFaults | None = None
        self.link_faults: dict[tuple[str, str], LinkFaults] = {}
        self.reply_sink: ReplySink | None = None
        self.flushes = 0
        self.messages = 0
        self._pids = itertools.count(1000)
        # The event callbacks as bound methods made once: ``self._arrive`` used as a
        # value (not called) builds a new bound-method object every time.
        self._arrive_fn = self._arrive
        self._tick_fn = self._tick
        self._synced_fn = self._synced
        self._request_fn = self._request
        self._reply_fn = self._reply
        self._release_fn = self._release
        for i in self.ids:
            self._boot(self.nodes[i])

    # --- the event loop -----------------------------------------------------------

    def at(self, t: int, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` at simulated time ``t`` (ns; not before now)."""
        now = self.now
        # not max(): a builtin call on every event scheduled
        heappush(self._heap, (t if t > now else now, next(self._seq), fn, arg))  # noqa: FURB136

    def run_until(self, t_end: int, stop: Callable[[], bool] | None = None) -> None:
        """Run every event before ``t_end`` (and then set the time to it), or
        until ``stop()`` is true after an event."""
        heap = self._heap
        # Pop first and put back the one event past the end: one heap access per event.
        if stop is None:
            while heap:
                t, seq, fn, arg = heappop(heap)
                if t >= t_end:
                    heappush(heap, (t, seq, fn, arg))
                    break
                self.now = t
                fn(arg)
        else:
            while heap:
                t, seq, fn, arg = heappop(heap)
                if t >= t_end:
                    heappush(heap, (t, seq, fn, arg))
                    break
                self.now = t
                fn(arg)
                if stop():
                    return
        self.now = max(self.now, t_end)

    # --- node lifecycle -----------------------------------------------------------

    def _boot(self, node: Node) -> None:
        """Start the node's process now: a core from what its disk holds."""
        node.incarnation += 1
        rng = random.Random(f"core:{self.seed}:{node.id}:{node.incarnation}")
        cfg = CoreConfig(node_id=node.id, peers=tuple(p for p in self.ids if p != node.id),
                         timing=self.timing, options=self.options, rng=rng)
        try:
            restored = node.disk.restored()
        except StorageError:
            # Damaged files: the real node refuses to start (exit 2), so this one stays down.
            node.up = False
            node.core = node.applier = None
            node.pid = None
            return
        node.core = self.spec.make_core(cfg, restored)
        node.applier = Applier(node.id, restored.snapshot, self.snapshot_entries)
        node.up = True
        node.paused = False
        node.busy = False
        node.pending = None
        node.synced = False
        node.ticks_owed = 0
        node.pid = next(self._pids)
        # The first tick comes at a random phase of the tick period.
        first = self.now + int(node.boot_rand() * node.tick_ns / node.clock_rate)
        node.tick_token += 1
        self.at(first, self._tick, (node, node.tick_token))
        self._flush(node)

    def kill(self, node_id: str) -> bool:
        """SIGKILL: everything not fsynced is lost. False if it was not running."""
        node = self.nodes[node_id]
        if not node.up:
            node.incarnation += 1  # a process still starting dies too
            return False
        node.up = False
        node.core = None
        node.applier = None
        node.pending = None
        node.busy = False
        node.paused = False
        node.inbox = []
        node.reqs = []
        node.pid = None
        node.incarnation += 1  # voids its scheduled fsyncs
        node.tick_token += 1  # and ticks
        return True

    def restart(self, node_id: str) -> None:
        """Start a killed node again; it serves ``boot_ns`` later."""
        node = self.nodes[node_id]
        if node.up:
            return
        node.restarts += 1
        inc = node.incarnation
        self.at(self.now + self.boot_ns, self._booted, (node, inc))

    def lose_unsynced(self, node_id: str,
                      torn_rng: random.Random | None = None) -> dict[str, int]:
        """Power loss of a node: kill it and drop its writes that are not durable
        (with ``torn_rng``, a prefix of each file's unsynced bytes reached the disk)."""
        self.kill(node_id)
        return self.nodes[node_id].disk.lose_unsynced(self.now, torn_rng)

    def _booted(self, arg: tuple[Node, int]) -> None:
        node, inc = arg
        if node.up or node.incarnation != inc:
            return
        self._boot(node)

    def pause(self, node_id: str) -> bool:
        node = self.nodes[node_id]
        if not node.up or node.paused:
            return False
        node.paused = True
        return True

    def resume(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if not node.up or not node.paused:
            return
        node.paused = False
        if node.busy and node.synced:
            self._finish(node)
        if not node.busy:
            self._drain(node)

    def set_clock(self, node_id: str, *, rate: float | None = None,
                  offset_ns: int | None = None) -> None:
        """The hook for clock faults: a node's clock rate (its ticks come every
        ``tick_ns / rate``) and offset (for cores that read a clock)."""
        node = self.nodes[node_id]
        if rate is not None:
            if rate <= 0:
                raise ValueError(f"clock rate must be > 0, not {rate}")
            node.clock_rate = rate
            node.period = int(node.tick_ns / rate)
        if offset_ns is not None:
            node.clock_offset_ns = offset_ns

    # --- inputs -------------------------------------------------------------------

    def clock_jump(self, node_id: str, delta_ns: int) -> None:
        """The node's clock jumps by ``delta_ns``: forward, the driver runs the
        ticks it thinks it missed (at most MAX_TICK_CATCHUP) at once; back, it
        runs none until its clock has caught up again."""
        node = self.nodes[node_id]
        node.clock_offset_ns += delta_ns
        if not node.up:
            return
        period = node.period
        if delta_ns > 0:
            node.ticks_owed = min(MAX_TICK_CATCHUP, node.ticks_owed + delta_ns // period)
            if not node.busy and not node.paused:
                self._drain(node)
        elif delta_ns < 0:
            node.tick_token += 1
            self.at(self.now - delta_ns + period, self._tick, (node, node.tick_token))

    def _tick(self, arg: tuple[Node, int]) -> None:
        node, token = arg
        if node.tick_token != token:
            return
        heappush(self._heap, (self.now + node.period, next(self._seq), self._tick_fn, arg))
        if node.paused or node.busy:
            if node.ticks_owed < MAX_TICK_CATCHUP:
                node.ticks_owed += 1
            return
        core = node.core
        core.tick()  # type: ignore[union-attr]
        rd = core.ready()  # type: ignore[union-attr]  # _flush, inlined: most ticks change nothing
        if rd is not None:
            self._carry(node, rd)

    def _arrive(self, arg: tuple[Link, Any]) -> None:
        link, data = arg
        node = link.node
        if not node.up:
            link.dropped += 1  # the proxy cannot reach it: dropped (ZMQ_IMMEDIATE)
            return
        if self.wire:
            data = self.codec.decode(wire.unpackb(data))
        if node.paused or node.busy:
            if len(node.inbox) >= PEER_HWM:
                link.dropped += 1
                return
            node.inbox.append(data)
            return
        self.messages += 1
        core = node.core
        core.step(data)  # type: ignore[union-attr]
        rd = core.ready()  # type: ignore[union-attr]  # _flush, inlined
        if rd is not None:
            self._carry(node, rd)

    def reachable(self, node_id: str) -> bool:
        """A client's send to the node can succeed: its process runs (paused
        too: the kernel still accepts the connection's bytes)."""
        return self.nodes[node_id].up

    def client_send(self, node_id: str, client: bytes, req: dict[str, Any]) -> None:
        """A client request leaves now (the caller checked ``reachable``)."""
        node = self.nodes[node_id]
        t = self.now + CLIENT_LATENCY_NS[0] + int(node.request_rand() * CLIENT_LATENCY_NS[1])
        heappush(self._heap, (t, next(self._seq), self._request_fn,
                              (node, node.incarnation, client, req)))

    def _request(self, arg: tuple[Node, int, bytes, dict[str, Any]]) -> None:
        node, inc, client, req = arg
        if not node.up or node.incarnation != inc:
            return  # the connection died with the process
        if node.paused or node.busy:
            node.reqs.append((client, req))
            return
        core = node.core
        core.requests([(client, req)])  # type: ignore[union-attr]
        rd = core.ready()  # type: ignore[union-attr]  # _flush, inlined
        if rd is not None:
            self._carry(node, rd)

    def _drain(self, node: Node) -> None:
        """Work the queues of a node that just became free, in the driver's order."""
        while node.up and not node.busy and not node.paused:
            core = node.core
            assert core is not None
            if node.inbox:
                msgs, node.inbox = node.inbox, []
                step = core.step
                for m in msgs:
                    step(m)
                self.messages += len(msgs)
                rd = core.ready()  # _flush, inlined
                if rd is not None:
                    self._carry(node, rd)
                continue
            if not node.reqs and not node.ticks_owed:
                return
            if node.reqs:
                batch, node.reqs = node.reqs, []
                core.requests(batch)
            owed, node.ticks_owed = node.ticks_owed, 0
            for _ in range(owed):
                core.tick()
            rd = core.ready()
            if rd is not None:
                self._carry(node, rd)

    # --- the flush (the driver's step 5) ------------------------------------------

    def _flush(self, node: Node) -> None:
        rd = node.core.ready()  # type: ignore[union-attr]
        if rd is not None:
            self._carry(node, rd)

    def _carry(self, node: Node, rd: Ready, synced: bool = False) -> None:
        """Carry out a Ready: its flush (the write reaches the page cache, the early
        messages leave, the fsync starts), then -- at once when it persists nothing
        or nothing is fsynced, else when ``_finish`` calls again with ``synced``
        after the fsync -- apply, send, reply, advance, compact. One method for
        both halves: most Readys persist nothing, and a call per flush costs."""
        if not synced:
            self.flushes += 1
            early = rd.early_messages
            if (rd.meta is not None or rd.truncate_from is not None or rd.entries
                    or rd.snapshot is not None):
                node.disk.write(rd, self.now)  # the page cache has it: a kill keeps it
                if early:
                    if rd.meta is None and rd.truncate_from is None:
                        self._send(node.id, early)
                    else:
                        rd.messages = early + rd.messages  # a meta change: after the fsync
                if self.sync:
                    node.busy = True
                    node.pending = rd
                    node.synced = False
                    lo, hi = self.fsync_ns
                    heappush(self._heap, (self.now + lo + int(node.fsync_rand() * (hi - lo)),
                                          next(self._seq), self._synced_fn,
                                          (node, node.incarnation)))
                    return
                # no-fsync: nothing to wait for (nothing is made durable): on at once
            elif early:
                self._send(node.id, early)
        core = node.core
        # The applier has nothing to do for a Ready without committed entries,
        # reads, a soft state or a restore (Applier.apply would return None).
        if rd.committed or rd.reads or rd.soft_state is not None or rd.restore:
            snap = node.applier.apply(rd)  # type: ignore[union-attr]
        else:
            snap = None
        if rd.messages:
            self._send(node.id, rd.messages)
        # Any: a waiter the core already answered has client None (BUG early-ack)
        replies: list[Any] = rd.replies
        if replies and self.reply_sink is not None:
            lo, span = CLIENT_LATENCY_NS
            rand = node.reply_rand
            now = self.now + lo
            heap, seq, reply = self._heap, self._seq, self._reply_fn
            nid = node.id
            for client, body in replies:
                heappush(heap, (now + int(rand() * span), next(seq), reply, (client, body, nid)))
        core.advance(rd)  # type: ignore[union-attr]
        if snap is not None:
            core.compact(snap)  # type: ignore[union-attr]

    def _synced(self, arg: tuple[Node, int]) -> None:
        node, inc = arg
        if node.incarnation != inc or node.pending is None:
            return  # killed inside the flush: written, never acknowledged
        node.disk.sync()
        node.synced = True
        if not node.paused:
            self._finish(node)
            self._drain(node)

    def _finish(self, node: Node) -> None:
        rd = node.pending
        assert rd is not None
        node.pending = None
        node.busy = False
        node.synced = False
        self._carry(node, rd, True)

    def _reply(self, arg: tuple[bytes, dict[str, Any], str]) -> None:
        client, reply, node_id = arg
        assert self.reply_sink is not None
        self.reply_sink(client, reply, node_id, self.now)

    # --- the network --------------------------------------------------------------

    def _send(self, src: str, msgs: list[Any]) -> None:
        if self.wire or self._dest_of is not _DEST:
            encode, packb = self.codec.encode, wire.packb
            self._send_data(src, msgs, [packb(encode(m)) for m in msgs] if self.wire else msgs)
            return
        out = self.out[src]
        now = self.now + PEER_LATENCY_NS[0]
        span = PEER_LATENCY_NS[1]
        heap, seq, arrive = self._heap, self._seq, self._arrive_fn
        for m in msgs:
            link = out.get(m.dest)  # the shared codec's dest (see _dest_of)
            if link is None:
                continue
            if link.deaf:
                link.dropped += 1
                link.cut += 1
                continue
            t = now + int(link.rand() * span)
            if t < link.last:  # noqa: PLR1730 -- not max(): a builtin call per message
                t = link.last  # TCP: in order on one link
            link.last = t
            if link.faults is None:
                link.delivered += 1
                heappush(heap, (t, next(seq), arrive, (link, m)))
            else:
                self._faulty(link, m, t)

    def _send_data(self, src: str, msgs: list[Any], datas: list[Any]) -> None:
        """``_send`` with what travels of each message given (``datas``: its wire
        bytes, or the message itself), for any codec's ``dest``."""
        out = self.out[src]
        base, span = PEER_LATENCY_NS
        for m, data in zip(msgs, datas):
            link = out.get(self._dest_of(m))
            if link is None:
                continue
            if link.deaf:
                link.dropped += 1
                link.cut += 1
                continue
            t = max(self.now + base + int(link.rand() * span), link.last)  # TCP: in order on one link
            link.last = t
            if link.faults is None:
                link.delivered += 1
                heappush(self._heap, (t, next(self._seq), self._arrive_fn, (link, data)))
            else:
                self._faulty(link, data, t)

    def _faulty(self, link: Link, data: Any, t: int) -> None:
        faults = link.faults
        assert faults is not None
        rng = link.rng
        if faults.loss and rng.random() < faults.loss:
            link.dropped += 1
            return
        copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
        if copies == 2:
            link.duplicated += 1
        arg = (link, data)
        heap, seq = self._heap, self._seq
        for _ in range(copies):
            delay = int(faults.delay_s(rng) * 1e9)
            # pushed as at() would (t is past now, so at()'s clamp never applies)
            if delay <= 0:
                link.delivered += 1
                heappush(heap, (t, next(seq), self._arrive_fn, arg))
            else:
                link.delayed += 1
                heappush(heap, (t + delay, next(seq), self._release_fn, arg))

    def _release(self, arg: tuple[Link, Any]) -> None:
        link, _data = arg
        if link.deaf:  # a grudge set while the message was held still cuts it
            link.dropped += 1
            link.cut += 1
            return
        link.delivered += 1
        self._arrive(arg)

    def set_grudge(self, grudge: dict[str, Any]) -> None:
        """Replace the grudge: ``grudge[dest]`` = the nodes ``dest`` cannot hear."""
        self.grudge = {d: {s for s in srcs if s != d} for d, srcs in grudge.items()}
        for (src, dest), link in self.links.items():
            link.deaf = src in self.grudge.get(dest, ())

    def set_links(self, faults: dict[str, Any] | None, links: Any = "all") -> None:
        """Link faults on ``"all"`` links (those without their own) or on
        [[src, dest], ...]; None or {} clears them (the proxy's ``links`` op)."""
        lf = LinkFaults.from_dict(dict(faults)) if faults else None
        if lf is not None and lf.is_noop():
            lf = None
        if links == "all":
            self.default_faults = lf
        else:
            for src, dest in links:
                if lf is None:
                    self.link_faults.pop((src, dest), None)
                else:
                    self.link_faults[(src, dest)] = lf
        for key, link in self.links.items():
            link.faults = self.link_faults.get(key, self.default_faults)

    def heal(self) -> None:
        """No grudge and no link faults (held messages stay in flight)."""
        self.set_grudge({})
        self.link_faults = {}
        self.set_links(None, "all")

    def counters(self) -> dict[str, Any]:
        """Per-link counters, as the proxy's ``counters`` op answers them."""
        return {"links": {f"{s}->{d}": link.counters()
                          for (s, d), link in sorted(self.links.items())}}

    # --- inspection ---------------------------------------------------------------

    def status(self, node_id: str) -> dict[str, Any] | None:
        """The node's ``status`` as a client would get it now (None: dead or paused)."""
        node = self.nodes[node_id]
        if not node.up or node.paused or node.core is None:
            return None
        return node.core.status()

    def leader(self, statuses: dict[str, dict[str, Any] | None] | None = None) -> str | None:
        """The node that says it leads in the highest term (as the harness's
        poller decides), or None; from ``statuses`` (node -> ``status``) when
        the caller has just asked every node anyway."""
        best: tuple[int, str] | None = None
        for i in self.ids:
            s = self.status(i) if statuses is None else statuses.get(i)
            if not s or s.get("role") != "leader":
                continue
            term = s.get("term", s.get("ballot"))
            term = term if isinstance(term, int) else 0
            if best is None or term > best[0]:
                best = (term, i)
        return best[1] if best is not None else None

    def all_up(self) -> bool:
        return all(n.up and not n.paused and n.core is not None for n in self.nodes.values())
