"""The hunting plan (faults/hunt.py), driven offline with a fake view sequence.

The plan is a pure function of its seed and the views it is sent: played
against the same fake cluster twice it gives the same operations, and
another seed gives others. Over a long horizon it uses every family, holds
windows both shorter than an election timeout and longer, overlaps
operations, never aims a process fault at a node another one holds, and
ends each episode before the next one starts. Fast: no processes.
"""

from __future__ import annotations

import random
from typing import Any

from faults.hunt import FAMILIES, hunt_plan
from faults.plan import ClusterView
from faults.schedule import build_plan

NODES = ("n1", "n2", "n3", "n4", "n5")
TIMING = {"heartbeat_ms": 50, "election_timeout_ms": [300, 600]}


def fake_view(now: float, down: set[str]) -> ClusterView:
    """A cluster whose leader changes every 2 s (term = 1 + now // 2); in the
    first 0.4 s of each second a candidate of the next term has one vote."""
    epoch = int(now // 2)
    term, leader = 1 + epoch, NODES[epoch % len(NODES)]
    statuses: dict[str, dict[str, Any] | None] = {}
    for n in NODES:
        statuses[n] = {"role": "leader" if n == leader else "follower", "term": term,
                       "voted_for": leader, "leader": leader, "commit_index": 10 * epoch,
                       "log_len": 10 * epoch + 1}
    if now % 1.0 < 0.4:
        cand, voter = NODES[(epoch + 1) % 5], NODES[(epoch + 2) % 5]
        statuses[cand] = {**statuses[cand], "role": "candidate", "term": term + 1,  # type: ignore[dict-item]
                          "voted_for": cand}
        statuses[voter] = {**statuses[voter], "term": term + 1, "voted_for": cand}  # type: ignore[dict-item]
    for n in down:
        statuses[n] = None
    return ClusterView(NODES, leader, ("loss", "delay", "duplicate", "reorder"), statuses, now)


def play(seed: int, horizon: float = 600.0,
         kinds: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The operations the plan gives over ``horizon`` seconds, resolved, as an
    interpreter would: views built at each step's time, a fresh one after each start."""
    plan = build_plan("", interval_s=5.0, rng=random.Random(seed), network=True,
                      link_faults=("loss", "delay", "duplicate", "reorder"), timing=TIMING,
                      kinds_available=kinds)
    assert plan is not None
    ops: list[dict[str, Any]] = []

    def down(t: float) -> set[str]:
        return {n for op in ops if op["f"] in ("kill", "pause", "lose-unsynced")
                and op["at"] <= t < op["at"] + op["hold"] for n in op["value"]}

    op = plan.next(fake_view(0.0, set()))
    while op is not None and op["at"] < horizon:
        t = op["at"]
        if op["f"] != "wait":
            ops.append(plan.resolve(op, fake_view(t, down(t))))
        t += 0.001  # the interpreter's next view comes a moment later
        op = plan.next(fake_view(t, down(t)))
    return ops


def test_the_hunting_plan_is_a_pure_function_of_its_seed_and_views() -> None:
    a, b = play(3), play(3)
    assert a == b
    assert a != play(4)
    assert [op["at"] for op in a] == sorted(op["at"] for op in a)
    assert len(a) > 60


def test_it_hunts_with_every_family_and_time_scale() -> None:
    ops = [op for seed in range(4) for op in play(seed)]
    targets = {op["target"] for op in ops}
    # the families' own targets: leaders, voters, flapping nodes, crashes, shapes
    assert {"leader", "voter", "flap", "all", "majority", "one"} <= targets, targets
    assert {"leader-minority", "followers", "halves", "majorities-ring"} <= targets, targets
    assert {op["f"] for op in ops} == {"kill", "pause", "partition", "net"}
    holds = [op["hold"] for op in ops if "replaces" not in op]
    assert min(holds) < 0.3 and max(holds) > 1.8, "shorter and longer than an election"
    assert any("replaces" in op for op in ops), "a partition switched in one step"
    assert len(FAMILIES) == 14


def test_disk_and_clock_kinds_only_where_the_cluster_has_them() -> None:
    plain = {op["f"] for seed in range(3) for op in play(seed)}
    assert not plain & {"lose-unsynced", "clock", "corrupt"}
    both = [op for seed in range(3) for op in play(seed, kinds=("lose-unsynced", "clock"))]
    assert {"lose-unsynced", "clock"} <= {op["f"] for op in both}
    assert "corrupt" not in {op["f"] for op in both}, "corrupt stays named-only"
    lost = [op for op in both if op["f"] == "lose-unsynced"]
    assert all(op["hold"] < 0.3 and op["value"] for op in lost), "restarted soon after"
    big = [op for op in lost if len(op["value"]) >= 3]
    assert len(big) >= len(lost) / 2, "a majority's power loss is the common case"
    clocks = [op["value"] for op in both if op["f"] == "clock"]
    assert all(v["node"] in NODES and v["mode"] for v in clocks)


def test_overlaps_happen_and_process_faults_never_share_a_node() -> None:
    for seed in range(4):
        ops = play(seed)
        overlaps = 0
        for i, op in enumerate(ops):
            live = [o for o in ops[:i] if o["at"] <= op["at"] < o["at"] + o["hold"]
                    and o.get("id") != op.get("replaces")]
            overlaps += bool(live)
            if op["f"] in ("kill", "pause"):
                held = {n for o in live if o["f"] in ("kill", "pause") for n in o["value"]}
                assert not held & set(op["value"]), (seed, op, live)
                if op["target"] not in ("all", "majority"):
                    assert len(held | set(op["value"])) <= 2, (seed, op, live)
        assert overlaps >= 5, seed


def test_a_voter_is_killed_in_the_term_it_voted_in() -> None:
    for seed in range(6):
        for op in play(seed):
            if op["target"] != "voter":
                continue
            (victim,) = op["value"]
            s = fake_view(op["at"], set()).statuses[victim]
            assert s is not None and s["voted_for"] != victim or s["role"] == "candidate"
            assert op["hold"] < 0.3, "restarted within an election timeout"


def test_without_a_network_only_process_faults() -> None:
    plan = hunt_plan(random.Random(1), interval_s=5.0, network=False, timing=TIMING)
    view = fake_view(0.0, set())
    seen = set()
    op = plan.next(view)
    while op is not None and op["at"] < 300:
        if op["f"] != "wait":
            seen.add(plan.resolve(op, view)["f"])
        op = plan.next(fake_view(op["at"] + 0.001, set()))
    assert seen == {"kill", "pause"}
