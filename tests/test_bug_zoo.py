"""The bug zoo: `harness run --bug NAME --nemesis bug:NAME` finds each known bug; correct
nodes stay valid under the same demonstration mix.

Fast (default suite): the registry agrees with the flags the cores implement;
``--bug`` only turns the bug on (no fault, timing, key count or node option
changes), ``--nemesis bug:NAME`` brings the mix and its settings (the user's
options win); a bug the system lacks is a one-line usage error; the mix
nemesis records every fault it starts and ends; and one real run per system
that catches a bug within seconds under its mix, plus a correct cluster under
the same mix that stays valid.
Slow (``-m slow``): every bug on every system that has it, 60 s, fixed seed.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit.zoo import assert_caught, bug_run, nemesis_events

from faults import mixes
from faults.api import NemesisContext
from faults.schedule import build_nemesis
from harness import bugs as zoo
from harness.config import ConfigError, RunConfig

REPO = Path(__file__).resolve().parent.parent


# --- the registry ----------------------------------------------------------------


def test_registry_names_exactly_the_flags_the_cores_implement() -> None:
    from nodes.raft.core import BUGS as RAFT_BUGS

    # bugs of the shared driver (nodes/common/driver.py), not of one core
    driver_src = (REPO / "nodes" / "common" / "driver.py").read_text()
    shared = {n for n in zoo.names() if f'"{n}" not in bugs' in driver_src
              or f'"{n}" in bugs' in driver_src}
    assert set(zoo.names("raft")) - shared == set(RAFT_BUGS)
    paxos_src = (REPO / "nodes" / "paxos" / "core.py").read_text()
    for name in set(zoo.names("paxos")) - shared:
        assert f'"{name}" in bugs' in paxos_src, f"paxos core has no flag {name}"
    kv = {b.name for b in zoo.BUGS.values() if b.workload == "kv"}
    assert set(zoo.names("paxos")) & kv >= {"stale-read", "early-ack", "no-adopt",
                                            "forget-promise"}
    assert set(mixes.MIXES) >= kv, "every kv bug has its demonstration mix"
    known = {f.name for f in RunConfig.__dataclass_fields__.values()}
    for bug in zoo.BUGS.values():
        if bug.name not in mixes.MIXES:
            continue
        assert bug.mistake and len(bug.mistake.splitlines()) == 1
        demo = mixes.get_demo(bug.name)
        assert demo.faults.moves and set(demo.faults.moves) <= set(mixes.MOVES)
        assert set(demo.settings) <= known


@pytest.mark.parametrize("bug", zoo.names())
def test_bug_only_turns_the_bug_on(bug: str) -> None:
    system = zoo.get(bug).systems[0]
    plain = RunConfig(system=system, seed=3).resolved()
    buggy = RunConfig(system=system, seed=3, bugs=[bug]).resolved()
    differ = {k for k in plain.to_dict() if plain.to_dict()[k] != buggy.to_dict()[k]}
    assert differ == {"bugs"}, f"--bug {bug} changed {sorted(differ - {'bugs'})}"
    assert buggy.nemesis == "" and buggy.cluster_options() == {
        **plain.cluster_options(), "bugs": [bug]}


def test_nemesis_bug_brings_its_mix_and_settings_unless_the_user_chose() -> None:
    cfg = RunConfig(system="raft", bugs=["stale-read"], nemesis="bug:stale-read").resolved()
    want = mixes.settings_for("stale-read")
    assert cfg.nemesis == "bug:stale-read"
    for key, value in want.items():
        assert getattr(cfg, key) == value, key
    # the user's explicit options win
    mine = RunConfig(system="raft", bugs=["stale-read"], nemesis="bug:stale-read",
                     keys=7).resolved()
    assert mine.keys == 7 and mine.nemesis == "bug:stale-read"
    # the mix alone (no bug) gives correct nodes the very same settings
    same = RunConfig(system="raft", nemesis="bug:stale-read").resolved()
    assert {k: getattr(same, k) for k in want} == {k: getattr(cfg, k) for k in want}
    assert same.bugs == []
    # config.json's command line repeats the mix
    assert "bug:stale-read" in cfg.argv()


def test_a_bug_the_system_lacks_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no-adopt is a paxos bug"):
        RunConfig(system="raft", bugs=["no-adopt"]).resolved().validate()
    with pytest.raises(ConfigError, match="unknown bug"):
        RunConfig(system="paxos", bugs=["nope"]).resolved().validate()
    RunConfig(system="paxos", bugs=["no-adopt"]).resolved().validate()
    # a node command of someone else's may have bugs of its own
    RunConfig(system="mynode --fast", bugs=["whatever"]).resolved().validate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, says", [
    (["--bug", "no-adopt", "--system", "raft"], "no-adopt is a paxos bug"),
    (["--bug", "forget-vote", "--system", "paxos"], "forget-vote is a raft bug"),
    (["--nemesis", "bug:nope"], "unknown bug"),
    (["--nemesis", "bug:stale-read", "--net", "direct"], "needs --net proxy"),
])
def test_cli_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "run", *args, "--store",
                           str(tmp_path / "store"), "--time-limit", "1"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=50)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr


# --- the mix nemesis, against fakes ---------------------------------------------------


class FakeCluster:
    def __init__(self, ids: list[str]) -> None:
        self.node_ids = ids
        self.up = set(ids)
        self.paused: set[str] = set()

    def kill(self, node: str) -> None:
        self.up.discard(node)

    def start(self, node: str) -> None:
        self.up.add(node)

    def pause(self, node: str) -> None:
        self.paused.add(node)

    def resume(self, node: str) -> None:
        self.paused.discard(node)

    def pid(self, node: str) -> int | None:
        return 1 if node in self.up else None

    def is_running(self, node: str) -> bool:
        return node in self.up


class FakeNet:
    def __init__(self) -> None:
        self.grudge: dict = {}
        self.links = None

    def set_grudge(self, grudge: dict) -> None:
        self.grudge = grudge

    def set_links(self, faults: dict | None, links: object = "all") -> None:
        self.links = faults

    def heal(self) -> None:
        self.grudge, self.links = {}, None


def drive_mix(name: str, seconds: float, interval: float = 0.1,
              status: Any = None) -> tuple[list[tuple[str, object]], FakeCluster, FakeNet]:
    """Run bug ``name``'s fault mix (or a FaultMix named in MIXES) on fakes."""
    ids = ["n1", "n2", "n3", "n4", "n5"]
    cluster, net, events = FakeCluster(ids), FakeNet(), []

    async def leader() -> str:
        return "n3"

    ctx = NemesisContext(cluster=cluster, proxy_control=None,
                         record=lambda f, v, **kw: events.append((f, v)), rng=random.Random(7),
                         leader=leader, interval_s=interval, network=net,
                         status=status(net) if status else None)

    async def go() -> None:
        if name in MIXES:
            from faults.api import link_faults_of
            from faults.interpret import Interpreter, network_of

            plan = mixes.mix_plan(MIXES[name], ctx.rng, interval_s=interval,
                                  link_faults=link_faults_of(network_of(ctx)))
            nemesis = Interpreter(plan, ctx, network_of(ctx))
        else:
            nemesis = build_nemesis(f"bug:{name}", ctx)
        stop = asyncio.Event()
        task = asyncio.create_task(nemesis.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task
        await nemesis.heal()
        await nemesis.heal()  # idempotent

    asyncio.run(go())
    return events, cluster, net


@pytest.mark.parametrize(("agree", "rounds"), [(False, 1), (True, 3)],
                         ids=["no-chain", "settled-chain"])
def test_the_heal_settles_agreement_only_where_nodes_keep_a_chain(agree: bool,
                                                                  rounds: int) -> None:
    """After the heal the nemesis waits until the replicas report one applied
    index twice (faults/interpret.py). Nodes without an agreement chain (a
    ``--system`` program, these fakes) have none to settle: one round, no
    wait of AGREE_SETTLE_S."""
    from faults.interpret import Interpreter
    from faults.plan import ReplayPlan

    calls: list[str] = []
    applied = iter([1, 2, 2, 2, 2, 2, 2, 2, 2, 2])

    async def status(node: str) -> dict[str, Any]:
        calls.append(node)
        body: dict[str, Any] = {"role": "follower", "term": 1}
        if agree:
            if node == "n1":
                body["agree"] = {"applied": next(applied)}
            else:
                body["agree"] = {"applied": 2}
        return body

    cluster = FakeCluster(["n1", "n2", "n3"])
    async def leader() -> str:
        return "n1"

    ctx = NemesisContext(cluster=cluster, proxy_control=None, record=lambda f, v, **kw: None,
                         rng=random.Random(1), leader=leader, interval_s=1.0, status=status)
    nemesis = Interpreter(ReplayPlan([]), ctx, None)
    asyncio.run(nemesis._settle_agreement())
    assert len(calls) == rounds * 3


def test_a_reaction_costs_one_view_and_an_end_makes_the_next_view_fresh() -> None:
    """A plan answers a view with an operation due at once; the interpreter
    resolves it against that same view (each view of real processes is a status
    round to every node), but after carrying out the end of a hold it looks again."""
    from faults.interpret import Interpreter

    rounds: list[float] = []
    resolved_with: list[float] = []

    class Once:
        def __init__(self) -> None:
            self.sent = 0

        def next(self, view):  # type: ignore[no-untyped-def]
            rounds.append(view.now)
            self.sent += 1
            if self.sent == 1:  # at once, held 50 ms
                return {"f": "pause", "target": "n1", "at": view.now, "hold": 0.05}
            if self.sent == 2:  # after the hold's end: again at once
                return {"f": "kill", "target": "n2", "at": view.now + 0.1, "hold": 0.01}
            return None

        def resolve(self, op, view):  # type: ignore[no-untyped-def]
            resolved_with.append(view.now)
            if len(resolved_with) == 2:
                both.set()
            return {**op, "value": [op["target"]]}

    async def status(node: str) -> dict[str, Any]:
        return {"role": "follower", "term": 1}

    async def leader() -> str:
        return "n1"

    cluster = FakeCluster(["n1", "n2", "n3"])
    ctx = NemesisContext(cluster=cluster, proxy_control=None, record=lambda f, v, **kw: None,
                         rng=random.Random(1), leader=leader, interval_s=1.0, status=status)
    nemesis = Interpreter(Once(), ctx, None)  # type: ignore[arg-type]

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(nemesis.run(stop))
        await asyncio.wait_for(both.wait(), 10)  # until both operations are resolved
        stop.set()
        await task

    both = asyncio.Event()
    asyncio.run(go())
    # the first op: resolved with the view that chose it (one view, not two);
    # the second, due 0.1 s after its view: a fresh view when it is due
    assert resolved_with[0] == rounds[0]
    assert len(resolved_with) == 2 and resolved_with[1] > rounds[1]


#: Fault mixes no bug uses, for testing moves on their own.
MIXES = {"kill-one-mix": mixes.FaultMix(("kill-one",))}


def balanced(events: list[tuple[str, object]]) -> None:
    """Every fault start is ended later with the same value, and nothing is left open."""
    open_: list[tuple[str, object]] = []
    for f, v in events:
        if f.endswith("-end"):
            assert (f.removesuffix("-end"), v) in open_, (f, v)
            open_.remove((f.removesuffix("-end"), v))
        else:
            open_.append((f, v))
    assert not open_


@pytest.mark.timeout(30)
def test_stale_read_mix_isolates_the_leader_and_heals() -> None:
    events, cluster, net = drive_mix("stale-read", 1.0)
    starts = [v for f, v in events if f == "partition"]
    assert len(starts) >= 3
    for v in starts:
        assert v["shape"] == "leader" and sorted(v["grudge"]["n3"]) == ["n1", "n2", "n4", "n5"]
    balanced(events)
    assert net.grudge == {} and cluster.up == set(cluster.node_ids)


@pytest.mark.timeout(30)
def test_lag_mix_cuts_followers_off_then_the_leader() -> None:
    events, _cluster, net = drive_mix("no-log-check", 1.0)
    parts = [v for f, v in events if f == "partition"]
    assert len(parts) >= 4
    assert [v["shape"] for v in parts[:2]] == ["halves", "leader"]
    laggers = sorted(n for n, srcs in parts[0]["grudge"].items() if len(srcs) == 3)
    assert len(laggers) == 2 and "n3" not in laggers  # two followers lag behind n3, ...
    assert len(parts[1]["grudge"]["n3"]) == 4  # ... then rejoin as the leader is cut off
    assert all(parts[1]["grudge"][n] == ["n3"] for n in laggers)
    balanced(events)
    assert net.grudge == {}


@pytest.mark.timeout(30)
def test_process_mixes_bring_back_what_they_stopped() -> None:
    events, cluster, _net = drive_mix("no-adopt", 1.0)  # pauses the leader
    pauses = [v for f, v in events if f == "pause"]
    assert pauses and all(v == ["n3"] for v in pauses)
    balanced(events)
    assert not cluster.paused
    events, cluster, _net = drive_mix("kill-one-mix", 1.0)
    assert any(f == "kill" for f, _v in events)
    balanced(events)
    assert cluster.up == set(cluster.node_ids)


class ElectionStatus:
    """Fake ``status`` answers: n3 leads term 1 until the nemesis splits the
    network so that one node of J (the nodes cut off from n3) hears the rest
    of J while they cannot hear each other; then that one leads term 2 with
    the votes of the rest of J."""

    def __init__(self, net: FakeNet) -> None:
        self.net = net
        self.winner: str | None = None
        self.commit = 0

    async def __call__(self, node: str) -> dict:
        cut_off = sorted(self.net.grudge.get("n3", ()))
        if self.winner is None and len(cut_off) == 3:
            hears_all = [x for x in cut_off if not set(self.net.grudge.get(x, ())) & set(cut_off)]
            if len(hears_all) == 1:
                self.winner = hears_all[0]
        if self.winner is None:
            return {"role": "leader" if node == "n3" else "follower", "term": 1,
                    "voted_for": "n3", "leader": "n3", "log_len": 4}
        if node == self.winner:  # commits 10 entries between two looks
            self.commit += 10
            return {"role": "leader", "term": 2, "voted_for": node, "leader": node,
                    "commit_index": self.commit}
        voted = self.winner if node in cut_off else "n3"
        # Once moved to n3's side, a node follows n3.
        leader = "n3" if node not in self.net.grudge.get("n3", ()) else self.winner
        return {"role": "follower", "term": 2 if node in cut_off else 1, "voted_for": voted,
                "leader": leader, "commit_index": 0}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("bug", ["forget-vote", "forget-promise"])
def test_revote_moves_a_voter_through_a_kill_to_the_old_leaders_side(bug: str) -> None:
    """The revote script: split off the leader so that one node of J can win,
    wait for J to elect it, kill one of the winner's voters, restart it on the
    old leader's side, then bridge."""
    statuses: list[ElectionStatus] = []

    def status_for(net: FakeNet) -> ElectionStatus:
        statuses.append(ElectionStatus(net))
        return statuses[-1]

    events, cluster, net = drive_mix(bug, 1.6, interval=1.0, status=status_for)
    parts = [v for f, v in events if f == "partition"]
    kills = [v for f, v in events if f == "kill"]
    assert [p["shape"] for p in parts[:4]] == ["revote-cut", "revote-split", "revote-move",
                                                "revote-chain"]
    plain, split, moved, chain = (p["grudge"] for p in parts[:4])
    j = sorted(split["n3"])
    assert len(j) == 3 and sorted(plain["n3"]) == j  # the old leader's side: n3 and one other
    winner = statuses[0].winner
    electors = sorted(x for x in j if x != winner)
    assert winner is not None and not set(plain[winner]) & set(j)
    assert set(split[electors[0]]) >= {electors[1]} and set(split[electors[1]]) >= {electors[0]}
    (voter,) = kills[0]
    assert voter in electors
    # the voter now hears n3's side and not the winner; then it bridges both sides
    assert "n3" not in moved[voter] and winner in moved[voter]
    assert voter not in chain and winner in chain["n3"]
    delayed = [v for f, v in events if f == "net"]
    assert bool(delayed) == (bug == "forget-vote")  # Raft: the winner's messages are late
    if delayed:
        assert sorted(delayed[0]["links"]) == [[winner, e] for e in electors]
    balanced(events)
    assert net.grudge == {} and cluster.up == set(cluster.node_ids)


# --- real runs ---------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(150)
# The suite stays under 10 minutes: this offsets the replica-agreement tests
# (test_findings, test_kv, test_faults_schedule); test_run.py's stop-on-anomaly
# test still catches a bug (stale-read) on real processes in the default run.
@pytest.mark.slow
def test_raft_early_ack_is_caught_in_seconds(tmp_path: Path, no_leftovers: None) -> None:
    assert_caught(bug_run(tmp_path, "raft", "early-ack", 10, seed=1), "early-ack")


@pytest.mark.process
@pytest.mark.timeout(150)
@pytest.mark.slow  # the suite stays under 10 minutes
def test_paxos_stale_read_is_caught_in_seconds(tmp_path: Path, no_leftovers: None) -> None:
    assert_caught(bug_run(tmp_path, "paxos", "stale-read", 10, seed=1), "stale-read")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bugs", [["forget-vote"], []], ids=["forget-vote", "correct"])
def test_the_revote_script_catches_forget_vote_in_simulation(bugs: list[str]) -> None:
    """The same bug:forget-vote mix on the simulated cluster: deterministic, a
    few CPU-seconds; correct nodes under exactly the same faults stay valid."""
    from harness import simrun

    cfg = simrun.prepare(RunConfig(sim=True, system="raft", bugs=bugs, seed=2, time_limit=15,
                                   nemesis="bug:forget-vote", progress=False))
    out = simrun.simulate(cfg, metrics=False)
    assert out.verdict == ("invalid" if bugs else "valid"), (out.checker or {}).get("anomalies")
    shapes = [e["value"].get("shape") for e in out.events
              if e["process"] == "nemesis" and e["f"] == "partition"]
    assert "revote-move" in shapes


@pytest.mark.process
@pytest.mark.timeout(150)
@pytest.mark.slow  # real time: flakes under load; the simulated twin above is the default
def test_raft_forget_vote_is_caught_by_the_revote_script(tmp_path: Path,
                                                         no_leftovers: None) -> None:
    result = bug_run(tmp_path, "raft", "forget-vote", 15, seed=1)
    assert_caught(result, "forget-vote")
    shapes = [v.get("shape") for f, v in nemesis_events(result) if f == "partition"]
    assert "revote-move" in shapes


@pytest.mark.process
@pytest.mark.timeout(150)
@pytest.mark.slow  # the suite stays under 10 minutes
def test_paxos_forget_promise_is_caught_by_the_repromise_script(tmp_path: Path,
                                                                no_leftovers: None) -> None:
    assert_caught(bug_run(tmp_path, "paxos", "forget-promise", 15, seed=1), "forget-promise")


@pytest.mark.process
@pytest.mark.timeout(150)
@pytest.mark.slow  # the suite stays under 10 minutes
def test_correct_raft_under_the_early_ack_mix_is_valid(tmp_path: Path,
                                                       no_leftovers: None) -> None:
    result = bug_run(tmp_path, "raft", None, 10, seed=1, mix="early-ack")
    assert result.config.bugs == [] and result.config.nemesis == "bug:early-ack"
    assert result.exit_code == 0, (result.anomalies[:1], result.results.get("notes"))
    kinds = {f for f, _v in nemesis_events(result)}
    assert {"partition", "partition-end"} <= kinds


CASES = [(name, system) for name in zoo.names() for system in zoo.get(name).systems]
CASE_IDS = [f"{b}-{s}" for b, s in CASES]


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(200)
@pytest.mark.parametrize("bug, system", CASES, ids=CASE_IDS)
def test_every_bug_is_caught_within_a_minute(tmp_path: Path, no_leftovers: None, bug: str,
                                             system: str) -> None:
    assert_caught(bug_run(tmp_path, system, bug, 60, seed=1), bug)


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(200)
@pytest.mark.parametrize("bug, system", CASES, ids=CASE_IDS)
def test_correct_nodes_under_every_mix_are_valid(tmp_path: Path, no_leftovers: None, bug: str,
                                                 system: str) -> None:
    result = bug_run(tmp_path, system, None, 60, seed=1, mix=bug)
    assert result.exit_code == 0, (result.anomalies[:1], result.results.get("notes"))


@pytest.mark.timeout(30)
def test_lease_read_mix_cuts_the_leader_off_while_its_clock_drifts() -> None:
    events, _cluster, net = drive_mix("lease-read", 1.5, interval=0.5)
    kinds = [f for f, _v in events]
    assert kinds[:4] == ["clock", "partition", "partition-end", "clock-end"], kinds
    assert events[0][1] == {"node": "n3", "mode": "drift", "rate": mixes.DRIFT_RATE}
    assert events[1][1]["shape"] == "leader" and len(events[1][1]["grudge"]["n3"]) == 4
    assert mixes.get_mix("bug:lease-read").kinds() == ("clock",), "the runner sets faketime up"
    balanced(events)
    assert net.grudge == {}


def test_zoo_first_anomaly_counts_a_durability_finding_at_its_time() -> None:
    """A run caught only by a durability finding (no operations, an int time in
    ns) still has a first-anomaly time; with an op's anomaly too, the earlier wins."""
    from types import SimpleNamespace

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bug_zoo import first_anomaly_s

    finding = {"kind": "refused-after-power-loss", "key": None, "node": "n2",
               "time": 7_500_000_000, "ops": [], "sentence": "n2 refused to start"}
    run = SimpleNamespace(verdict="valid", anomalies=[finding], operations=[])
    assert first_anomaly_s(run) == 7.5  # type: ignore[arg-type]
    op = SimpleNamespace(start=1_000_000_000, end=2_000_000_000)
    both = SimpleNamespace(verdict="valid", anomalies=[finding, {"key": "k", "ops": [0]}],
                           operations=[op])
    assert first_anomaly_s(both) == 2.0  # type: ignore[arg-type]
    none = SimpleNamespace(verdict="valid", anomalies=[], operations=[op])
    assert first_anomaly_s(none) is None  # type: ignore[arg-type]
