"""Hand-scripted Paxos scenarios: each known-bug flag changes what its name says.

Every test drives real ``PaxosCore`` objects through a scripted network in
which the test decides exactly which message is delivered when (the seeded
random schedules live in test_paxos_core_sim.py). Each bug test runs the
same script twice: with the flag off the protocol keeps its promise, with it
on the promise is broken in the way the flag names (issue 8).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from nodes.common.applier import Applier
from nodes.common.core_api import CoreConfig, Entry, Restored, Timing
from nodes.paxos import PROTOCOL
from nodes.paxos.core import CANDIDATE, LEADER, PaxosCore
from nodes.paxos.messages import Accept, Prepare, Promise

CODEC = PROTOCOL.codec


class Script:
    """Paxos cores, their disks, and a network the test delivers by hand."""

    def __init__(self, n: int = 3, bugs: tuple[str, ...] = (), read_mode: str = "index",
                 snapshot_entries: int | None = None) -> None:
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        self.options: dict[str, Any] = {"bugs": list(bugs), "read_mode": read_mode}
        if snapshot_entries:
            self.options["snapshot_entries"] = snapshot_entries
        self.disk: dict[str, dict[str, Any]] = {
            i: {"meta": None, "snapshot": None, "log": {}} for i in self.ids}
        self.appliers: dict[str, Applier] = {}
        self.cores: dict[str, PaxosCore] = {i: self._boot(i) for i in self.ids}
        self.wire: list[Any] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.next_id = 0

    def _boot(self, node: str) -> PaxosCore:
        d = self.disk[node]
        restored = Restored(d["meta"], d["snapshot"], [d["log"][k] for k in sorted(d["log"])])
        cfg = CoreConfig(node, tuple(i for i in self.ids if i != node), Timing(),
                         dict(self.options), random.Random(node))
        self.appliers[node] = Applier(node, restored.snapshot, cfg.parsed().snapshot_entries)
        return PROTOCOL.make_core(cfg, restored)

    def kv(self, node: str) -> dict[str, Any]:
        return self.appliers[node].kv.data

    def flush(self, node: str) -> None:
        """The driver's half (docs/node-contract.md): ready, persist, apply,
        send, reply, advance; again only if the applier's snapshot needs saving."""
        core = self.cores[node]
        while (rd := core.ready()) is not None:
            d = self.disk[node]
            if rd.meta is not None:
                d["meta"] = rd.meta
            for e in rd.entries:
                d["log"][e.index] = e
            if rd.snapshot is not None:
                d["snapshot"] = rd.snapshot
                d["log"] = {k: e for k, e in d["log"].items() if k > rd.snapshot.index}
            snap = self.appliers[node].apply(rd)
            for m in rd.early_messages + rd.messages:  # through the real codec, as on the wire
                frame = msgpack.packb(CODEC.encode(m), use_bin_type=True)
                self.wire.append(CODEC.decode(msgpack.unpackb(frame, raw=False)))
            for _client, reply in rd.replies:
                self.replies[reply["id"]] = reply
            core.advance(rd)
            if snap is None:
                break
            core.compact(snap)

    def deliver(self, allow: Callable[[Any], bool] = lambda m: True, keep: bool = False) -> int:
        """Deliver every in-flight message ``allow`` accepts, until none is left;
        drop the rest (or, with ``keep``, leave them in flight)."""
        count = 0
        held: list[Any] = []
        while self.wire:
            batch, self.wire = self.wire, []
            for m in batch:
                if allow(m):
                    count += 1
                    self.cores[m.dest].step(m)
                    self.flush(m.dest)
                elif keep:
                    held.append(m)
        self.wire = held
        return count

    def between(self, *nodes: str) -> Callable[[Any], bool]:
        return lambda m: m.src in nodes and m.dest in nodes

    def request(self, node: str, op: str, key: str, value: Any = None,
                expected: Any = None) -> int:
        self.next_id += 1
        req = {"id": self.next_id, "op": op, "key": key, "value": value, "expected": expected}
        self.cores[node].request(b"client", req)
        self.flush(node)
        return self.next_id

    def campaign(self, node: str) -> None:
        """Tick ``node`` alone until it starts phase 1 (its Prepares are then in flight)."""
        core = self.cores[node]
        for _ in range(1000):
            core.tick()
            self.flush(node)
            if core.role in (CANDIDATE, LEADER):
                return
        raise AssertionError(f"{node} never campaigned")

    def lose_leader(self, *nodes: str) -> None:
        """Let time pass since ``nodes`` last heard a leader (followers ignore
        a candidate while their leader is fresh)."""
        for v in nodes:
            core = self.cores[v]
            core.election_elapsed = max(core.election_elapsed, core.el_lo)

    def elect(self, node: str, *voters: str) -> None:
        self.lose_leader(*voters)
        self.campaign(node)
        self.deliver(self.between(node, *voters))
        assert self.cores[node].role == LEADER, f"{node} did not win with {voters}"

    def crash_restart(self, node: str) -> None:
        self.wire = [m for m in self.wire if m.dest != node]
        self.cores[node] = self._boot(node)

    def heartbeat(self, node: str) -> None:
        core = self.cores[node]
        for _ in range(core.hb_ticks):
            core.tick()
        self.flush(node)


def value_at(core: PaxosCore, slot: int) -> Any:
    rec = core.log.get(slot)
    return None if rec is None else rec.value


# ---------------------------------------------------------------- correct protocol


def test_leader_commits_and_followers_learn() -> None:
    s = Script()
    s.elect("n1", "n2", "n3")
    rid = s.request("n1", "write", "k", 1)
    s.deliver()
    assert s.replies[rid] == {"id": rid, "ok": True}
    s.heartbeat("n1")
    s.deliver()
    for n in s.ids:
        assert s.kv(n) == {"k": 1}, n
    rid = s.request("n1", "read", "k")
    assert rid not in s.replies  # index read waits for a majority round
    s.deliver()
    assert s.replies[rid]["value"] == 1


def test_new_leader_adopts_a_value_accepted_by_a_minority_only() -> None:
    # n1 gets "x" accepted by n2 only (not chosen... by n1's count it is: 2 of 3).
    s = Script()
    s.elect("n1", "n2", "n3")
    rid = s.request("n1", "write", "k", "x")
    s.deliver(lambda m: not (m.dest == "n3" or m.src == "n3"))
    assert s.replies[rid]["ok"]
    s.crash_restart("n1")
    s.wire.clear()
    s.elect("n3", "n2")
    s.deliver(s.between("n2", "n3"))
    s.heartbeat("n3")
    s.deliver(s.between("n2", "n3"))
    assert s.kv("n3") == {"k": "x"}
    assert s.kv("n2") == {"k": "x"}


def test_lagging_node_catches_up_through_a_snapshot() -> None:
    s = Script(snapshot_entries=10)
    s.elect("n1", "n2", "n3")
    for i in range(35):
        s.request("n1", "write", f"k{i}", i)
        s.deliver(s.between("n1", "n2"))
    assert s.cores["n1"].snap_index >= 30
    for _ in range(5):
        s.heartbeat("n1")
        s.deliver()
    assert s.kv("n3") == s.kv("n1")
    assert s.appliers["n3"].applied == s.appliers["n1"].applied == 35


def test_restart_recovers_promise_and_accepted_values() -> None:
    s = Script()
    s.elect("n1", "n2", "n3")
    s.request("n1", "write", "k", 7)
    s.deliver()
    before = s.cores["n2"].promised
    s.crash_restart("n2")
    assert s.cores["n2"].promised == before
    assert value_at(s.cores["n2"], 1) == {"op": "write", "key": "k", "value": 7}


def test_deposed_leader_steps_down_on_higher_ballot() -> None:
    s = Script()
    s.elect("n1", "n2", "n3")
    s.wire.clear()
    s.elect("n2", "n3")
    s.heartbeat("n2")
    s.deliver()
    assert s.cores["n1"].role != LEADER
    assert s.cores["n1"].leader == "n2"
    rid = s.request("n1", "write", "k", 1)
    assert s.replies[rid] == {"id": rid, "ok": False, "error": "not_leader", "definite": True,
                              "leader": "n2"}


def test_malformed_messages_are_rejected_by_the_codec() -> None:
    good = CODEC.encode(Prepare("n1", "n2", (3, "n1"), 5))
    assert CODEC.decode(good) == Prepare("n1", "n2", (3, "n1"), 5)
    for bad in (None, 5, {"type": "prepare"}, dict(good, ballot=[1]), dict(good, from_slot=-1),
                dict(good, type="nope"), {**CODEC.encode(Accept("a", "b", (1, "a"), (), 0, 0)),
                                          "entries": [[1, "not a command"]]}):
        with pytest.raises(ValueError):
            CODEC.decode(bad)


# ---------------------------------------------------------------- known bugs


@pytest.mark.parametrize("bug", [False, True])
def test_no_adopt_loses_a_chosen_value(bug: bool) -> None:
    # "x" is chosen in slot 1 (n1 + n2 accepted it; the client was told ok),
    # then n1 dies before anyone else learns it is chosen. n3 leads with n2's
    # promise, which reports "x". Adopting it keeps the write; no-adopt
    # proposes a no-op over it and the acknowledged write is gone.
    s = Script(bugs=("no-adopt",) if bug else ())
    s.elect("n1", "n2", "n3")
    rid = s.request("n1", "write", "k", "x")
    s.deliver(lambda m: not (isinstance(m, Accept) and m.dest == "n3"))
    assert s.replies[rid]["ok"] and s.cores["n1"].commit == 1
    assert s.cores["n2"].commit == 0  # n2 accepted "x" but does not know it is chosen
    s.crash_restart("n1")
    s.elect("n3", "n2")
    s.heartbeat("n3")
    s.deliver(s.between("n2", "n3"))
    chosen_by_n3 = value_at(s.cores["n3"], 1)
    if bug:
        assert chosen_by_n3 is None and s.cores["n3"].commit >= 1
        assert s.kv("n3") == {}  # the acknowledged write is lost
        assert value_at(s.cores["n1"], 1) != chosen_by_n3  # two values chosen in slot 1
    else:
        assert chosen_by_n3 == {"op": "write", "key": "k", "value": "x"}
        assert s.kv("n3") == {"k": "x"}


@pytest.mark.parametrize("bug", [False, True])
def test_forget_promise_lets_two_values_be_chosen(bug: bool) -> None:
    # n2 promises ballot b3 to n3, crashes and restarts. Then n1's accept at
    # its older ballot reaches n2. A durable promise refuses it; a forgotten
    # one accepts it, so n1 and n3 each get "their" value chosen in slot 1.
    s = Script(bugs=("forget-promise",) if bug else ())
    s.elect("n1", "n2", "n3")
    s.wire.clear()
    s.lose_leader("n2")
    s.campaign("n3")
    s.deliver(lambda m: isinstance(m, Prepare) and m.dest == "n2", keep=True)  # n2 promises
    s.crash_restart("n2")  # its promise is already on the wire
    s.deliver(lambda m: isinstance(m, Promise) and m.dest == "n3")
    assert s.cores["n3"].role == LEADER
    x = s.request("n1", "write", "k", "from-n1")
    s.deliver(lambda m: {m.src, m.dest} == {"n1", "n2"})
    y = s.request("n3", "write", "k", "from-n3")
    s.deliver(lambda m: {m.src, m.dest} == {"n3", "n2"})
    assert s.replies[y]["ok"]
    if bug:
        assert s.replies[x]["ok"]
        assert value_at(s.cores["n1"], 1) != value_at(s.cores["n3"], 1)
        assert s.cores["n1"].commit == s.cores["n3"].commit == 1  # both think slot 1 chosen
    else:
        assert x not in s.replies or not s.replies[x]["ok"]
        assert s.cores["n1"].role != LEADER  # n2's refusal named the higher ballot


@pytest.mark.parametrize("bug", [False, True])
def test_early_ack_acknowledges_a_write_only_the_leader_has(bug: bool) -> None:
    s = Script(bugs=("early-ack",) if bug else ())
    s.elect("n1", "n2", "n3")
    s.wire.clear()
    rid = s.request("n1", "write", "k", "lost")
    assert (rid in s.replies) is bug  # before any other acceptor saw it
    s.wire.clear()  # the accepts never arrive; n1 dies
    s.crash_restart("n1")
    s.elect("n2", "n3")
    r = s.request("n2", "read", "k")
    s.deliver(s.between("n2", "n3"))
    assert s.replies[r]["value"] is None  # the write is not in the cluster...
    if bug:
        assert s.replies[rid]["ok"]  # ...yet its client was told it was


@pytest.mark.parametrize("read_mode", ["index", "log"])
@pytest.mark.parametrize("bug", [False, True])
def test_stale_read_answers_from_a_deposed_leader(bug: bool, read_mode: str) -> None:
    s = Script(bugs=("stale-read",) if bug else (), read_mode=read_mode)
    s.elect("n1", "n2", "n3")
    s.request("n1", "write", "k", "old")
    s.deliver()
    s.heartbeat("n1")
    s.deliver()
    # n1 is cut off; n2 leads with n3 and overwrites k.
    s.elect("n2", "n3")
    w = s.request("n2", "write", "k", "new")
    s.deliver(s.between("n2", "n3"))
    assert s.replies[w]["ok"]
    assert s.cores["n1"].role == LEADER  # it has not noticed yet
    r = s.request("n1", "read", "k")
    s.deliver(lambda m: m.src == "n1" or m.dest == "n1")  # even if it asks around
    if bug:
        assert s.replies[r] == {"id": r, "ok": True, "value": "old"}
    else:
        assert r not in s.replies or not s.replies[r]["ok"]


def test_codec_rejects_commands_and_snapshots_the_store_cannot_use() -> None:
    accept = CODEC.encode(Accept("n1", "n2", (1, "n1"), ((1, None),), 0, 0))
    assert CODEC.decode(accept).entries == ((1, None),)
    for bad in ({"op": "drop", "key": "k"}, {"op": "write", "key": 5}, [1, 2]):
        with pytest.raises(ValueError):
            CODEC.decode(dict(accept, entries=[[1, bad]]))
    learn = {"type": "learn", "src": "n1", "dest": "n2", "ballot": [1, "n1"], "entries": [],
             "snapshot": [3, 0, b"\xc1 not msgpack"], "commit": 3}
    with pytest.raises(ValueError):
        CODEC.decode(learn)


def test_restore_refuses_data_that_is_not_paxos_state() -> None:
    cfg = CoreConfig("n1", ("n2", "n3"), Timing(), {}, random.Random(1))
    with pytest.raises(ValueError, match="not a Paxos slot"):
        PROTOCOL.make_core(cfg, Restored({"promised": [1, "n1"]}, None,
                                         [Entry(1, 3, {"raft": "entry"})]))
    with pytest.raises(ValueError, match="no Paxos ballot"):
        PROTOCOL.make_core(cfg, Restored({"term": 3, "vote": "n2"}, None, []))
    with pytest.raises(ValueError, match="read_mode"):
        PROTOCOL.make_core(CoreConfig("n1", (), Timing(), {"read_mode": "lease"},
                                      random.Random(1)), Restored())


@pytest.mark.parametrize("read_mode", ["index", "log"])
def test_single_node_cluster_serves_alone(read_mode: str) -> None:
    s = Script(n=1, read_mode=read_mode)
    s.campaign("n1")
    assert s.cores["n1"].role == LEADER
    w = s.request("n1", "write", "k", 1)
    c = s.request("n1", "cas", "k", 2, expected=1)
    r = s.request("n1", "read", "k")
    assert s.replies[w]["ok"] and s.replies[c]["ok"]
    assert s.replies[r] == {"id": r, "ok": True, "value": 2}
