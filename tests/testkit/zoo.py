"""Plain helpers for the bug-zoo tests: a run of a bug under its demonstration
mix, the nemesis events of a run, and what "caught" means."""

from __future__ import annotations

import json
from pathlib import Path

from harness.config import RunConfig
from harness.runner import run


def bug_run(tmp_path: Path, system: str, bug: str | None, seconds: float, seed: int,
            mix: str | None = None):
    """A run of ``bug`` (None: correct nodes) under the demonstration mix ``bug:MIX``
    (default: the bug's own), asked for explicitly: ``--bug`` alone brings no faults.
    A run of a bug ends its load at the first anomaly (``--stop-on-anomaly``; the
    verdict is still the full check's), so a caught bug costs no more seconds."""
    mix = mix or bug
    cfg = RunConfig(system=system, bugs=[bug] if bug else [], time_limit=seconds, seed=seed,
                    store=str(tmp_path / "store"), progress=False,
                    nemesis=f"bug:{mix}" if mix else "", stop_on_anomaly=bug is not None)
    return run(cfg)


def nemesis_events(result) -> list[tuple[str, object]]:
    """(f, value) of every nemesis event in the run's history, in order."""
    lines = (result.run_dir / "history.jsonl").read_text().splitlines()
    return [(e.get("f"), e.get("value")) for e in map(json.loads, lines)
            if e.get("process") == "nemesis"]


def assert_caught(result, bug: str) -> None:
    assert result.exit_code == 1, (result.verdict, result.results.get("notes"), result.run_dir)
    # A history anomaly names its operations; a finding of the nodes' own behaviour
    # (replicas diverged, not durable) names no operation but its nodes.
    assert result.anomalies and all(a["ops"] or (a.get("finding") and a.get("node"))
                                    for a in result.anomalies)
    assert result.config.nemesis == f"bug:{bug}"
    assert (result.run_dir / "results.json").exists()
    if result.report is not None:  # the report names the violation
        html = result.report.read_text()
        first = result.anomalies[0]
        assert (first["finding"].upper() if first.get("finding") else first["key"]) in html
