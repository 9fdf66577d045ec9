"""The time-driven simulated cluster (nodes/sim/world.py) and its fault interpreter
(faults/simulate.py): what each fault does, and that it is recorded as real runs record it."""

from __future__ import annotations

from typing import Any

import pytest

from faults.plan import ReplayPlan
from faults.simulate import SimInterpreter
from harness.config import RunConfig
from nodes.__main__ import load_protocol
from nodes.sim.world import LINK_FAULTS, World

MS = 1_000_000


def _world(system: str = "raft", n: int = 3, seed: int = 1) -> World:
    w = World(load_protocol(system), [f"n{i}" for i in range(1, n + 1)], seed=seed)
    w.run_until(3000 * MS, lambda: w.leader() is not None)
    assert w.leader() is not None
    return w


def test_idle_nodes_cost_only_their_ticks() -> None:
    w = _world()
    t0, f0 = w.now, w.flushes
    w.run_until(t0 + 1000 * MS)
    # 3 nodes x 100 ticks; heartbeats every 50 ms: a few hundred flushes, not thousands
    assert w.flushes - f0 < 600


def test_a_kill_inside_the_fsync_answers_nobody_but_keeps_what_was_written() -> None:
    w = _world()
    leader = w.leader()
    assert leader is not None
    node = w.nodes[leader]
    got: list[dict[str, Any]] = []
    w.reply_sink = lambda client, reply, node_id, t: got.append(reply)
    before = dict(node.disk.entries)
    w.nodes[leader].core.requests([(b"c", {"id": 1, "op": "write", "key": "k", "value": 9})])
    w._flush(node)
    assert node.busy and node.pending is not None and node.pending.entries
    written = node.pending.entries[-1]
    w.kill(leader)  # inside the fsync window
    w.run_until(w.now + 50 * MS)
    assert got == []  # nobody was told it happened
    assert node.disk.entries == before  # not durable: it was never fsynced ...
    assert node.disk.restored().entries[-1] == written  # ... but the page cache has it
    w.restart(leader)
    w.run_until(w.now + 2000 * MS)
    assert w.nodes[leader].up and w.nodes[leader].restarts == 1


def test_a_paused_node_keeps_its_messages_and_runs_them_after_resume() -> None:
    w = _world()
    leader = w.leader()
    follower = next(i for i in w.ids if i != leader)
    w.pause(follower)
    w.run_until(w.now + 200 * MS)
    node = w.nodes[follower]
    assert len(node.inbox) > 0 and node.ticks_owed > 0  # heartbeats wait; ticks are owed
    assert w.status(follower) is None
    dropped = sum(link.dropped for link in w.links.values())
    assert dropped == 0
    w.resume(follower)
    assert node.inbox == []  # handed to the core at once; the owed ticks after its fsync
    w.run_until(w.now + 5 * MS)
    assert node.ticks_owed == 0
    assert w.status(follower) is not None


def test_a_one_way_grudge_cuts_one_direction_only() -> None:
    w = _world()
    a, b = w.ids[0], w.ids[1]
    w.set_grudge({b: [a]})  # b cannot hear a
    c0 = {k: link.counters() for k, link in w.links.items()}
    w.run_until(w.now + 500 * MS)
    ab, ba = w.links[(a, b)], w.links[(b, a)]
    # whoever leads, a speaks to b at least by heartbeat or vote: cut; b -> a flows
    assert ab.cut > c0[(a, b)]["cut"] or ba.delivered > c0[(b, a)]["delivered"]
    assert ba.cut == 0
    w.heal()
    assert not any(link.deaf for link in w.links.values())


@pytest.mark.parametrize(("faults", "field"), [
    ({"loss": 1.0}, "dropped"),
    ({"duplicate": 1.0}, "duplicated"),
    ({"delay_ms": 20, "delay_dist": "exponential"}, "delayed"),
    ({"delay_ms": 5, "delay_dist": "uniform", "delay_max_ms": 20, "reorder": 0.5}, "delayed"),
])
def test_link_faults_act_on_the_links_they_name(faults: dict[str, Any], field: str) -> None:
    w = _world()
    x = w.ids[0]
    links = [[x, y] for y in w.ids if y != x]
    w.set_links(faults, links)
    before = {k: link.counters()[field] for k, link in w.links.items()}
    w.run_until(w.now + 500 * MS)
    named = sum(w.links[(s, d)].counters()[field] - before[(s, d)] for s, d in links)
    others = sum(link.counters()[field] - before[k] for k, link in w.links.items()
                 if list(k) not in links)
    assert named > 0
    assert others == 0
    w.heal()
    assert all(link.faults is None for link in w.links.values())


def _interpret(ops: list[dict[str, Any]], seconds: float) -> tuple[World, list[dict[str, Any]]]:
    w = _world(n=5)
    events: list[dict[str, Any]] = []

    def record(f: str, value: Any, **fields: Any) -> None:
        events.append({"time": w.now, "process": "nemesis", "type": "info", "f": f,
                       "value": value, **fields})

    sim = SimInterpreter(ReplayPlan(ops), w, record, LINK_FAULTS)
    sim.start()
    w.run_until(w.now + int(seconds * 1e9))
    sim.heal()
    return w, events


def test_every_fault_kind_is_recorded_with_the_real_interpreters_fields() -> None:
    ops = [
        {"f": "kill", "target": "leader", "at": 0.5, "hold": 0.5, "value": ["n1"]},
        {"f": "pause", "target": "one", "at": 1.5, "hold": 0.8, "value": ["n2"]},
        {"f": "partition", "target": "halves", "at": 3.0, "hold": 0.5,
         "value": {"shape": "halves", "oneway": True,
                   "grudge": {"n1": ["n3", "n4", "n5"], "n2": ["n3", "n4", "n5"]}}},
        {"f": "net", "target": "all", "at": 4.0, "hold": 0.5,
         "value": {"links": "all", "loss": 0.3, "delay_ms": 5, "delay_dist": "fixed",
                   "duplicate": 0.1, "reorder": 0.1}},
    ]
    w, events = _interpret(ops, 5.0)
    by_f = {e["f"]: e for e in events}
    assert [e["f"] for e in events] == ["kill", "kill-end", "pause", "pause-end", "partition",
                                        "partition-end", "net", "net-end"]
    assert by_f["kill"]["target"] == "leader" and by_f["kill"]["at"] == 0.5
    ev = by_f["kill-end"]["evidence"]
    assert ev["effective"] is True and set(ev) >= {"pid_before", "pid_after", "down_ms"}
    assert by_f["kill-end"]["at"] == 1.0 and ev["down_ms"] == 500.0
    assert by_f["pause-end"]["evidence"] == {"answered": [], "effective": True}
    assert by_f["partition-end"]["evidence"]["effective"] is True
    assert by_f["partition-end"]["value"] == by_f["partition"]["value"]
    assert by_f["net-end"]["evidence"]["effective"] is True
    w.run_until(w.now + 500 * MS)
    assert w.all_up()


def test_overlapping_partitions_carry_the_union_of_their_grudges() -> None:
    ops = [
        {"f": "partition", "at": 0.2, "hold": 1.0, "value": {"shape": "x", "oneway": True,
                                                             "grudge": {"n1": ["n2"]}}},
        {"f": "partition", "at": 0.5, "hold": 1.0, "value": {"shape": "y", "oneway": True,
                                                             "grudge": {"n3": ["n4"]}}},
    ]
    w = _world(n=5)
    sim = SimInterpreter(ReplayPlan(ops), w, lambda *a, **k: None, LINK_FAULTS)
    sim.start()
    w.run_until(w.now + 700 * MS)
    assert w.links[("n2", "n1")].deaf and w.links[("n4", "n3")].deaf
    w.run_until(w.now + 600 * MS)  # the first ended, the second holds
    assert not w.links[("n2", "n1")].deaf and w.links[("n4", "n3")].deaf


def test_a_node_command_cannot_be_simulated() -> None:
    from harness.runner import RunError, run

    with pytest.raises(RunError, match="--sim simulates raft and paxos only"):
        run(RunConfig(sim=True, system="./mynode --fast", progress=False))


def test_a_power_loss_drops_what_was_not_fsynced_and_no_fsync_loses_acknowledged_writes() -> None:
    # correct nodes: an acknowledged write was fsynced before its reply
    w = _world()
    leader = w.leader()
    assert leader is not None
    w.run_until(w.now + 200 * MS)
    assert all(not n.disk.dirty for n in w.nodes.values() if not n.busy)
    # no-fsync: nothing is ever durable until the kernel's writeback
    w = World(load_protocol("raft"), ["n1", "n2", "n3"], seed=1, options={"bugs": ["no-fsync"]})
    w.run_until(3000 * MS, lambda: w.leader() is not None)
    leader = w.leader()
    assert leader is not None and w.nodes[leader].disk.dirty
    node = w.nodes[leader]
    assert node.disk.meta is None  # nothing durable yet
    w.run_until(w.now + 4000 * MS)
    w.lose_unsynced(leader)
    assert not node.up and not node.disk.dirty
    assert node.disk.meta is not None  # the vote was written back after WRITEBACK_NS


def test_clock_faults_change_the_nodes_ticks() -> None:
    w = _world()
    n = w.ids[0]
    before = w.nodes[n].tick_token
    w.clock_jump(n, -500 * MS)  # back: no tick for half a second
    assert w.nodes[n].tick_token == before + 1
    w.set_clock(n, rate=2.0)
    assert w.nodes[n].clock_rate == 2.0 and w.nodes[n].clock_offset_ns == -500 * MS
    ops = [{"f": "clock", "target": "one", "at": 0.1, "hold": 0.5,
            "value": {"node": n, "mode": "strobe", "offset_s": 0.5, "period_ms": 100}},
           {"f": "lose-unsynced", "target": "one", "at": 1.0, "hold": 0.5, "value": [n]}]
    w2, events = _interpret(ops, 2.0)
    assert [e["f"] for e in events] == ["clock", "clock-end", "lose-unsynced",
                                        "lose-unsynced-end"]
    assert w2.nodes[n].clock_offset_ns == 0  # the strobe ended in the true phase
    ev = events[3]["evidence"]
    assert ev["effective"] is True and n in ev["discarded"]


def test_corrupt_runs_in_simulation_and_is_recorded_as_in_real_runs() -> None:
    from harness import simrun

    cfg = simrun.prepare(RunConfig(sim=True, nemesis="corrupt", time_limit=8, seed=1,
                                   progress=False))
    out = simrun.simulate(cfg, check=False)
    kinds = [e["f"] for e in out.events if e["process"] == "nemesis"]
    assert "corrupt" in kinds and "corrupt-end" in kinds
    assert out.recovered


def test_each_timeout_fires_at_its_own_deadline_from_the_clients_deadline_heap() -> None:
    from nodes.sim.load import SimCall, SimPipeline

    w = _world()
    pipe = SimPipeline(w, list(w.ids))
    ended: list[tuple[str, str, int]] = []
    for n in w.ids:
        w.pause(n)  # nobody answers: every call must end by its timeout
    calls = []
    for k, timeout in enumerate((300 * MS, 100 * MS, 200 * MS, 100 * MS)):
        c = SimCall(w.ids[k % len(w.ids)], lambda c, t, r, n, e, at: ended.append((t, e, at)))
        pipe.start(c, {"op": "read", "key": f"k{k}"}, timeout)
        calls.append((c, w.now + timeout))
        w.run_until(w.now + 7 * MS)
    quick = calls[3][0]  # ends before its deadline: its deadline must do nothing
    pipe.pending.pop(quick.rid)  # as if its reply had come
    pipe._finish(quick, "ok", {"ok": True}, quick.node, None, w.now)
    w.run_until(w.now + 400 * MS)
    timeouts = sorted(at for t, e, at in ended if t == "info")
    assert timeouts == sorted(deadline for c, deadline in calls[:3])
    assert all(e == "timeout" for t, e, _ in ended if t == "info")
    assert len(ended) == 4 and not pipe.pending


def _arrivals(w: World, link: tuple[str, str], msgs: list[Any]) -> list[int]:
    """The scheduled arrival times of ``msgs`` on ``link`` (from the event heap)."""
    mine = {id(m) for m in msgs}
    return sorted(t for t, _seq, _fn, arg in w._heap
                  if isinstance(arg, tuple) and len(arg) == 2 and arg[0] is w.links[link]
                  and id(arg[1]) in mine)


def test_each_link_and_each_nodes_clients_draw_from_their_own_stream() -> None:
    """Traffic on one link (or to one node's clients) moves no other link's
    latencies: leaving a message or an operation out (shrinking) keeps the
    rest of the network's timing (issue 16)."""
    from types import SimpleNamespace

    ids = ["n1", "n2", "n3"]
    quiet = World(load_protocol("raft"), ids, seed=5, wire_codec=False)
    busy = World(load_protocol("raft"), ids, seed=5, wire_codec=False)
    to_n3 = [SimpleNamespace(dest="n3") for _ in range(20)]
    to_n2 = [SimpleNamespace(dest="n2") for _ in range(20)]
    quiet._send("n1", to_n3)
    busy._send("n1", [m for pair in zip(to_n2, to_n3) for m in pair])
    assert len(_arrivals(busy, ("n1", "n2"), to_n2)) == 20
    assert _arrivals(quiet, ("n1", "n3"), to_n3) == _arrivals(busy, ("n1", "n3"), to_n3)
    # The link's fault draws are its own too: loss on n1 -> n2 moves nothing on n1 -> n3.
    busy.set_links({"loss": 0.5}, [["n1", "n2"]])
    more = [SimpleNamespace(dest="n3") for _ in range(5)]
    quiet._send("n1", more)
    busy._send("n1", [SimpleNamespace(dest="n2") for _ in range(9)] + more)
    assert _arrivals(quiet, ("n1", "n3"), more) == _arrivals(busy, ("n1", "n3"), more)

    def request_times(w: World, extra: int) -> list[int]:
        for i in range(extra):  # requests to n2 first: they must not move n1's
            w.client_send("n2", b"c", {"id": -1 - i, "op": "read", "key": "k"})
        for i in range(10):
            w.client_send("n1", b"c", {"id": i, "op": "read", "key": "k"})
        return sorted(t for t, _s, _f, arg in w._heap
                      if isinstance(arg, tuple) and len(arg) == 4 and arg[0].id == "n1")

    assert request_times(quiet, 0) == request_times(busy, 7)


def test_the_event_heaps_own_sifts_keep_heapqs_layout_and_pop_order() -> None:
    """mypyc's build pops events with world.py's sifts instead of heapq's
    (nodes/sim/world.py ``SIFTS``); they must leave the heap list exactly as
    heapq would, so both builds run every event in the same order."""
    import heapq
    import random

    from nodes.sim.world import SIFTS

    push, pop = SIFTS
    for trial in range(40):
        rng = random.Random(trial)
        ours: list[tuple[Any, ...]] = []
        theirs: list[tuple[Any, ...]] = []
        seq = 0
        for k in range(rng.randint(1, 250)):
            if rng.random() < 0.6 or not ours:
                seq += 1  # few distinct times: ties on time are broken by seq
                event = (rng.randint(0, 15) * MS, seq, None, k)
                push(ours, event)
                heapq.heappush(theirs, event)
            else:
                assert pop(ours) == heapq.heappop(theirs)
            assert ours == theirs, (trial, k)
        while theirs:
            assert pop(ours) == heapq.heappop(theirs)
        assert not ours
