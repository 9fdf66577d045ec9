"""Evidence that each fault bit (faults/interpret.py, docs/faults.md "Evidence").

On a live three-node cluster behind the proxy, one plan of operations chosen
against the cluster's roles: a kill changes the PID and measures the time
down; a pause of a live node leaves it silent to ``status``; a pause of a node
that is already dead is flagged; a partition of the leader cuts messages on
the cut links (with a kill inside it, each with its own evidence), one
between two followers (a link no message uses while the
leader is stable) is flagged; link loss drops messages. As root, partition
evidence through nftables' per-rule counters (--net netns), which count
packets on exactly the cut links. Fast, with fakes:
plans are data (a RandomPlan gives the same operations for the same seed and
views), and ``recorded_ops`` reads a history back into the operations.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from testkit.livecluster import leader_of, status

from faults.api import NemesisContext
from faults.interpret import Interpreter, ineffective_faults, network_of
from faults.plan import ClusterView, RandomPlan, ReplayPlan, recorded_ops
from harness.cluster import LocalCluster


async def play(nem: Interpreter, events: list[dict], ends: int, within: float) -> None:
    """Run the interpreter until its plan's ``ends`` faults have all ended (or
    ``within`` seconds pass: the assertions then say what is missing), then heal."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.create_task(nem.run(stop))
    deadline = loop.time() + within
    while sum(e["f"].endswith("-end") for e in events) < ends and loop.time() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await nem.heal()


# --- plans are data ----------------------------------------------------------------


def test_a_random_plan_is_a_pure_function_of_its_seed_and_views() -> None:
    view = ClusterView(("n1", "n2", "n3", "n4", "n5"), "n2", ("loss", "delay"))

    def ops(seed: int) -> list[dict]:
        plan = RandomPlan(("kill", "pause", "partition", "net"), 2.0, random.Random(seed))
        return [plan.resolve(plan.next(), view) for _ in range(40)]  # type: ignore[arg-type]

    a, b = ops(5), ops(5)
    assert a == b and a != ops(6)
    assert [op["at"] for op in a] == [1.0 + 2.0 * i for i in range(40)]
    assert all(0.6 <= op["hold"] <= 1.2 for op in a)
    leaders = [op for op in a if op["f"] in ("kill", "pause") and op["target"] == "leader"]
    assert leaders and all(op["value"] == ["n2"] for op in leaders), "a role target resolves"
    shaped = [op for op in a if op["f"] == "partition" and op["target"] == "leader"]
    assert all(set(op["value"]["grudge"].get("n2", ())) | {"n2"} == set(view.node_ids)
               or op["value"]["oneway"] for op in shaped)
    assert {op["f"] for op in a} == {"kill", "pause", "partition", "net"}


def test_recorded_ops_read_back_what_was_applied_and_re_resolve_the_leader() -> None:
    events = [
        {"process": 0, "type": "invoke", "f": "read"},
        {"process": "nemesis", "f": "kill", "value": ["n3"], "at": 1.0, "target": "leader"},
        {"process": "nemesis", "f": "partition", "at": 1.5, "target": "halves",
         "value": {"shape": "halves", "oneway": False, "grudge": {"n1": ["n2"], "n2": ["n1"]}}},
        {"process": "nemesis", "f": "kill-end", "value": ["n3"], "at": 2.25},
        {"process": "nemesis", "f": "partition-end", "at": 3.0,
         "value": {"shape": "halves", "oneway": False, "grudge": {"n1": ["n2"], "n2": ["n1"]}}},
        {"process": "nemesis", "f": "pause", "value": ["n1"], "at": 4.0, "target": "one"},
    ]
    ops = recorded_ops(events)
    assert [(op["f"], op["at"], op["hold"]) for op in ops] == [
        ("kill", 1.0, 1.25), ("partition", 1.5, 1.5), ("pause", 4.0, 0.0)]
    plan = ReplayPlan(ops)
    view = ClusterView(("n1", "n2", "n3"), "n2")
    got = [plan.resolve(op, view) for op in iter(plan.next, None)]
    assert got[0]["value"] == ["n2"], "the leader is resolved again"
    assert got[1]["value"] == ops[1]["value"] and got[2]["value"] == ["n1"], "the rest as recorded"


# --- evidence on a live cluster -------------------------------------------------------


def answers_for(lc: LocalCluster):
    async def answers(node: str, timeout: float) -> bool:
        return await asyncio.to_thread(status, lc, node, timeout) is not None

    return answers


@pytest.mark.process
@pytest.mark.timeout(120)
def test_each_fault_kind_records_its_evidence_and_no_effect_is_flagged(
        cluster: LocalCluster) -> None:
    lc = cluster
    leader = leader_of(lc, lc.node_ids)
    f1, f2 = sorted(n for n in lc.node_ids if n != leader)
    pids = {n: lc.pid(n) for n in lc.node_ids}
    events: list[dict[str, Any]] = []

    async def current() -> str | None:
        return leader

    ctx = NemesisContext(
        cluster=lc, proxy_control=lc.proxy_control,
        record=lambda f, v, **kw: events.append({"process": "nemesis", "f": f, "value": v, **kw}),
        rng=random.Random(1), leader=current, interval_s=1.0, answers=answers_for(lc))
    cut = {"shape": "cut", "oneway": False, "grudge": {f1: [f2], f2: [f1]}}
    lonely = {"shape": "leader", "oneway": False,
              "grudge": {leader: [f1, f2], f1: [leader], f2: [leader]}}
    plan = ReplayPlan([
        {"f": "kill", "target": [f1], "value": [f1], "at": 0.1, "hold": 1.0},
        {"f": "pause", "target": [f1], "value": [f1], "at": 0.3, "hold": 0.4},  # f1 is dead
        {"f": "pause", "target": [f2], "value": [f2], "at": 1.5, "hold": 0.5},
        {"f": "partition", "target": "cut", "value": cut, "at": 2.3, "hold": 0.6},
        {"f": "net", "target": "all", "value": {"links": "all", "loss": 0.5}, "at": 3.1,
         "hold": 0.5},
        {"f": "partition", "target": "leader", "value": lonely, "at": 3.9, "hold": 0.9},
        {"f": "kill", "target": [f2], "value": [f2], "at": 4.1, "hold": 0.4},  # inside it
    ])
    nem = Interpreter(plan, ctx, network_of(ctx))

    asyncio.run(play(nem, events, ends=7, within=30))
    ends = [(e["f"], e["value"], e["evidence"]) for e in events if e["f"].endswith("-end")]
    assert [(f, v) for f, v, _ in ends] == [
        ("pause-end", [f1]), ("kill-end", [f1]), ("pause-end", [f2]), ("partition-end", cut),
        ("net-end", {"links": "all", "loss": 0.5}), ("kill-end", [f2]),
        ("partition-end", lonely)], events
    dead_pause, kill, pause, quiet, loss, inner, iso = (ev for _f, _v, ev in ends)
    assert inner["effective"] and inner["pid_after"][f2] not in (None, pids[f2]), \
        "a kill inside a partition has its own evidence"
    assert kill["effective"] and kill["pid_before"] == {f1: pids[f1]}
    assert kill["pid_after"][f1] not in (None, pids[f1]) and kill["down_ms"] >= 800
    assert dead_pause["effective"] is False and f"{f1} was not running" in dead_pause["why"]
    assert pause["effective"] is True and pause["answered"] == []
    assert quiet["effective"] is False and quiet["links"] == 2 and quiet["hit"] == {}
    assert loss["effective"] and sum(loss["hit"].values()) > 0
    assert iso["effective"] and set(iso["hit"]) <= {f"{leader}->{f1}", f"{leader}->{f2}",
                                                   f"{f1}->{leader}", f"{f2}->{leader}"}
    assert iso["elsewhere"] == 0, "cuts happen on the cut links only"
    flagged = ineffective_faults(events)
    assert [(x["kind"], x["value"]) for x in flagged] == [("pause", [f1]), ("partition", cut)]
    # every start carries when it began and what was asked for
    assert all("at" in e and "target" in e for e in events if not e["f"].endswith("-end"))


@pytest.mark.process
@pytest.mark.timeout(120)
def test_netns_partition_evidence_comes_from_nftables_counters(
        netns_cluster: tuple[LocalCluster, Any]) -> None:
    lc, nets = netns_cluster
    leader = leader_of(lc, lc.node_ids)
    f1, f2 = sorted(n for n in lc.node_ids if n != leader)
    events: list[dict[str, Any]] = []

    async def current() -> str | None:
        return leader

    ctx = NemesisContext(
        cluster=lc, proxy_control=None, network=nets.network(),
        record=lambda f, v, **kw: events.append({"process": "nemesis", "f": f, "value": v, **kw}),
        rng=random.Random(1), leader=current, interval_s=1.0)
    quiet = {"shape": "cut", "oneway": False, "grudge": {f1: [f2], f2: [f1]}}
    lonely = {"shape": "leader", "oneway": True, "grudge": {f1: [leader], f2: [leader]}}
    nem = Interpreter(ReplayPlan([
        {"f": "partition", "target": "cut", "value": quiet, "at": 0.1, "hold": 0.5},
        {"f": "partition", "target": "leader", "value": lonely, "at": 0.8, "hold": 0.5},
    ]), ctx, network_of(ctx))

    asyncio.run(play(nem, events, ends=2, within=30))
    ends = [e["evidence"] for e in events if e["f"] == "partition-end"]
    assert len(ends) == 2, events
    # packets, not messages: between followers the kernel still sees connection
    # traffic, so only "on the cut links and nowhere else" is asserted there
    assert set(ends[0]["hit"]) <= {f"{f1}->{f2}", f"{f2}->{f1}"}, ends[0]
    assert ends[0]["elsewhere"] == 0
    assert ends[1]["effective"] is True and ends[1]["elsewhere"] == 0
    assert set(ends[1]["hit"]) <= {f"{leader}->{f1}", f"{leader}->{f2}"}
