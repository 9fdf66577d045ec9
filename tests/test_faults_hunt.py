"""The hunting plan (faults/hunt.py), driven offline with a fake view sequence.

The plan is a pure function of its seed and the views it is sent: played
against the same fake cluster twice it gives the same operations, and
another seed gives others. Over a long horizon it uses every family, holds
windows both shorter than an election timeout and longer, overlaps
operations, never aims a process fault at a node another one holds, and
ends each episode before the next one starts. Fast: no processes.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

from faults import hunt
from faults.hunt import FAMILIES, Hunter, hunt_plan
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


@functools.cache  # several tests look at the same seeds (read only)
def play(seed: int, horizon: float = 600.0,
         kinds: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The operations the plan gives over ``horizon`` seconds, resolved, as an
    interpreter would: views built at each step's time, a fresh one after each
    start. Each gets ``until``: when it ends (its hold, an ``end`` op, or the
    op that ``replaces`` it)."""
    plan = build_plan("", interval_s=5.0, rng=random.Random(seed), network=True,
                      link_faults=("loss", "delay", "duplicate", "reorder"), timing=TIMING,
                      kinds_available=kinds)
    assert plan is not None
    ops: list[dict[str, Any]] = []

    procs: list[dict[str, Any]] = []  # process ops that may still hold a node

    def down(t: float) -> set[str]:
        procs[:] = [op for op in procs if t < op["until"]]
        return {n for op in procs if op["at"] <= t for n in op["value"]}

    by_id: dict[int, dict[str, Any]] = {}
    op = plan.next(fake_view(0.0, set()))
    while op is not None and op["at"] < horizon:
        t = op["at"]
        if op["f"] == "end":
            by_id[op["ref"]]["until"] = min(by_id[op["ref"]]["until"], t)
        elif op["f"] != "wait":
            got = dict(plan.resolve(op, fake_view(t, down(t))))
            got["until"] = t + got["hold"] if got["hold"] is not None else float("inf")
            if "replaces" in got:
                by_id[got["replaces"]]["until"] = min(by_id[got["replaces"]]["until"], t)
            by_id[got["id"]] = got
            ops.append(got)
            if got["f"] in ("kill", "pause", "lose-unsynced"):
                procs.append(got)
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
    holds = [op["hold"] for op in ops if "replaces" not in op and op["hold"] is not None]
    assert min(holds) < 0.3 and max(holds) > 1.8, "shorter and longer than an election"
    assert any("replaces" in op for op in ops), "a partition switched in one step"
    assert len(FAMILIES) == 18
    # weather: a delay on every link, held until its epoch ends, under other faults
    weather = [op for op in ops if op["f"] == "net" and op["hold"] is None
               and op["target"] == "all"]
    assert weather and all(op["value"]["links"] == "all" and op["until"] < float("inf")
                           for op in weather if op["at"] < 500)  # the horizon is 600 s
    assert any(o["at"] > w["at"] and o["until"] <= w["until"] and o["f"] == "kill"
               for w in weather for o in ops)
    # shared-voter: a bridge whose shared node alone is killed, more than once
    most = 0
    for seed in range(4):
        ops = play(seed)
        for b in [op for op in ops if op["target"] == "shared-voter" and op["f"] == "partition"]:
            (shared,) = set(NODES) - set(b["value"]["grudge"])
            kills = [o for o in ops if o["target"] == "shared" and b["at"] < o["at"] < b["until"]]
            assert all(o["value"] == [shared] for o in kills), (seed, b, kills)
            most = max(most, len(kills))
    assert most >= 2
    # cross-voter: the crossing node is one that voted for the other side's new leader
    crossed = [op for op in ops if op["target"] == "crossed"]
    assert crossed and all(len(op["value"]) == 1 and op["hold"] < 0.3 for op in crossed)
    # chase: a leader's cut replaced by the next leader's, at least twice in a row
    chained = {op["replaces"] for op in ops if "replaces" in op}
    assert any(op.get("replaces") in chained for op in ops)
    # slow links some families bring: a fixed delay on every link, ended with the episode
    every = [op for seed in range(4) for op in play(seed)]
    slow = [op for op in every if op["f"] == "net" and op["target"] in ("chase", "shared-voter",
                                                                      "cross-voter")]
    assert {op["target"] for op in slow} >= {"chase", "shared-voter"}, slow
    assert all(op["value"]["links"] == "all" and op["value"]["delay_dist"] == "fixed"
               and op["until"] < float("inf") for op in slow if op["at"] < 500)


def test_disk_and_clock_kinds_only_where_the_cluster_has_them() -> None:
    plain = {op["f"] for seed in range(3) for op in play(seed)}
    assert not plain & {"lose-unsynced", "clock", "corrupt"}
    both = [op for seed in range(5) for op in play(seed, kinds=("lose-unsynced", "clock"))]
    assert {"lose-unsynced", "clock"} <= {op["f"] for op in both}
    assert "corrupt" not in {op["f"] for op in both}, "corrupt stays named-only"
    lost = [op for op in both if op["f"] == "lose-unsynced"
            and op["target"] not in ("shared", "crossed")]  # the families of the power loss
    assert all(op["hold"] < 0.3 and op["value"] for op in lost), "restarted soon after"
    big = [op for op in lost if len(op["value"]) >= 3]
    # two in three are drawn majority-sized (a third every node), when as many are free
    assert len(big) >= 0.4 * len(lost), "a majority's power loss is the common case"
    assert any(len(op["value"]) == len(NODES) for op in lost), "a whole site loses power"
    clocks = [op["value"] for op in both if op["f"] == "clock"]
    assert all(v["node"] in NODES and v["mode"] for v in clocks)


def test_overlaps_happen_and_process_faults_never_share_a_node() -> None:
    for seed in range(4):
        ops = play(seed)
        overlaps = 0
        for i, op in enumerate(ops):
            live = [o for o in ops[:i] if o["at"] <= op["at"] < o["until"]
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


class Churn:
    """A cluster that elects a new leader ``ELECT_S`` after its leader is cut
    off; the new leader commits for the first time ``COMMIT_S`` later."""

    ELECT_S, COMMIT_S = 0.4, 0.2

    def __init__(self) -> None:
        self.leader, self.term, self.elected = NODES[0], 1, -1.0
        self.next_leader: tuple[float, str] | None = None
        self.commits: list[float] = []  # when each new leader first commits

    def op(self, op: dict[str, Any]) -> None:
        if op["f"] == "partition":
            self.cut(op["at"])

    def cut(self, at: float) -> None:
        if self.next_leader is None:  # the leader is cut off: the rest elect another
            nxt = NODES[(NODES.index(self.leader) + 1) % len(NODES)]
            self.next_leader = (at + self.ELECT_S, nxt)

    def view(self, now: float) -> ClusterView:
        if self.next_leader is not None and now >= self.next_leader[0]:
            self.elected, self.leader = self.next_leader
            self.term += 1
            self.next_leader = None
            self.commits.append(self.elected + self.COMMIT_S)
        base = 10 * self.term
        committed = base + (now >= self.elected + self.COMMIT_S)
        statuses: dict[str, dict[str, Any] | None] = {
            n: {"role": "leader" if n == self.leader else "follower", "term": self.term,
                "voted_for": self.leader, "leader": self.leader,
                "commit_index": committed if n == self.leader else base, "log_len": base + 2}
            for n in NODES}
        return ClusterView(NODES, self.leader, ("loss", "delay", "duplicate", "reorder"),
                           statuses, now)


def drive(steps: Any, view: Callable[[float], ClusterView],
          on_op: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Drive a family's steps against a fake cluster: each operation goes to
    ``on_op``, then the family sees the fake's view at that operation's time.
    Returns the operations in order."""
    ops: list[dict[str, Any]] = []
    try:
        op = next(steps)
        while True:
            on_op(op)
            ops.append(op)
            op = steps.send(view(op["at"]))
    except StopIteration:
        pass
    return ops


def test_chase_cuts_a_new_leader_the_moment_it_first_commits() -> None:
    # what a leader committed first is on a bare majority (the rest in flight):
    # half of chase's rounds cut it right then, within one poll of its status
    poll = TIMING["heartbeat_ms"] / 4000
    rounds = at_commit = 0
    for seed in range(20):
        hunter = Hunter(random.Random(seed), interval_s=5.0, network=True,
                        link_faults=("loss", "delay", "duplicate", "reorder"), timing=TIMING)
        churn = Churn()
        hunter.view = churn.view(0.0)
        cuts = [op["at"] for op in drive(hunter.chase(), churn.view, churn.op)
                if op["f"] == "partition"]
        for cut in cuts[1:]:  # each cut of a leader the chase saw come up
            rounds += 1
            at_commit += any(c <= cut <= c + poll + 1e-3 for c in churn.commits)
    assert rounds >= 40
    assert 0.3 <= at_commit / rounds <= 0.7, (at_commit, rounds)


class Crossing:
    """A cluster for ``cross-voter``, led by n1: the majority side of the
    first cut elects in term 2 ``ELECT_S`` after it; once a voter crossed to
    the other side (killed on the way), that side's first node leads there in
    term 3 ``ELECT_S`` after the crossing and first commits ``COMMIT_S`` later."""

    ELECT_S, COMMIT_S = 0.4, 0.2

    def __init__(self, log_len: dict[str, int] | None = None) -> None:
        #: each node's log length once the new side has elected (default 12)
        self.log_len = dict.fromkeys(NODES, 12) | (log_len or {})
        self.cut_at: float | None = None
        self.new: list[str] = []
        self.old: list[str] = []
        self.leader_killed = False
        self.crossed: tuple[float, str, float] | None = None  # (at, node, back up at)
        self.commit_at: float | None = None

    def op(self, op: dict[str, Any]) -> None:
        if op["f"] == "partition" and self.cut_at is None:
            self.cut_at = op["at"]
            grudge = op["value"]["grudge"]  # a node of the majority is cut from the minority
            self.new = sorted(d for d, srcs in grudge.items() if 2 * len(srcs) < len(NODES))
            self.old = sorted(set(NODES) - set(self.new))
        elif op["f"] == "kill" and op["target"] == "leader":
            self.leader_killed = True
        elif op["f"] == "kill" and self.crossed is None:
            self.crossed = (op["at"], op["value"][0], op["at"] + op["hold"])
            self.commit_at = op["at"] + self.ELECT_S + self.COMMIT_S

    def view(self, now: float) -> ClusterView:
        statuses: dict[str, dict[str, Any] | None] = {
            n: {"role": "follower", "term": 1, "voted_for": "n1", "leader": "n1",
                "commit_index": 10, "log_len": 11} for n in NODES}
        statuses["n1"] = {**statuses["n1"], "role": "leader"}  # type: ignore[dict-item]
        if self.cut_at is not None and now >= self.cut_at + self.ELECT_S:
            for n in self.new:
                statuses[n] = {"role": "leader" if n == self.new[0] else "follower", "term": 2,
                               "voted_for": self.new[0], "leader": self.new[0],
                               "commit_index": 10, "log_len": self.log_len[n]}
        if self.crossed is not None:
            at, v, up = self.crossed
            if now < up:
                statuses[v] = None
            if now >= at + self.ELECT_S:
                o = self.old[0]
                statuses[o] = {"role": "leader", "term": 3, "voted_for": o, "leader": o,
                               "commit_index": 10 + (now >= at + self.ELECT_S + self.COMMIT_S),
                               "log_len": 12}
        return ClusterView(NODES, None, ("loss", "delay", "duplicate", "reorder"), statuses, now)


def test_crash_cross_slows_every_link_by_more_than_the_plan_takes_to_react() -> None:
    # the crossing must beat the winner's first entry to the voter: crash-cross
    # always slows the links, by a share of the election timeout in
    # simulation (views on time), and by at least twice the measured lateness
    # of the plan's views where they come late (real processes), at most 0.3
    # of the timeout so elections still finish
    lo_ms = TIMING["election_timeout_ms"][0]
    for late, allowed in ((0.0, {round(x * lo_ms) for x in hunt.SLOW_DELAY}),
                          (0.04, {80}), (0.2, {90})):
        for seed in range(10):
            hunter = Hunter(random.Random(seed), interval_s=5.0, network=True,
                            link_faults=("loss", "delay", "duplicate", "reorder"), timing=TIMING)
            fake = Crossing()
            hunter.view = fake.view(0.0)
            ops = drive(hunter.crash_cross(), lambda t, fake=fake, late=late: fake.view(t + late), fake.op)
            (slow,) = [op for op in ops if op["f"] == "net"]
            assert slow["value"]["delay_ms"] in allowed, (late, slow)


def test_a_crossed_voter_goes_back_the_moment_the_old_sides_new_leader_first_commits() -> None:
    # it then carries what that leader just committed (and perhaps not its
    # own first entry) to the side with a later term: half of the 'back' endings
    poll = TIMING["heartbeat_ms"] / 4000
    backs = at_commit = 0
    for seed in range(40):
        hunter = Hunter(random.Random(seed), interval_s=5.0, network=True,
                        link_faults=("loss", "delay", "duplicate", "reorder"), timing=TIMING)
        fake = Crossing()
        hunter.view = fake.view(0.0)
        partitions = [op for op in drive(hunter.cross_voter(), fake.view, fake.op)
                      if op["f"] == "partition"]
        back = [p for p in partitions[2:] if p["value"]["shape"] == "cut"]
        if back:
            assert fake.commit_at is not None
            backs += 1
            at_commit += fake.commit_at <= back[0]["at"] <= fake.commit_at + poll + 1e-3
    assert backs >= 8
    assert 0.25 <= at_commit / backs <= 0.75, (at_commit, backs)


def test_crash_cross_deposes_the_leader_by_a_crash_on_the_majority_side() -> None:
    # then the old side takes no write the new side lacks: the crash comes
    # first and the cut once what the leader sent has landed (cut first, the
    # leader would go on replicating to the new side alone until the crash
    # lands, a step on real processes), so if both sides come to lead in one
    # term their entries land on the same indices; cross-voter instead cuts
    # the leader off with the old side. The crossing voter is the one that
    # holds least (shortest log), the one the old side can best win again.
    lo = TIMING["election_timeout_ms"][0] / 1000
    for family in ("crash_cross", "cross_voter"):
        crossings = 0
        for seed in range(20):
            hunter = Hunter(random.Random(seed), interval_s=5.0, network=True,
                            link_faults=("loss", "delay", "duplicate", "reorder"), timing=TIMING)
            fake = Crossing(log_len={"n2": 13, "n3": 12, "n4": 13, "n5": 12})
            hunter.view = fake.view(0.0)
            ops = drive(getattr(hunter, family)(), fake.view, fake.op)
            cut = next(op for op in ops if op["f"] == "partition")
            killed = [op for op in ops if op.get("target") == "leader"]
            if family == "crash_cross":
                (kill,) = killed
                assert kill is ops[0] and kill["f"] == "kill" and kill["value"] == ["n1"]
                assert kill["hold"] <= 0.3, "restarted fast"
                assert kill["at"] < cut["at"] <= kill["at"] + lo / 2, "cut before any election"
                assert "n1" in fake.new, "on the majority side"
            else:
                assert cut is ops[0] and not killed and "n1" in fake.old, \
                    "cut off with the old side"
            if fake.crossed is not None:  # the crossing voter leaves the majority side
                crossings += 1
                assert fake.crossed[1] in fake.new and fake.crossed[1] != fake.new[0]
                shortest = min(fake.log_len[x] for x in fake.new[1:])
                assert fake.log_len[fake.crossed[1]] == shortest, (seed, fake.crossed)
        assert crossings >= 15, (family, crossings)
