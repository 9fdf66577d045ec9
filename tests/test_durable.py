"""Durable state across restarts (faults/durable.py): a node that restarts from a lower
term, a forgotten vote or a lower Paxos promise than it reported is a finding
(faults/findings.py ``durable-state-lost``), in both interpreters.

The unit tests feed the watch statuses and the finding recorded events; the
interpreter test feeds the real interpreter's views from fake statuses; the
simulated ones run one seed of the real zoo's shape with forget-promise on (an
acceptor forgets its promise) and with correct nodes; the process tests kill
and restart real nodes, correct and forgetful, and hold what each reported
before against what it restarted from: the driver's side of the soundness
argument (it answers ``status`` only once the state is on disk).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from testkit.watching import status_interpreter, zoo_shape

from faults import findings
from faults.durable import EVENT, LIMIT, DurableWatch, covers
from harness import simrun
from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster
from nodes.common.wire import call
from reports.ledger import anomaly_kind

pytestmark = pytest.mark.timeout(120)


def raft(term: int, vote: str | None, pid: int, restored: tuple[int, str | None]) -> dict:
    return {"role": "follower", "term": term, "voted_for": vote, "pid": pid,
            "restored": {"term": restored[0], "vote": restored[1]}}


def paxos(ballot: tuple[int, str], pid: int, restored: tuple[int, str]) -> dict:
    return {"role": "follower", "ballot": ballot[0], "ballot_node": ballot[1],
            "voted_for": ballot[1] or None, "pid": pid, "restored": {"ballot": list(restored)}}


def test_the_order_keeps_a_vote_within_its_term_and_orders_paxos_ballots_whole() -> None:
    assert covers(("raft", 5, None), ("raft", 4, "n2"))  # a later term
    assert covers(("raft", 4, "n2"), ("raft", 4, None))  # voted since
    assert covers(("raft", 4, "n2"), ("raft", 4, "n2"))
    assert not covers(("raft", 4, None), ("raft", 4, "n2"))  # the vote forgotten
    assert not covers(("raft", 4, "n3"), ("raft", 4, "n2"))  # and cast again
    assert not covers(("raft", 3, "n2"), ("raft", 4, None))  # the term went back
    assert covers(("paxos", 3, "n4"), ("paxos", 3, "n2"))  # a higher ballot of one round
    assert not covers(("paxos", 3, "n2"), ("paxos", 3, "n4"))
    assert not covers(("paxos", 0, ""), ("paxos", 1, "n1"))


def test_a_restart_from_what_was_reported_or_more_is_no_finding() -> None:
    w = DurableWatch()
    assert w.observe("n1", 10, raft(0, None, 10, (0, None))) == []  # first start: nothing before
    assert w.observe("n1", 10, raft(3, "n2", 10, (0, None))) == []  # the same incarnation
    assert w.observe("n1", 11, raft(3, "n2", 11, (3, "n2"))) == []  # restarted from it
    assert w.observe("n1", 12, raft(5, None, 12, (4, None))) == []  # from more than it said
    assert w.observe("n2", 20, {"role": "follower", "pid": 20}) == []  # no state: remembered only
    assert w.observe("n3", None, raft(2, "n3", None, (0, None))) == []  # no pid: never checked
    assert w.events == 0


def test_a_forgotten_vote_a_lower_term_and_a_lower_promise_are_one_event_per_incarnation() -> None:
    w = DurableWatch()
    w.observe("n1", 10, raft(4, "n2", 10, (0, None)))
    (ev,) = w.observe("n1", 11, raft(4, None, 11, (4, None)))
    assert ev["value"] == {"node": "n1", "before": {"term": 4, "vote": "n2"},
                           "after": {"term": 4, "vote": None}}
    assert ev["evidence"]["reports"] == [
        {"node": "n1", "pid": 10, "term": 4, "vote": "n2"},
        {"node": "n1", "pid": 11, "restored": True, "term": 4, "vote": None}]
    assert w.observe("n1", 11, raft(4, None, 11, (4, None))) == []  # asked again: once
    # A stale reply of the dead incarnation, read late, proves nothing new.
    assert w.observe("n1", 10, raft(4, "n2", 10, (0, None))) == []
    w.observe("n2", 20, raft(6, None, 20, (0, None)))
    (ev,) = w.observe("n2", 21, raft(5, "n2", 21, (5, "n2")))
    assert ev["value"]["before"] == {"term": 6, "vote": None}
    w.observe("n3", 30, paxos((3, "n2"), 30, (0, "")))
    (ev,) = w.observe("n3", 31, paxos((0, ""), 31, (0, "")))
    assert ev["value"]["after"] == {"ballot": [0, ""]}
    for pid in range(40, 40 + 2 * LIMIT):
        w.observe("n4", pid, raft(9, "n4", pid, (1, None)))
    assert w.events == LIMIT


def _durable_end(node: str, t: float, paxos_node: bool = False) -> dict[str, Any]:
    before, after = (({"ballot": [3, "n2"]}, {"ballot": [0, ""]}) if paxos_node
                     else ({"term": 4, "vote": "n2"}, {"term": 4, "vote": None}))
    return {"process": "nemesis", "type": "info", "f": EVENT, "time": int(t * 1e9),
            "value": {"node": node, "before": before, "after": after},
            "evidence": {"reports": [{"node": node, "pid": 1, **before},
                                     {"node": node, "pid": 2, "restored": True, **after}]}}


def test_a_lost_state_makes_any_verdict_invalid_once_per_node_and_names_its_kind() -> None:
    events = [_durable_end("n3", 12.34), _durable_end("n3", 20.0), _durable_end("n1", 30, True)]
    a, b = findings.lost_state(events)
    assert (a["finding"], a["kind"], a["node"]) == ("durable state lost", "durable-state-lost", "n3")
    assert ("n3 (pid 1) reported term 4 with its vote for n2, but restarted (pid 2) it began "
            "from term 4 with no vote (seen at 12.3 s)") in a["sentence"]
    assert "reported ballot (3, n2), but restarted (pid 2) it began from ballot (0, -)" \
        in b["sentence"]
    v, c = findings.apply("valid", {"valid": True, "model": "kv", "anomalies": []}, events)
    assert v == "invalid" and anomaly_kind(c) == "durable-state-lost" and c["findings"] == 2
    assert findings.lost_state([{**events[0], "evidence": {"reports": []}}]) == []


def test_a_node_damaged_by_corrupt_is_left_out_from_then_on() -> None:
    corrupt = {"process": "nemesis", "type": "info", "f": "corrupt", "time": 5_000_000_000,
               "value": {"nodes": ["n3"], "mode": "flip", "file": "random"}}
    assert findings.lost_state([corrupt, _durable_end("n3", 9)]) == []
    assert [f["node"] for f in findings.lost_state([_durable_end("n3", 1), corrupt])] == ["n3"]


def test_the_real_interpreter_records_a_lost_state_from_the_statuses_it_asks_for() -> None:
    now = {"n1": raft(2, "n1", 100, (0, None)), "n2": raft(2, "n1", 200, (0, None))}
    recorded: list[tuple[str, Any, dict[str, Any]]] = []
    nemesis = status_interpreter(lambda node: now[node], recorded, ("n1", "n2"))
    asyncio.run(nemesis.view())
    now["n2"] = raft(2, None, 201, (2, None))  # n2 restarted without its vote
    asyncio.run(nemesis.view())
    asyncio.run(nemesis.view())
    assert [(f, v["node"]) for f, v, _ in recorded] == [(EVENT, "n2")]


def test_a_simulated_acceptor_that_forgets_its_promise_is_found_and_correct_ones_are_not(
        tmp_path: Path) -> None:
    bad = simrun.simulate(zoo_shape(tmp_path, "paxos", ["forget-promise"], 3), metrics=False)
    lost = findings.lost_state(bad.events)
    assert bad.verdict == "invalid" and lost, "seed 3 of the zoo's shape restarts an acceptor"
    assert lost[0]["after"]["ballot"][0] < lost[0]["before"]["ballot"][0]
    for system in ("paxos", "raft"):
        good = simrun.simulate(zoo_shape(tmp_path, system, [], 3), metrics=False)
        assert any(e.get("f") == "kill" for e in good.events), "the schedule restarts nodes"
        assert good.verdict == "valid" and not findings.lost_state(good.events)


# -- real processes: the driver reports only what is on its disk ---------------------------

def _statuses(lc: LocalCluster) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 20
    while len(out) < len(lc.node_ids) and time.monotonic() < deadline:
        for n in lc.node_ids:
            st = call(lc.client_addrs[n], {"op": "status"}, 0.5)
            if st and st.get("ok"):
                out[n] = st
        time.sleep(0.02)
    assert len(out) == len(lc.node_ids), f"not every node answered: {out}"
    return out


def _leader(lc: LocalCluster) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(st.get("role") == "leader" for st in _statuses(lc).values()):
            return
        time.sleep(0.05)
    raise AssertionError("no leader within 20 s")


@pytest.mark.process
@pytest.mark.timeout(90)
@pytest.mark.parametrize("system,bugs", [("raft", []), ("paxos", []),
                                         ("paxos", ["forget-promise"])])
def test_real_nodes_restart_from_what_they_reported_unless_they_forget(
        tmp_path: Path, system: str, bugs: list[str]) -> None:
    cj = write_cluster(tmp_path, 3, options={"bugs": bugs})
    lc = LocalCluster(cj, [sys.executable, "-m", "nodes", system], tmp_path / "logs")
    try:  # close() ends every process it started, by PID, even if the test failed
        lc.start_all()
        lc.wait_ready(30)
        _leader(lc)
        w = DurableWatch()
        before = _statuses(lc)
        for n, st in before.items():
            assert w.observe(n, st["pid"], st) == []
        for n in lc.node_ids:  # all at once: no node moves on after its status was read
            lc.kill(n)
        for n in lc.node_ids:
            lc.start(n)
        lc.wait_ready(30)
        after = _statuses(lc)
        assert all(after[n]["pid"] != before[n]["pid"] for n in lc.node_ids)
        lost = [ev for n, st in after.items() for ev in w.observe(n, st["pid"], st)]
    finally:
        lc.close()
    if bugs:  # every acceptor promised the leader's ballot, and forgot it
        assert sorted(ev["value"]["node"] for ev in lost) == sorted(lc.node_ids)
        assert all(ev["value"]["after"] == {"ballot": [0, ""]} for ev in lost)
    else:
        assert lost == [], f"a correct {system} node restarted from less than it reported"
        assert all(after[n]["restored"] for n in lc.node_ids)
