"""Whole `harness run`s of Maelstrom nodes under real faults: the correct test nodes
pass under partitions (and kill/pause), the buggy ones are caught.

Each run is short (3 nodes, 8 s of load); the table over every workload, node and
fault mix is benchmarks/maelstrom_table.py's.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.runner import run

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

NODES = Path(__file__).parent / "maelstrom_nodes"


def maelstrom_system(program: str, tag: Path) -> str:
    """``--system maelstrom:CMD`` for ``program`` (in maelstrom_nodes, with its flags).
    ``--tag`` names the test's folder so no_leftovers also sees the programs."""
    return f"maelstrom:{shlex.quote(sys.executable)} {NODES / program} --tag {tag}"


def go(tmp_path: Path, workload: str, program: str, nemesis: str, seed: int = 7) -> dict:
    cfg = RunConfig(system=maelstrom_system(program, tmp_path), workload=workload,
                    nodes=3, time_limit=8, rate=100, keys=3, nemesis=nemesis,
                    nemesis_interval=2, seed=seed, store=str(tmp_path / "store"),
                    name=workload, progress=False, follow=False, recovery_timeout=10,
                    check_time_limit=60)
    result = run(cfg)
    sec = (result.results.get("checker") or {}).get("section") or {}
    return {"verdict": result.verdict, "section": sec, "notes": result.results.get("notes"),
            "report": result.report, "counts": result.counts,
            "anomalies": (result.results.get("checker") or {}).get("anomalies") or []}


@pytest.mark.parametrize(("workload", "program"), [
    ("broadcast", "gossip_set.py --workload broadcast"),
    # the suite stays under 10 minutes; the others run with -m slow (and in the table)
    pytest.param("g-counter", "counter.py", marks=pytest.mark.slow),
    pytest.param("lin-kv", "lin_kv.py", marks=pytest.mark.slow),
])
def test_correct_nodes_pass_under_partitions(tmp_path: Path, no_leftovers: None,
                                             workload: str, program: str) -> None:
    r = go(tmp_path, workload, program, "partition")
    assert r["verdict"] == "valid", r
    assert r["counts"]["ok"] > 100
    assert r["report"] is not None and r["report"].exists()


@pytest.mark.parametrize(("workload", "program", "found"), [
    pytest.param("broadcast", "gossip_set.py --workload broadcast --bug", "lost",
                 marks=pytest.mark.slow),
    ("lin-kv", "lin_kv.py --bug", "non-linearizable"),
])
def test_buggy_nodes_are_caught_under_partitions(tmp_path: Path, no_leftovers: None,
                                                 workload: str, program: str, found: str) -> None:
    r = go(tmp_path, workload, program, "partition")
    assert r["verdict"] == "invalid", r
    assert found in {a.get("kind") for a in r["anomalies"]}
    page = r["report"].read_text()
    assert "What went wrong" in page
    assert f"Workload: {workload}" in page  # the section maelstrom/report.py draws
    if workload == "broadcast":
        assert "Lost values" in page


@pytest.mark.slow
def test_a_double_counting_counter_is_caught_under_pauses(tmp_path: Path,
                                                          no_leftovers: None) -> None:
    r = go(tmp_path, "g-counter", "counter.py --bug", "pause")
    assert r["verdict"] == "invalid", r
    assert any(not row["ok"] for row in r["section"]["final_reads"])


@pytest.mark.slow
def test_a_correct_broadcast_survives_kill_and_pause(tmp_path: Path, no_leftovers: None) -> None:
    r = go(tmp_path, "broadcast", "gossip_set.py --workload broadcast", "kill,pause")
    assert r["verdict"] == "valid", r
    assert r["section"]["lost_count"] == 0


def test_a_crashing_program_is_a_line_in_the_notes_and_the_report(tmp_path: Path,
                                                                  no_leftovers: None) -> None:
    from harness.runner import summary

    cfg = RunConfig(system=maelstrom_system("bad.py crash", tmp_path), workload="echo", nodes=2,
                    time_limit=2, rate=20, nemesis="none", seed=1,
                    store=str(tmp_path / "store"), progress=False, recovery_timeout=3)
    result = run(cfg)
    notes = result.results["notes"]
    assert any("ended while serving (exit code 3)" in n for n in notes), notes
    assert "ended while serving (exit code 3)" in summary(result)
    assert "ended while serving (exit code 3)" in result.report.read_text()
