"""Durability findings (faults/findings.py): a node that will not start again after a
kill or a power loss is an anomaly, in the verdict, the report and the ledger.

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
