"""The nemesis schedule against fake process control and a fake network.

These check the bookkeeping (seeded, recorded, healed); tests/test_faults_process.py
checks that the faults really happen to real processes.
"""

from __future__ import annotations

import asyncio
import importlib
import random
from typing import Any

import pytest

from faults.api import LINK_FAULTS, ClusterHandle, NemesisContext, NetworkControl, link_faults_of
from faults.schedule import NemesisSpecError, NoNemesis, build_nemesis, parse_spec

pytestmark = pytest.mark.timeout(30)


class FakeCluster:
    def __init__(self, n: int = 5) -> None:
        self.node_ids = [f"n{i}" for i in range(1, n + 1)]
        self.state = {x: "running" for x in self.node_ids}
        self.calls: list[tuple[str, str]] = []

    def _do(self, op: str, node: str, state: str) -> None:
        self.calls.append((op, node))
        self.state[node] = state

    def kill(self, node: str) -> None:
        self._do("kill", node, "dead")

    def start(self, node: str) -> None:
        self._do("start", node, "running")

    def pause(self, node: str) -> None:
        self._do("pause", node, "paused")

    def resume(self, node: str) -> None:
        self._do("resume", node, "running")

    def pid(self, node: str) -> int | None:
        return None if self.state[node] == "dead" else 1000 + self.node_ids.index(node)

    def is_running(self, node: str) -> bool:
        return self.state[node] != "dead"


class FakeNet:
    def __init__(self) -> None:
        self.grudge: dict[str, Any] = {}
        self.links: Any = None

    def set_grudge(self, grudge: dict[str, Any]) -> None:
        self.grudge = grudge

    def set_links(self, faults: dict[str, Any] | None, links: Any = "all") -> None:
        self.links = (faults, links)

    def heal(self) -> None:
        self.grudge, self.links = {}, None


def context(seed: int, interval: float = 0.04, net: bool = True) -> tuple[NemesisContext, list]:
    events: list[tuple[str, Any]] = []

    async def leader() -> str | None:
        return "n3"

    ctx = NemesisContext(
        cluster=FakeCluster(),
        proxy_control=None,
        record=lambda f, v, **kw: events.append((f, v)),
        rng=random.Random(seed),
        leader=leader,
        interval_s=interval,
        network=FakeNet() if net else None,
    )
    return ctx, events


async def run_for(spec: str, ctx: NemesisContext, seconds: float) -> None:
    nem = build_nemesis(spec, ctx)
    stop = asyncio.Event()
    task = asyncio.create_task(nem.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)
    await nem.heal()


def test_fakes_satisfy_the_protocols() -> None:
    assert isinstance(FakeCluster(), ClusterHandle)
    assert isinstance(FakeNet(), NetworkControl)


def test_spec_parsing() -> None:
    assert parse_spec("", network=True) == ("kill", "pause", "partition", "net")
    assert parse_spec("hunt", network=False) == ("kill", "pause")
    assert parse_spec("all", network=True) == ("kill", "pause", "partition", "net")
    assert parse_spec("none", network=True) == ()
    assert parse_spec("kill, pause,kill", network=False) == ("kill", "pause")
    with pytest.raises(NemesisSpecError, match="unknown nemesis 'clockz'"):
        parse_spec("kill,clockz", network=True)
    with pytest.raises(NemesisSpecError, match="needs --net proxy"):
        parse_spec("partition", network=False)


def test_none_does_nothing() -> None:
    ctx, events = context(1)
    assert isinstance(build_nemesis("none", ctx), NoNemesis)
    asyncio.run(run_for("none", ctx, 0.1))
    assert events == []


def test_every_start_has_an_end_with_the_same_value_and_all_is_healed() -> None:
    ctx, events = context(7)
    asyncio.run(run_for("all", ctx, 1.5))
    starts = [(f, v) for f, v in events if not f.endswith("-end")]
    ends = [(f[:-4], v) for f, v in events if f.endswith("-end")]
    assert len(starts) >= 5, events
    assert sorted(map(repr, starts)) == sorted(map(repr, ends)), "each fault ends exactly once"
    kinds = {f for f, _ in starts}
    assert kinds == {"kill", "pause", "partition", "net"}, kinds
    cluster: FakeCluster = ctx.cluster  # type: ignore[assignment]
    assert set(cluster.state.values()) == {"running"}
    assert ctx.network.grudge == {} and ctx.network.links is None  # type: ignore[union-attr]
    # one fault at a time: an end always comes before the next start
    open_ = 0
    for f, _ in events:
        open_ += -1 if f.endswith("-end") else 1
        assert open_ in (0, 1)


def test_same_seed_same_schedule() -> None:
    def trace(seed: int) -> list:
        ctx, events = context(seed, interval=0.03)
        asyncio.run(run_for("all", ctx, 0.8))
        return events

    a, b = trace(11), trace(11)
    n = min(len(a), len(b))
    assert n >= 6 and a[: n - 2] == b[: n - 2]
    assert trace(12)[:6] != a[:6]


def test_values_follow_the_interface_formats() -> None:
    ctx, events = context(3)
    asyncio.run(run_for("all", ctx, 2.0))
    for f, v in events:
        kind = f.removesuffix("-end")
        if kind in ("kill", "pause"):
            assert isinstance(v, list) and v and set(v) <= set(ctx.cluster.node_ids)
        elif kind == "partition":
            assert set(v) == {"shape", "oneway", "grudge"}
            assert all(isinstance(s, list) for s in v["grudge"].values())
        else:
            assert "links" in v and ("loss" in v or "delay_ms" in v)


def test_heal_mid_fault_ends_it() -> None:
    ctx, events = context(5, interval=0.2)

    async def go() -> None:
        nem = build_nemesis("kill", ctx)
        stop = asyncio.Event()
        task = asyncio.create_task(nem.run(stop))
        while not events:
            await asyncio.sleep(0.005)
        stop.set()
        await task
        killed = events[-1][1]
        assert all(ctx.cluster.state[x] == "dead" for x in killed)  # type: ignore[attr-defined]
        await nem.heal()
        await nem.heal()  # idempotent
        assert events[-1] == ("kill-end", killed)
        assert set(ctx.cluster.state.values()) == {"running"}  # type: ignore[attr-defined]

    asyncio.run(go())
    assert [f for f, _ in events] == ["kill", "kill-end"]


def test_leader_target_uses_the_leader() -> None:
    ctx, _ = context(0)

    async def go() -> None:
        from faults.process import ProcessFaults

        pf = ProcessFaults(ctx)
        assert await pf.targets("leader") == ["n3"]
        for t, k in [("one", 1), ("minority", 2), ("majority", 3), ("all", 5)]:
            assert len(await pf.targets(t)) == k

    asyncio.run(go())


def test_net_faults_stay_within_what_the_backend_supports() -> None:
    ctx, events = context(2, interval=0.03)
    ctx.network.link_faults = ("loss",)  # type: ignore[union-attr]  # like NetnsNetwork
    asyncio.run(run_for("net", ctx, 0.6))
    values = [v for f, v in events if f == "net"]
    assert values and all(set(v) == {"links", "loss"} for v in values), values


class LossOnlyNet(FakeNet):
    """A network that can drop messages but not delay them (like netns)."""

    link_faults = ("loss",)

    def set_links(self, faults: dict[str, Any] | None, links: Any = "all") -> None:
        if faults and set(faults) - {"loss"}:
            raise AssertionError(f"a loss-only network was asked for {sorted(faults)}")
        super().set_links(faults, links)


def test_link_faults_of_says_what_a_backend_can_apply() -> None:
    assert link_faults_of(None) == ()
    assert link_faults_of(FakeNet()) == LINK_FAULTS
    assert link_faults_of(LossOnlyNet()) == ("loss",)


def test_a_loss_only_network_gets_only_loss() -> None:
    ctx, events = context(seed=3)
    ctx.network = LossOnlyNet()
    asyncio.run(run_for("net", ctx, 0.5))
    nets = [v for f, v in events if f == "net"]
    assert nets, "no net fault in 0.5 s"
    assert all(set(v) == {"links", "loss"} for v in nets), nets


@pytest.mark.parametrize(("bug", "move"), [("forget-vote", "revote"),
                                           ("commit-old-term", "figure-8")])
def test_a_move_that_needs_delay_rests_on_a_loss_only_network(bug: str, move: str) -> None:
    from faults import mixes
    from faults.plan import ClusterView

    player = mixes.MixPlayer(mixes.get_mix(f"bug:{bug}"), random.Random(1), 1.0, ("loss",))
    player.view = ClusterView(("n1", "n2", "n3", "n4", "n5"), "n3", ("loss",),
                              {"n3": {"role": "leader", "term": 2}}, now=3.0)
    module, fn = mixes.SCRIPTED[move]
    steps = list(getattr(importlib.import_module(module), fn)(player, 0.2))
    assert steps == [], "it must not start anything: the window's end is its rest"
    # the whole demonstration on a loss-only network: nothing but calm
    ctx, events = context(seed=1, interval=0.1)
    ctx.network = LossOnlyNet()
    asyncio.run(run_for(f"bug:{bug}", ctx, 0.5))
    assert events == [], events


# --- overlapping operations and reactive plans in the interpreter -------------------


class ScriptedPlan:
    """A fixed list of operations (control ops too), each resolved as given; the
    views it was sent are kept, with the network's state when each came."""

    def __init__(self, ops: list[dict[str, Any]], net: Any) -> None:
        self.ops = list(ops)
        self.net = net
        self.seen: list[tuple[float, Any, Any]] = []

    def next(self, view: Any = None) -> dict[str, Any] | None:
        self.seen.append((view.now if view is not None else -1.0,
                          {d: sorted(s) for d, s in self.net.grudge.items()}, self.net.links))
        return self.ops.pop(0) if self.ops else None

    def resolve(self, op: dict[str, Any], view: Any) -> dict[str, Any]:
        return op


def test_overlapping_operations_are_carried_together_and_healed() -> None:
    from faults.interpret import Interpreter

    ctx, events = context(seed=1)
    net: FakeNet = ctx.network  # type: ignore[assignment]
    cluster: FakeCluster = ctx.cluster  # type: ignore[assignment]
    a = {"shape": "one", "oneway": False, "grudge": {"n1": ["n2", "n3"], "n2": ["n1"],
                                                      "n3": ["n1"]}}
    b = {"shape": "x", "oneway": True, "grudge": {"n4": ["n5"]}}
    c = {"shape": "y", "oneway": True, "grudge": {"n5": ["n4"]}}
    loss = {"links": "all", "loss": 0.2}
    plan = ScriptedPlan([
        {"f": "partition", "target": "one", "value": a, "at": 0.05, "hold": 0.4, "id": 1},
        {"f": "kill", "target": "one", "value": ["n1"], "at": 0.1, "hold": 0.18},  # inside it
        {"f": "partition", "target": "x", "value": b, "at": 0.15, "hold": None, "id": 2},
        {"f": "wait", "at": 0.2},
        {"f": "net", "target": "all", "value": loss, "at": 0.25, "hold": None, "id": 3},
        {"f": "partition", "target": "y", "value": c, "at": 0.3, "hold": None, "id": 4,
         "replaces": 2},
        {"f": "end", "ref": 3, "at": 0.35},
        {"f": "pause", "target": "one", "value": ["n2"], "at": 0.4, "hold": 5.0},  # past the heal
    ], net)
    nem = Interpreter(plan, ctx, net)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(nem.run(stop))
        await asyncio.sleep(0.6)
        assert cluster.state["n2"] == "paused"
        stop.set()
        await task
        await nem.heal()

    asyncio.run(go())
    got = [(f, v if not isinstance(v, dict) else v.get("shape", v.get("links"))) for f, v in events]
    assert got == [
        ("partition", "one"), ("kill", ["n1"]), ("partition", "x"), ("net", "all"),
        ("kill-end", ["n1"]), ("partition-end", "x"), ("partition", "y"), ("net-end", "all"),
        ("pause", ["n2"]), ("partition-end", "one"), ("partition-end", "y"),
        ("pause-end", ["n2"])], got
    # what the network carried when the plan was asked next (after each step)
    grudges = [g for _t, g, _l in plan.seen]
    union = {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"], "n4": ["n5"]}
    assert union in grudges, "two partitions at once: the union"
    assert {**union, "n4": [], "n5": ["n4"]} in grudges or \
        {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"], "n5": ["n4"]} in grudges, "replaced"
    assert any(links == (None, "all") for *_x, links in plan.seen[-3:]), "the net op ended"
    assert [t for t, *_x in plan.seen] == sorted(t for t, *_x in plan.seen), "time order"
    assert net.grudge == {} and net.links is None
    assert set(cluster.state.values()) == {"running"}, "heal ends what the plan left"


def test_the_interpreter_compares_the_nodes_agreement_chains_and_records_a_divergence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each view's statuses, the sampler's and the heal's last round feed the
    agreement watch (faults/agreement.py); n3 reports another hash at index 64."""
    import dataclasses

    from faults import interpret
    from faults.agreement import EVENT
    from faults.interpret import Interpreter

    monkeypatch.setattr(interpret, "AGREE_EVERY_S", 0.05)
    ctx, _ = context(seed=1)
    recorded: list[tuple[str, Any, dict[str, Any]]] = []
    asked: list[str] = []

    async def status(node: str) -> dict[str, Any] | None:
        asked.append(node)
        h = "bb" * 8 if node == "n3" and len(asked) > 12 else "aa" * 8
        return {"pid": 100, "agree": {"applied": 64, "hash": h, "marks": [[64, h]]}}

    ctx = dataclasses.replace(ctx, status=status,
                              record=lambda f, v, **kw: recorded.append((f, v, kw)))
    nem = Interpreter(ScriptedPlan([{"f": "wait", "at": 5.0}], ctx.network), ctx, ctx.network)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(nem.run(stop))
        await asyncio.sleep(0.3)
        stop.set()
        await task
        await nem.heal()

    asyncio.run(go())
    assert len(asked) > 5 * 4  # the first view, the sampler's rounds, the heal's
    (_f, value, fields), = [r for r in recorded if r[0] == EVENT]
    assert value == {"index": 64, "nodes": ["n1", "n3"]} and "at" not in fields
    assert [r["hash"] for r in fields["evidence"]["reports"]] == ["aa" * 8, "bb" * 8]
