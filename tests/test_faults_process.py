"""Faults on real node processes, each observed from outside.

- a paused node stops answering and answers again after the heal;
- a killed node's PID is gone and a new process serves on the same data;
- a partitioned minority cannot commit while the majority can, through the
  proxy and (as root) through namespaces and nftables;
- the whole nemesis on a live cluster: every fault recorded and healed,
  and the cluster serves afterwards;
- nothing is left behind.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import psutil
import pytest
from testkit.livecluster import (
    commit_via,
    leader_of,
    status,
)

from faults.api import NemesisContext
from faults.partition import isolate
from faults.process import ProcessFaults
from faults.proxyctl import ProxyControl
from faults.schedule import build_nemesis
from harness.cluster import LocalCluster

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

def context(lc: LocalCluster, events: list, seed: int = 1, interval: float = 1.0,
            network: Any = None) -> NemesisContext:
    async def leader() -> str | None:
        for n in lc.node_ids:
            st = status(lc, n, 0.2)
            if st and st.get("role") == "leader":
                return n
        return None

    return NemesisContext(
        cluster=lc, proxy_control=lc.proxy_control,
        record=lambda f, v, **kw: events.append((f, v)), rng=random.Random(seed),
        leader=leader, interval_s=interval, network=network,
    )


def test_a_paused_node_stops_answering_and_answers_again(cluster: LocalCluster) -> None:
    events: list = []
    faults = ProcessFaults(context(cluster, events))
    assert status(cluster, "n2") is not None
    asyncio.run(faults.pause(["n2"]))
    assert psutil.Process(cluster.pid("n2")).status() == psutil.STATUS_STOPPED
    assert status(cluster, "n2", timeout=0.5) is None, "a paused node must not answer"
    asyncio.run(faults.resume())
    deadline = time.monotonic() + 10
    while status(cluster, "n2") is None:
        assert time.monotonic() < deadline, "the resumed node never answered"
    assert events == [("pause", ["n2"]), ("pause-end", ["n2"])]


def test_a_killed_node_is_gone_and_a_new_process_serves(cluster: LocalCluster) -> None:
    leader = leader_of(cluster, cluster.node_ids)
    assert commit_via(cluster, [leader], "k", "before", 10)
    events: list = []
    faults = ProcessFaults(context(cluster, events))
    old = cluster.pid("n1")
    assert old is not None
    asyncio.run(faults.kill(["n1"]))
    assert not psutil.pid_exists(old), "SIGKILL must end the process"
    assert status(cluster, "n1", timeout=0.3) is None
    asyncio.run(faults.restart())
    new = cluster.pid("n1")
    assert new is not None and new != old
    deadline = time.monotonic() + 15
    while True:  # the restarted node recovered its log from the same data dir
        st = status(cluster, "n1")
        if st and st.get("commit_index", 0) >= 1:
            break
        assert time.monotonic() < deadline, f"restarted n1 never caught up: {st}"
        time.sleep(0.05)
    assert events == [("kill", ["n1"]), ("kill-end", ["n1"])]


def test_a_partitioned_minority_cannot_commit_while_the_majority_can(
    cluster: LocalCluster,
) -> None:
    proxy = ProxyControl(cluster.proxy_control)  # type: ignore[arg-type]
    leader = leader_of(cluster, cluster.node_ids)
    # cut the current leader off: it is the minority, the other two the majority
    grudge = isolate(cluster.node_ids, leader, random.Random(0))
    assert proxy.set_grudge(grudge)["grudge"] == {k: sorted(v) for k, v in grudge.items()}
    majority = [n for n in cluster.node_ids if n != leader]
    assert commit_via(cluster, majority, "k", "majority", 15), "the majority must commit"
    assert not commit_via(cluster, [leader], "k", "minority", 2.0), "the minority must not"
    counters = proxy.counters()["links"]
    assert sum(counters[f"{leader}->{m}"]["dropped"] for m in majority) > 0
    proxy.heal()
    assert proxy.state()["grudge"] == {}
    assert commit_via(cluster, cluster.node_ids, "k", "healed", 15)


def test_a_oneway_partition_blocks_one_direction_between_real_nodes(
    cluster: LocalCluster,
) -> None:
    proxy = ProxyControl(cluster.proxy_control)  # type: ignore[arg-type]
    leader = leader_of(cluster, cluster.node_ids)
    others = [n for n in cluster.node_ids if n != leader]
    # the others cannot hear the leader; the leader still hears them
    proxy.set_grudge({n: [leader] for n in others})
    proxy.counters(reset=True)
    deadline = time.monotonic() + 10
    while True:
        c = proxy.counters()["links"]
        cut = sum(c[f"{leader}->{n}"]["delivered"] for n in others)
        heard = sum(c[f"{n}->{leader}"]["delivered"] for n in others)
        dropped = sum(c[f"{leader}->{n}"]["dropped"] for n in others)
        if dropped > 0 and heard > 0:
            break
        assert time.monotonic() < deadline, f"no traffic seen: {c}"
        time.sleep(0.1)
    assert cut == 0, "nothing crosses the cut direction"
    # the others, deaf to the leader, elect one of their own and commit without it
    assert commit_via(cluster, others, "k", "others", 15)
    proxy.heal()


def test_the_nemesis_on_a_live_cluster_records_and_heals_everything(
    cluster: LocalCluster,
) -> None:
    events: list = []
    ctx = context(cluster, events, seed=4, interval=0.8)
    nem = build_nemesis("kill,pause,partition,net", ctx)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(nem.run(stop))
        await asyncio.sleep(5)
        stop.set()
        await task
        await nem.heal()

    asyncio.run(go())
    starts = sorted(repr((f, v)) for f, v in events if not f.endswith("-end"))
    ends = sorted(repr((f[:-4], v)) for f, v in events if f.endswith("-end"))
    assert len(starts) >= 3 and starts == ends, events
    assert all(cluster.is_running(n) and not cluster.is_paused(n) for n in cluster.node_ids)
    state = ProxyControl(cluster.proxy_control).state()  # type: ignore[arg-type]
    assert state["grudge"] == {} and state["default"] is None and state["links"] == []
    assert commit_via(cluster, cluster.node_ids, "k", "after", 20), "the cluster serves again"


# --- the same partition at kernel level ---------------------------------------------


def test_netns_minority_cannot_commit_while_the_majority_can(
    netns_cluster: tuple[LocalCluster, Any],
) -> None:
    lc, nets = netns_cluster
    assert all(str(nets.addr(n)) in lc.client_addrs[n] for n in lc.node_ids)
    leader = leader_of(lc, lc.node_ids)
    net = nets.network()
    state = net.set_grudge(isolate(lc.node_ids, leader, random.Random(0)))
    assert set(state["grudge"]) == set(lc.node_ids)
    majority = [n for n in lc.node_ids if n != leader]
    assert commit_via(lc, majority, "k", "majority", 20), "the majority must commit"
    assert not commit_via(lc, [leader], "k", "minority", 2.0), "the minority must not"
    net.heal()
    assert commit_via(lc, lc.node_ids, "k", "healed", 20)
