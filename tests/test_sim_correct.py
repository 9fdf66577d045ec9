"""Correct nodes stay correct under simulation (issue 15, "Correct nodes").

The default test: 500 simulated seeds, 250 of raft and 250 of paxos, under the
default nemesis (kill, pause, partition) with every other option at its
default except the length: 3 simulated seconds per seed with a fault window
every second (so each seed sees about three faults, each held 0.3-0.6 s),
over the sweep's process pool. The ``slow`` test is the nightly size: 10,000
seeds of the same shape. Any anomaly fails the test with its seeds and run
folders (a failing seed keeps its folder; docs/simulation.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import sweep
from harness.config import RunConfig


def _sweep(tmp_path: Path, system: str, seeds: int, first: int) -> None:
    cfg = RunConfig(sim=True, system=system, seed=first, test_count=seeds, time_limit=3.0,
                    nemesis_interval=1.0, store=str(tmp_path / "store"), progress=False)
    rows = list(sweep.sweep(cfg))
    assert len(rows) == seeds
    bad = [(r.seed, r.verdict, r.run_dir) for r in rows if r.verdict != "valid"]
    assert not bad, f"{system}: {len(bad)} of {seeds} seeds not valid: {bad[:5]}"
    # the runs did something: operations, and faults that bit
    ok = sum(r.results["counts"]["ok"] for r in rows)
    assert ok > 300 * seeds
    # passing seeds keep only their config and results
    kept = {p.name for p in Path(rows[0].run_dir).iterdir()}
    assert kept == {"config.json", "results.json"}


# About 40 CPU-s per system (0.15 CPU-s a seed) on an idle machine, over the pool's
# processes: more than the suite's per-test default of 120 s wall on a loaded one.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_250_seeds_each_of_raft_and_paxos_have_no_anomaly(tmp_path: Path, system: str) -> None:
    _sweep(tmp_path, system, 250, 1)


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_10000_seeds_have_no_anomaly(tmp_path: Path, system: str) -> None:
    _sweep(tmp_path, system, 5000, 100_000)
