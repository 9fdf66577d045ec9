"""Election safety (faults/election.py): two nodes that say they led one Raft term are
a finding (faults/findings.py ``two-leaders``), in both interpreters.

The unit tests feed the watch status fields and the finding recorded events;
the interpreter test feeds the real interpreter's views from fake statuses;
the simulated ones run one seed of the real zoo's shape with forget-vote on
(a restarted node forgets its vote) and with correct nodes, and check that
only the buggy run is found and that the raft core reports what it won.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from testkit.watching import status_interpreter, zoo_shape

from faults import findings
from faults.election import EVENT, LIMIT, ElectionWatch
from harness import simrun
from reports.ledger import anomaly_kind

pytestmark = pytest.mark.timeout(120)


def test_one_node_that_led_a_term_in_several_incarnations_is_no_finding() -> None:
    w = ElectionWatch()
    assert w.observe("n1", 10, [2, 5]) == []
    assert w.observe("n1", 11, [5]) == []  # restarted, reports its old win again
    assert w.observe("n2", 12, [3, 6]) == []
    assert w.observe("n3", 13, None) == [] and w.observe("n3", 13, ["5", -1, 0]) == []
    assert w.events == 0


def test_a_second_node_leading_a_term_is_one_event_per_term_with_both_claims() -> None:
    w = ElectionWatch()
    w.observe("n1", 10, [4])
    (ev,) = w.observe("n3", 30, [2, 4])
    assert ev["value"] == {"term": 4, "nodes": ["n1", "n3"]}
    assert ev["evidence"]["reports"] == [{"node": "n1", "pid": 10, "term": 4},
                                         {"node": "n3", "pid": 30, "term": 4}]
    assert w.observe("n2", 20, [4]) == [] and w.observe("n3", 30, [4]) == []
    for term in range(5, 5 + 2 * LIMIT):
        w.observe("n1", 10, [term])
        w.observe("n2", 20, [term])
    assert w.events == LIMIT


def _election_end(term: int, a: str, b: str, t: float) -> dict[str, Any]:
    return {"process": "nemesis", "type": "info", "f": EVENT, "time": int(t * 1e9),
            "value": {"term": term, "nodes": sorted([a, b])},
            "evidence": {"reports": [{"node": a, "pid": 1, "term": term},
                                     {"node": b, "pid": 2, "term": term}]}}


def test_two_leaders_make_any_verdict_invalid_and_name_their_kind_for_the_ledger() -> None:
    events = [_election_end(7, "n4", "n2", 12.34)]
    (f,) = findings.two_leaders(events)
    assert (f["finding"], f["kind"], f["term"], f["nodes"]) == (
        "two leaders in one term", "two-leaders", 7, ["n2", "n4"])
    assert "n4 (pid 1) and n2 (pid 2) both became leader of term 7 (seen at 12.3 s)" \
        in f["sentence"]
    v, c = findings.apply("valid", {"valid": True, "model": "kv", "anomalies": []}, events)
    assert v == "invalid" and anomaly_kind(c) == "two-leaders" and c["findings"] == 1
    assert findings.two_leaders([{**events[0], "evidence": {"reports": []}}]) == []


def test_the_real_interpreter_records_two_leaders_from_the_statuses_it_asks_for() -> None:
    led = {"n1": [3], "n2": [], "n3": [3]}
    recorded: list[tuple[str, Any, dict[str, Any]]] = []
    nemesis = status_interpreter(
        lambda node: {"role": "follower", "term": 3, "pid": hash(node) % 1000, "led": led[node]},
        recorded, ("n1", "n2", "n3"))
    asyncio.run(nemesis.view())
    asyncio.run(nemesis.view())  # the same claims again: still one event
    assert [(f, v) for f, v, _ in recorded] == [(EVENT, {"term": 3, "nodes": ["n1", "n3"]})]


def test_a_simulated_node_that_forgets_its_vote_makes_two_leaders_and_correct_ones_do_not(
        tmp_path: Path) -> None:
    bad = simrun.simulate(zoo_shape(tmp_path, "raft", ["forget-vote"], 3), metrics=False)
    found = findings.two_leaders(bad.events)
    assert bad.verdict == "invalid" and found, "seed 3 of the zoo's shape elects twice"
    assert len(found[0]["nodes"]) == 2 and found[0]["term"] > 0
    good = simrun.simulate(zoo_shape(tmp_path, "raft", [], 3), metrics=False)
    assert good.verdict == "valid" and not findings.two_leaders(good.events)


def test_a_raft_core_reports_the_terms_it_won_newest_last_and_at_most_a_few() -> None:
    from testkit.raftkit import deliver_where, elect, new_net, raft

    from nodes.raft.core import LED_KEEP

    net, _ = new_net(seed=5, n=3)
    assert raft(net, "n1").status()["led"] == []
    won = []
    for k in range(LED_KEEP + 2):
        node, other = ("n1", "n2")[k % 2], ("n2", "n1")[k % 2]
        elect(net, node, [other, "n3"])
        won.append((node, raft(net, node).term))
        deliver_where(net, lambda *_: True, max_messages=50)  # the last leader steps down
        assert raft(net, other).role != "leader"
    for node in ("n1", "n2"):
        mine = [t for n, t in won if n == node]
        assert raft(net, node).status()["led"] == mine[-LED_KEEP:]
    assert raft(net, "n3").status()["led"] == []
