"""A simulated run whose cores exchange messages without end still ends (harness/simrun.py).

Simulated time is not charged for CPU, so a livelock of the cores would keep a run
from ever reaching its time limit. Found with raft's no-fsync bug: after a power loss
a follower's log contradicts what the leader was told, and the two exchange append
and reject without end. The run must be cut, say so, and prove nothing valid.
"""

from __future__ import annotations

import pytest

from harness import simrun
from harness.config import RunConfig


@pytest.mark.timeout(120)
def test_a_message_storm_cuts_the_run_short_as_unknown() -> None:
    cfg = simrun.prepare(RunConfig(sim=True, bugs=["no-fsync"], nemesis="lose-unsynced", seed=1,
                                   time_limit=30, progress=False))
    out = simrun.simulate(cfg, metrics=False)
    storms = [n for n in out.notes if n.startswith("message storm")]
    assert storms, out.notes
    assert out.load_seconds < 30
    assert out.verdict in ("unknown", "invalid")  # an anomaly found before the cut still counts
    assert not out.recovered


def test_the_budget_is_far_above_a_busy_run() -> None:
    cfg = simrun.prepare(RunConfig(sim=True, nodes=3, seed=3, rate=0, concurrency=64,
                                   time_limit=3, progress=False))
    out = simrun.simulate(cfg, metrics=False, check=False)
    assert not [n for n in out.notes if n.startswith("message storm")]
    assert out.messages / out.simulated_s < simrun.STORM_MESSAGES_PER_S / 3
