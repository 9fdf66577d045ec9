"""A seeded, in-process simulated cluster that drives any consensus core.

Owns: a cluster of cores (``core_api.Core``) built by a ``ProtocolSpec``-style
``make_core``, their simulated disks (nodes/sim/disk.py) and state machines
(one ``nodes.common.applier.Applier`` each, as in the real driver), the
messages in flight between them and the clients' requests and replies.
Nothing here knows Raft or Paxos: cores are reached only through core_api
(``step``, ``request``, ``tick``, ``ready``, ``advance``, ``compact``,
``status``), so both protocols' tests, and later ``harness run --sim``, reuse
it. No randomness but ``self.rng`` (one ``random.Random(seed)``), so a failing
schedule replays exactly from its seed.

Model (what a real node plus driver can do, and nothing more;
docs/node-contract.md, "The core and the driver"):
- Inputs (``tick``, ``deliver``, ``propose``) change a core in memory. Its
  effects become real only at ``flush`` (the driver's one ``ready()``):
  ``early_messages`` enter the network, meta/truncate/entries/snapshot are
  written to the node's disk (the fsync), the applier applies the committed
  entries and answers reads, then messages enter the network and replies
  reach clients; then ``advance``, and a snapshot the applier took goes to
  ``compact``. A ``crash`` loses everything not flushed (a crash inside a
  flush, after the early messages, loses that whole Ready); ``restart``
  builds a new core and applier from ``Restored`` read off the disk exactly
  as the storage contract says.
- The network delivers messages in any order, drops, duplicates, and honours
  partitions (a message on a cut link is lost when delivered). Optionally
  every message crosses the codec and msgpack, as on the real wire.

Invariants every core must keep whatever the schedule (checked here; protocol
specific ones are added through ``observers``): each client request gets at
most one reply, carrying its id; a restored log has no gaps (when the
protocol's log is contiguous).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from nodes.common.applier import Applier
from nodes.common.core_api import (
    Codec,
    Core,
    CoreConfig,
    Ready,
    Restored,
    Timing,
)
from nodes.common.kv import KVStore
from nodes.common.options import CoreOptions
from nodes.sim.disk import Disk

MakeCore = Callable[[CoreConfig, Restored], Core]
#: Called after every flush of a node: (net, node id, the Ready or None).
Observer = Callable[["SimNet", str, "Ready | None"], None]

FAST_TIMING = Timing(heartbeat_ms=10, election_timeout_ms=(50, 100), tick_ms=10)


class SimError(AssertionError):
    """A core broke a rule the simulation checks (a test failure, with context)."""


@dataclass
class Request:
    """One client operation: its request, where it went, and its outcome."""

    client: bytes
    node: str
    req: dict[str, Any]
    invoked: int  # simulated time of the invoke
    reply: dict[str, Any] | None = None
    completed: int | None = None


@dataclass
class Node:
    id: str
    core: Core | None
    applier: Applier | None = None
    disk: Disk = field(default_factory=Disk)
    dirty: bool = False  # inputs since the last flush
    restarts: int = 0

    @property
    def up(self) -> bool:
        return self.core is not None


class SimNet:
    """N cores on a simulated network; see the module header."""

    def __init__(
        self,
        make_core: MakeCore,
        node_ids: Iterable[str] = ("n1", "n2", "n3"),
        *,
        seed: int = 0,
        timing: Timing = FAST_TIMING,
        options: dict[str, Any] | None = None,
        codec: Codec | None = None,
        contiguous_log: bool = True,
    ) -> None:
        self.make_core = make_core
        # Raft's durable log never has holes, so one is a storage bug worth
        # catching here; a Paxos acceptor persists slots in arrival order, so
        # holes are normal for it (pass False).
        self.contiguous_log = contiguous_log
        self.ids = tuple(sorted(node_ids))
        self.rng = random.Random(seed)
        self.timing = timing
        self.options = dict(options or {})
        self.snapshot_entries = CoreOptions.parse(self.options).snapshot_entries
        self.codec = codec
        self.time = 0
        self.in_flight: list[tuple[str, str, Any]] = []  # (src, dest, msg)
        self.cut: set[tuple[str, str]] = set()  # (src, dest) links that lose messages
        self.requests: dict[bytes, Request] = {}
        self.observers: list[Observer] = []
        self.delivered = 0
        self._next_client = 0
        self._next_value = 0  # written values are unique, so a history is easy to check
        self.nodes: dict[str, Node] = {i: Node(i, None) for i in self.ids}
        for i in self.ids:
            self._build(i)

    # ------------------------------------------------------------- lifecycle

    def _build(self, node_id: str) -> Core:
        """A new core and applier for ``node_id`` from what its disk holds."""
        cfg = CoreConfig(
            node_id=node_id,
            peers=tuple(p for p in self.ids if p != node_id),
            timing=self.timing,
            options=self.options,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        restored = self.nodes[node_id].disk.restored()
        entries = restored.entries if self.contiguous_log else ()
        for a, b in itertools.pairwise(entries):
            if b.index != a.index + 1:
                raise SimError(f"{node_id}: persisted log has a gap between {a.index} and {b.index}")
        node = self.nodes[node_id]
        node.core = self.make_core(cfg, restored)
        node.applier = Applier(node_id, restored.snapshot, self.snapshot_entries)
        return node.core

    def crash(self, node_id: str) -> None:
        """Kill the node: all it did since its last flush is lost."""
        node = self.nodes[node_id]
        node.core = None
        node.applier = None
        node.dirty = False

    def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.up:
            return
        self._build(node_id)
        node.restarts += 1
        self.flush(node_id)

    def core(self, node_id: str) -> Core:
        core = self.nodes[node_id].core
        if core is None:
            raise SimError(f"{node_id} is down")
        return core

    def kv(self, node_id: str) -> KVStore:
        """The state machine of a running node."""
        applier = self.nodes[node_id].applier
        if applier is None:
            raise SimError(f"{node_id} is down")
        return applier.kv

    # ---------------------------------------------------------------- inputs

    def tick(self, node_id: str, n: int = 1, flush: bool = True) -> None:
        node = self.nodes[node_id]
        if node.core is None:
            return
        self.time += 1
        for _ in range(n):
            node.core.tick()
            node.dirty = True
            if flush:
                self.flush(node_id)

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for i in self.ids:
                self.tick(i)

    def propose(self, node_id: str, req: dict[str, Any], flush: bool = True) -> Request | None:
        """A client sends ``req`` (an "id" is added) to ``node_id``; None if it is down."""
        done = self.propose_batch(node_id, [req], flush)
        return done[0] if done else None

    def propose_batch(self, node_id: str, reqs: list[dict[str, Any]],
                      flush: bool = True) -> list[Request]:
        """Clients send ``reqs`` to ``node_id`` in one loop turn (one
        ``core.requests`` call, as the driver batches them); [] if it is down."""
        node = self.nodes[node_id]
        if node.core is None:
            return []
        batch = []
        out = []
        for req in reqs:
            self.time += 1
            self._next_client += 1
            client = b"c%d" % self._next_client
            req = dict(req, id=self._next_client)
            r = Request(client, node_id, req, self.time)
            self.requests[client] = r
            batch.append((client, req))
            out.append(r)
        node.core.requests(batch)
        node.dirty = True
        if flush:
            self.flush(node_id)
        return out

    def deliver(self, k: int | None = None, flush: bool = True) -> bool:
        """Deliver in-flight message number ``k`` (random if None); False if none."""
        if not self.in_flight:
            return False
        if k is None:
            k = self.rng.randrange(len(self.in_flight))
        src, dest, msg = self._take(k)
        self.time += 1
        node = self.nodes[dest]
        if node.core is None or (src, dest) in self.cut:
            return True  # lost
        if self.codec is not None:
            wire = msgpack.unpackb(msgpack.packb(self.codec.encode(msg), use_bin_type=True),
                                   raw=False)
            msg = self.codec.decode(wire)
        self.delivered += 1
        node.core.step(msg)
        node.dirty = True
        if flush:
            self.flush(dest)
        return True

    def _take(self, k: int) -> tuple[str, str, Any]:
        # Swap-remove: O(1), and order is random anyway.
        last = self.in_flight.pop()
        if k < len(self.in_flight):
            item, self.in_flight[k] = self.in_flight[k], last
            return item
        return last

    def drop(self, k: int | None = None) -> None:
        if self.in_flight:
            self._take(self.rng.randrange(len(self.in_flight)) if k is None else k)

    def duplicate(self, k: int | None = None) -> None:
        if self.in_flight:
            k = self.rng.randrange(len(self.in_flight)) if k is None else k
            self.in_flight.append(self.in_flight[k])

    def flush(self, node_id: str, crash_before_fsync: bool = False) -> Ready | None:
        """The driver's half: one ``ready()``, persist, apply, send, reply, ``advance``.

        ``early_messages`` leave before the fsync when the Ready changes no
        meta and truncates nothing (as the driver does); with
        ``crash_before_fsync`` the node dies right after sending them, its
        Ready never reaching the disk."""
        node = self.nodes[node_id]
        core = node.core
        if core is None:
            return None
        rd = core.ready()
        node.dirty = False
        if rd is not None:
            early = rd.early_messages
            if early and (rd.meta is not None or rd.truncate_from is not None):
                early, late = [], early + rd.messages
            else:
                late = rd.messages
            self._send(node_id, early)
            if crash_before_fsync:
                self.crash(node_id)
                return rd
            node.disk.persist(rd)
            assert node.applier is not None
            snap = node.applier.apply(rd)
            self._send(node_id, late)
            for client, reply in rd.replies:
                self._record_reply(node_id, client, reply)
            core.advance(rd)
            if snap is not None:
                core.compact(snap)
                node.dirty = True  # the snapshot is saved by the next flush
        for obs in self.observers:
            obs(self, node_id, rd)
        return rd

    def _send(self, node_id: str, msgs: list[Any]) -> None:
        codec_dest = self.codec.dest if self.codec is not None else None
        for msg in msgs:
            dest = codec_dest(msg) if codec_dest else msg.dest
            self.in_flight.append((node_id, dest, msg))

    def flush_all(self) -> None:
        for i in self.ids:
            if self.nodes[i].dirty:
                self.flush(i)

    def _record_reply(self, node_id: str, client: bytes | None, reply: dict[str, Any]) -> None:
        r = self.requests.get(client)
        if r is None:
            raise SimError(f"{node_id} replied to unknown client {client!r}: {reply}")
        if r.reply is not None:
            raise SimError(f"{node_id} replied twice to {r.req}: {r.reply} then {reply}")
        if reply.get("id") != r.req["id"]:
            raise SimError(f"{node_id} replied with the wrong id to {r.req}: {reply}")
        r.reply = reply
        r.completed = self.time

    # ------------------------------------------------------------- partitions

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups (nodes in no group are isolated)."""
        side = {}
        for g, members in enumerate(groups):
            for m in members:
                side[m] = g
        self.cut = {
            (a, b) for a in self.ids for b in self.ids
            if a != b and side.get(a, ("alone", a)) != side.get(b, ("alone", b))
        }

    def isolate(self, node_id: str) -> None:
        self.cut |= {(a, b) for a in self.ids for b in self.ids
                     if a != b and node_id in (a, b)}

    def heal(self) -> None:
        self.cut = set()

    # ------------------------------------------------------------ schedules

    def deliver_all(self, max_messages: int = 100_000,
                    keep: Callable[[str, str, Any], bool] | None = None) -> int:
        """Deliver until nothing is in flight (messages ``keep`` rejects are dropped)."""
        n = 0
        while self.in_flight and n < max_messages:
            k = self.rng.randrange(len(self.in_flight))
            if keep is not None and not keep(*self.in_flight[k]):
                self._take(k)
                continue
            self.deliver(k)
            n += 1
        return n

    def run_until(self, cond: Callable[[], bool], max_rounds: int = 2000) -> bool:
        """Tick everyone and deliver everything, round after round, until ``cond()``."""
        for _ in range(max_rounds):
            if cond():
                return True
            self.tick_all()
            self.deliver_all()
        return cond()

    def random_step(self, p: dict[str, float]) -> str:
        """One random action drawn with weights ``p`` over: deliver, drop,
        duplicate, tick, propose (needs ``self.workload``), flush, crash,
        restart, partition, heal. Returns the action's name."""
        names = list(p)
        action = self.rng.choices(names, weights=[p[n] for n in names])[0]
        rng = self.rng
        if action == "deliver":
            self.deliver(flush=rng.random() < 0.8)
        elif action == "drop":
            self.drop()
        elif action == "duplicate":
            self.duplicate()
        elif action == "tick":
            self.tick(rng.choice(self.ids), flush=rng.random() < 0.8)
        elif action == "propose":
            # Clients mostly find the leader (as real ones do, following hints).
            leaders = self.leaders() if rng.random() < 0.75 else []
            node = rng.choice(leaders or self.ids)
            self.propose(node, self.workload(rng), flush=rng.random() < 0.8)
        elif action == "flush":
            self.flush_all()
        elif action == "crash":
            up = [i for i in self.ids if self.nodes[i].up]
            if up:
                victim = rng.choice(up)
                if rng.random() < 0.5:
                    self.crash(victim)
                else:  # in the middle of its next Ready, between write and fsync
                    self.flush(victim, crash_before_fsync=True)
        elif action == "restart":
            down = [i for i in self.ids if not self.nodes[i].up]
            if down:
                self.restart(rng.choice(down))
        elif action == "partition":
            ids = list(self.ids)
            rng.shuffle(ids)
            leaders = self.leaders()
            if leaders and rng.random() < 0.5:  # the classic: cut the leader off
                ids.remove(leaders[0])
                ids.insert(0, leaders[0])
                k = 1
            else:
                k = rng.randrange(1, len(ids))
            self.partition(ids[:k], ids[k:])
        elif action == "heal":
            self.heal()
        return action

    def workload(self, rng: random.Random) -> dict[str, Any]:
        """A random client request over a few keys, with unique written values."""
        key = rng.choice("xyz")
        r = rng.random()
        self._next_value += 1
        if r < 0.4:
            return {"op": "write", "key": key, "value": self._next_value}
        if r < 0.7:
            return {"op": "read", "key": key}
        return {"op": "cas", "key": key, "expected": rng.randrange(self._next_value),
                "value": self._next_value}

    def recover(self) -> None:
        """End every fault: heal the network and restart every crashed node."""
        self.heal()
        for i in self.ids:
            self.restart(i)
        self.flush_all()

    # ------------------------------------------------------------- inspection

    def status(self, node_id: str) -> dict[str, Any] | None:
        core = self.nodes[node_id].core
        return core.status() if core is not None else None

    def leaders(self) -> list[str]:
        return [i for i in self.ids
                if self.nodes[i].up and self.core(i).status()["role"] == "leader"]
