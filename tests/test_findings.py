"""Findings (faults/findings.py): a node that will not start again after a
kill or a power loss, and replicas whose agreement chains differ at one index
(faults/agreement.py), are anomalies, in the verdict, the report and the ledger.

The unit tests feed recorded nemesis events; the simulated ones run the same
power loss on correct and on no-fsync nodes (harness/simrun.py) and check that
only the node that never synced is found. The real-process twin is in
tests/test_disk.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faults import findings
from faults.agreement import EVENT, LIMIT, AgreementWatch
from harness import simrun
from harness.config import RunConfig
from reports.ledger import anomaly_kind

pytestmark = pytest.mark.timeout(120)


def _end(f: str, value: Any, t: float, **evidence: Any) -> dict[str, Any]:
    return {"process": "nemesis", "type": "info", "f": f, "value": value,
            "time": int(t * 1e9), "evidence": {"effective": True, **evidence}}


def test_a_node_that_refuses_after_a_power_loss_is_one_finding_with_its_line() -> None:
    events = [
        {"process": 0, "type": "invoke", "f": "write", "value": ["k1", 1], "time": 1},
        _end("lose-unsynced-end", ["n1", "n2"], 3.5,
             refused={"n2": "n2: meta file n2/meta is corrupt: only 0 bytes"}),
        _end("lose-unsynced-end", ["n2"], 9.0, refused={"n2": "again"}),  # once per node
        _end("kill-end", ["n3"], 12.0, crashed={"n3": {"exit_code": 1, "line": "Traceback"}}),
    ]
    found = findings.durability(events)
    assert [(a["kind"], a["node"], a["exit_code"]) for a in found] == [
        ("refused-after-power-loss", "n2", 2), ("refused-after-crash", "n3", 1)]
    assert "n2 refused to start after losing power" in found[0]["sentence"]
    assert "at 3.5 s" in found[0]["sentence"] and "only 0 bytes" in found[0]["sentence"]
    assert "n3 failed to start after being killed" in found[1]["sentence"]


def test_a_refusal_after_corruption_that_was_not_repaired_is_no_finding() -> None:
    events = [
        _end("corrupt-end", {"nodes": ["n1"], "mode": "zero", "file": "meta"}, 2.0,
             outcome="refused", repair="restored, but it still did not start (exit 2: x)"),
        _end("lose-unsynced-end", ["n1"], 5.0, refused={"n1": "n1: meta corrupt"}),
        _end("corrupt-end", {"nodes": ["n2"], "mode": "zero", "file": "meta"}, 6.0,
             outcome="refused", repair="restored"),
        _end("lose-unsynced-end", ["n2"], 8.0, refused={"n2": "n2: meta corrupt"}),
    ]
    assert [a["node"] for a in findings.durability(events)] == ["n2"]


def test_a_finding_makes_any_verdict_invalid_and_names_its_kind_for_the_ledger() -> None:
    events = [_end("lose-unsynced-end", ["n1"], 1.0, refused={"n1": "n1: bad"})]
    for verdict, checker in [("valid", {"valid": True, "model": "kv", "anomalies": []}),
                             ("unknown", None)]:
        v, c = findings.apply(verdict, checker, events)
        assert v == "invalid" and c is not None and c["valid"] is False
        assert anomaly_kind(c) == "refused-after-power-loss"
    stale = {"valid": False, "model": "kv", "anomalies": [{"kind": "non-linearizable"}]}
    v, c = findings.apply("invalid", stale, events)
    assert anomaly_kind(c) == "non-linearizable" and len(c["anomalies"]) == 2
    assert findings.apply("valid", {"valid": True}, []) == ("valid", {"valid": True})


POWER_LOSS = [{"f": "lose-unsynced", "at": 2.0, "hold": 0.3, "value": ["n1", "n2", "n3"]}]


def _config(system: str, bugs: tuple[str, ...], store: Path) -> RunConfig:
    return RunConfig(system=system, nodes=3, time_limit=4.0, seed=7, bugs=bugs,
                     store=str(store), sim=True)


def _power_loss_run(system: str, bugs: tuple[str, ...], store: Path) -> simrun.SimOutcome:
    """Every node loses power 2 s into the load, after its first election and votes."""
    cfg = simrun.prepare(_config(system, bugs, store))
    return simrun.simulate(cfg, faults=POWER_LOSS, metrics=False)


@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_only_the_node_that_never_synced_is_found_after_a_simulated_power_loss(
        system: str, tmp_path: Path) -> None:
    good = _power_loss_run(system, (), tmp_path)
    ends = [e for e in good.events if e.get("f") == "lose-unsynced-end"]
    assert ends and ends[0]["evidence"]["effective"] is True
    assert "refused" not in ends[0]["evidence"]
    assert good.verdict == "valid", good.checker
    bad = _power_loss_run(system, ("no-fsync",), tmp_path)
    assert bad.verdict == "invalid"
    assert anomaly_kind(bad.checker) in ("refused-after-power-loss", "non-linearizable")
    assert findings.durability(bad.events), "a no-fsync node came back from a power loss"


def test_the_run_folder_of_a_finding_says_not_durable_in_results_report_and_ledger(
        tmp_path: Path) -> None:
    from reports import ledger

    result = simrun.run(_config("raft", ("no-fsync",), tmp_path), faults=POWER_LOSS)
    assert result.verdict == "invalid" and result.exit_code == 1
    assert result.results["checker"]["anomalies"][0]["kind"] == "refused-after-power-loss"
    assert result.report is not None
    page = Path(result.report).read_text()
    assert "NOT DURABLE" in page and "did not come back" in page
    row = ledger.folder_row(tmp_path, Path(result.run_dir))
    assert row.anomaly == "refused-after-power-loss" and "refused-after-power-loss" in row.signature


# -- replicas diverged (faults/agreement.py) -----------------------------------------

def _applier_reports(plant: int | None) -> list[tuple[str, int, dict[str, Any] | None]]:
    """(node, pid, agree) as three replicas' statuses would give them over a run of 300
    entries, sampled every 40; with ``plant``, n2 applies another command at that index,
    and n3 restarts (a new pid) from a snapshot halfway."""
    from nodes.common.applier import Applier
    from nodes.common.core_api import Entry, Ready

    es = [Entry(i, 1, {"op": "write", "key": f"k{i % 2}", "value": i}) for i in range(1, 301)]
    bent = [Entry(e.index, e.term, {"op": "write", "key": "k0", "value": -1})
            if e.index == plant else e for e in es]
    nodes = {"n1": Applier("n1", None, 10_000), "n2": Applier("n2", None, 10_000),
             "n3": Applier("n3", None, 100)}
    pids = {"n1": 11, "n2": 12, "n3": 13}
    out: list[tuple[str, int, dict[str, Any] | None]] = []
    snap = None
    for i in range(0, 300, 40):
        for n, a in nodes.items():
            got = a.apply(Ready(committed=(bent if n == "n2" else es)[i:i + 40]))
            snap = got if n == "n3" and got is not None else snap
            out.append((n, pids[n], a.agreement()))
        if i == 160 and snap is not None:  # n3 is killed and starts from its snapshot
            nodes["n3"] = Applier("n3", snap, 100)
            nodes["n3"].apply(Ready(committed=es[snap.index:i + 40]))
            pids["n3"] = 23
    return out


def _watch(reports: list[tuple[str, int, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    watch = AgreementWatch()
    events = []
    for t, (node, pid, agree) in enumerate(reports):
        for d in watch.observe(node, pid, agree):
            events.append({"process": "nemesis", "type": "info", "f": EVENT, "time": t * 10**8,
                           "value": d["value"], "evidence": d["evidence"]})
    assert watch.compared > 10
    return events


def test_identical_replicas_across_restarts_and_snapshots_are_no_finding() -> None:
    assert _watch(_applier_reports(None)) == []
    assert findings.diverged([]) == []


def test_a_planted_divergence_is_one_finding_per_pair_with_its_nodes_and_index() -> None:
    events = _watch(_applier_reports(plant=70))
    # each report meets the first one of its index: n2 against n1 (n3 agrees with n1)
    assert [e["value"]["nodes"] for e in events] == [["n1", "n2"]]
    found = findings.diverged(events)
    first = found[0]
    assert first["finding"] == "replicas diverged" and first["kind"] == "replicas-diverged"
    assert (first["node"], first["nodes"], first["ops"]) == ("n1", ["n1", "n2"], [])
    assert 70 <= first["index"] <= 128 and first["time"] is not None
    assert f"by log index {first['index']}" in first["sentence"]
    v, c = findings.apply("valid", {"valid": True, "model": "kv", "anomalies": []}, events)
    assert v == "invalid" and anomaly_kind(c) == "replicas-diverged" and c["findings"] == 1


def test_two_incarnations_of_one_node_that_disagree_are_a_finding() -> None:
    watch = AgreementWatch()
    assert watch.observe("n1", 5, {"applied": 64, "hash": "aa" * 8, "marks": [[64, "aa" * 8]]}) == []
    assert watch.observe("n1", 5, {"applied": 64, "hash": "aa" * 8, "marks": []}) == []
    (d,) = watch.observe("n1", 9, {"applied": 70, "hash": "cc" * 8, "marks": [[64, "bb" * 8]]})
    assert d["value"] == {"index": 64, "nodes": ["n1"]}
    (a,) = findings.diverged([{"process": "nemesis", "type": "info", "f": EVENT, "time": 1,
                               **d}])
    assert "n1 (pid 5) and n1 (pid 9) applied different commands by log index 64" in a["sentence"]
    # no agree field (a --system COMMAND node), or a malformed one: nothing, no error
    assert watch.observe("n2", 1, None) == watch.observe("n2", 1, {"marks": [["x"]]}) == []
    for k in range(LIMIT + 3):  # once diverged, every index differs: a bounded record
        watch.observe(f"m{k}", k, {"applied": 64, "hash": f"{k:016x}", "marks": []})
    assert watch.events == LIMIT


def test_one_index_seen_by_several_pairs_is_one_finding_grouped_by_hash() -> None:
    watch = AgreementWatch()
    ev = []
    for node, pid, h in (("n1", 1, "aa"), ("n2", 2, "bb"), ("n3", 3, "aa"), ("n4", 4, "bb"),
                         ("n2", 7, "cc")):
        for d in watch.observe(node, pid, {"applied": 32, "hash": h * 8, "marks": []}):
            ev.append({"process": "nemesis", "type": "info", "f": EVENT, "time": 5 * 10**9,
                       **d})
    ev.append({"process": "nemesis", "type": "info", "f": EVENT, "time": 6 * 10**9,
               "value": {"index": 48, "nodes": ["n1", "n2"]},
               "evidence": {"reports": [{"node": "n1", "pid": 1, "hash": "dd" * 8},
                                        {"node": "n2", "pid": 2, "hash": "ee" * 8}]}})
    assert len(ev) == 4  # the watch gives one event per pair: n1-n2, n1-n4, n1-n2(pid 7), 48
    at32, at48 = findings.diverged(ev)
    assert (at32["index"], at32["nodes"], at32["time"]) == (32, ["n1", "n2", "n4"], 5 * 10**9)
    assert ("3 different sequences of commands: n1 (hash " + "aa" * 8 + "); "
            "n2 (pid 2), n4 (hash " + "bb" * 8 + "); n2 (pid 7) (hash " + "cc" * 8 + ")"
            ) in at32["sentence"]
    assert at48["index"] == 48 and "n1 and n2 applied different commands by log index 48" \
        in at48["sentence"]
    v, c = findings.apply("valid", None, ev)
    assert v == "invalid" and c is not None and c["findings"] == 2


def test_a_node_made_to_apply_another_command_where_it_had_applied_one_is_a_finding() -> None:
    watch = AgreementWatch()
    assert watch.observe("n2", 7, {"applied": 60, "hash": "aa" * 8, "marks": []}) == []
    rewrote = {"applied": 69, "hash": None, "marks": [], "rewrote": [55, "bb" * 8, "cc" * 8]}
    (d,) = watch.observe("n2", 7, rewrote)
    assert d["value"] == {"index": 55, "nodes": ["n2"]} and d["evidence"]["rewrote"] is True
    assert watch.observe("n2", 7, rewrote) == []  # once
    (e,) = watch.observe("n1", 3, {"applied": 55, "hash": "cc" * 8, "marks": []})
    assert e["value"] == {"index": 55, "nodes": ["n1", "n2"]}  # n1 against n2's first hash
    ev = [{"process": "nemesis", "type": "info", "f": EVENT, "time": 2 * 10**9, **x}
          for x in (d, e)]
    (a,) = findings.diverged(ev)
    assert a["nodes"] == ["n1", "n2"] and a["index"] == 55
    assert ("n2 (pid 7) applied one command at log index 55 and was later made to apply "
            "another there (seen at 2.0 s): its agreement hashes there are " + "bb" * 8
            + ", then " + "cc" * 8) in a["sentence"]
    # a malformed proof, or one whose hashes agree, is nothing
    for bad in ([55, "bb" * 8, "bb" * 8], [None, "a", "b"], [55, "bb" * 8]):
        assert watch.observe("n3", 1, {"hash": None, "rewrote": bad}) == []


def _plant(monkeypatch: pytest.MonkeyPatch, node: str, index: int) -> None:
    """``node``'s applier applies another value at ``index`` (a replica gone astray)."""
    from nodes.common.applier import Applier
    from nodes.common.core_api import Entry, Ready
    from nodes.sim import world

    class Astray(Applier):
        __slots__ = ()

        def apply(self, rd: Ready) -> Any:
            if self.node_id == node and any(e.index == index and e.data for e in rd.committed):
                rd.committed = [Entry(e.index, e.term, {"op": "write", "key": "astray",
                                                        "value": 1})
                                if e.index == index else e for e in rd.committed]
            return super().apply(rd)

    monkeypatch.setattr(world, "Applier", Astray)


def test_a_simulated_replica_that_applies_another_command_is_found(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = simrun.prepare(RunConfig(system="raft", nodes=3, time_limit=3.0, seed=3,
                                   store=str(tmp_path), sim=True))
    good = simrun.simulate(cfg, metrics=False)
    assert good.verdict == "valid" and not findings.diverged(good.events)
    _plant(monkeypatch, "n2", 40)
    bad = simrun.simulate(cfg, metrics=False)
    assert bad.verdict == "invalid"
    (first, *_rest) = findings.diverged(bad.events)
    assert "n2" in first["nodes"] and first["index"] >= 40
    assert anomaly_kind(bad.checker) in ("replicas-diverged", "non-linearizable")


def test_the_real_follower_reports_the_first_finding_as_the_history_grows(
        tmp_path: Path) -> None:
    """harness/runner.py's follower tails history.jsonl; a replicas-diverged event
    among the nemesis events is reported once (and, with --stop-on-anomaly, ends
    the load) even where no operation of the history shows it."""
    import json
    import threading

    from harness.runner import _Follower

    path = tmp_path / "history.jsonl"
    ops = [{"index": i, "time": i * 10**6, "process": 0, "type": t, "f": "write", "key": "k",
            "value": i // 2} for i, t in enumerate(["invoke", "ok"] * 3)]
    path.write_text("".join(json.dumps(e) + "\n" for e in ops))
    seen: list[dict[str, Any]] = []
    got = threading.Event()

    def on_finding(f: dict[str, Any]) -> None:
        seen.append(f)
        got.set()

    follower = _Follower(path, lambda a: None, on_finding, period_s=0.01)
    follower.start()
    try:
        events = _watch(_applier_reports(plant=70))
        with path.open("a") as out:
            for i, e in enumerate(events + events, start=len(ops)):
                out.write(json.dumps({"index": i, **e}) + "\n")
        assert got.wait(10), "no finding reported"
    finally:
        follower.stop()
    assert len(seen) == 1 and seen[0]["kind"] == "replicas-diverged"
    assert follower.first is None  # the history alone proved nothing
