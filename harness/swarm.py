"""Swarm over a run's settings: one seeded draw, per seed, of the options that are no bug knob.

Owns ``swarm_config(cfg) -> RunConfig``, the settings half of the generic
search (the faults half is faults/hunt.py). Swarm testing (Groce et al.,
2012) says a search finds more when each run switches some dimensions of
the input to unusual corners instead of all runs sitting at one average
point; for a consensus cluster the dimensions that decide which races are
reachable are its *timing* (how long an election takes against a
heartbeat, how wide the randomised timeout is: a narrow one makes rival
candidates of one term common, a wide one lets a stale node campaign
first), its *replication shape* (entries per message and messages in
flight: one per round trip leaves old entries travelling apart from a new
leader's own, many at once hide that) and the *workload's contention*
(clients that give up soon or wait long for an answer; the workload's own
hot keys, harness/generator.py, already concentrate operations, and more
contention than that makes the linearizability check, not the search, the
cost), and its *size*: in three nodes every two majorities share exactly
one node, so a race that quorum intersection must stop (a vote or a
promise given twice, an entry counted on a majority that a later leader
lacks) needs one node to be in the wrong place at the wrong moment where
five nodes need two; three nodes also cost half the CPU per simulated
second, so the search runs twice the seeds.
Every value drawn is a legal, documented option of a correct cluster
(docs/cluster-json.md), so a correct node must stay valid under each draw
(tests/test_sim_correct.py sweeps them); none is chosen for any bug, and
``--bug`` is not read.

``search_config(system, seed, bug=None)`` is one seed of the generic
simulated search: ``SEARCH_S`` simulated seconds of the default (the hunting
plan), swarmed (3 or 5 nodes). Used by benchmarks/sim_zoo.py and
tests/test_sim_correct.py.

``run_settings(cfg)`` is the same draw for one ``harness run`` (real or
simulated) under the default nemesis, the hunting plan: the faults half of the
default hunts, so its settings half does too. It keeps the node count, which
is the user's system under test, not a knob of the search; it draws nothing
under any other nemesis (a ``bug:NAME`` mix brings its own settings, a named
mix means "these faults at these settings"), for a ``--replay`` (the recorded
run's settings are replayed), for a ``--system`` program (whose options are
its own) or with ``--no-swarm``. It runs where a run is prepared, after
``resolved()``, so every seed of a ``--test-count`` sweep draws its own.

Invariants: the draw depends only on ``cfg.seed`` (its own
``random.Random(f"swarm:{seed}")``, apart from the run's other streams), and
only fields the caller left at their RunConfig default are drawn (an
explicit option wins), so a swarmed config is an ordinary RunConfig that
``--replay`` or a report shows in full.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from harness.config import RunConfig

#: Election timeout floors (ms) and the randomised range's width (hi / lo):
#: narrow ranges make rival candidates of one term common, wide ones let a
#: node that timed out early (a stale one) campaign first.
ELECTION_LO_MS = (150, 200, 300, 450, 600)
ELECTION_SPREAD = (1.1, 1.5, 2.0, 3.0)
#: Heartbeats per election floor.
HEARTBEATS_PER_ELECTION = (3, 6, 10)
#: Replication shape: entries per message, messages in flight per follower.
MAX_BATCH = (1, 4, 64, 1024)
MAX_INFLIGHT = (1, 4, 64)
#: How long clients wait for an answer.
REQUEST_TIMEOUT_S = (0.3, 1.0, 2.0)
NEMESIS_INTERVAL_S = (2.0, 3.5, 5.0)
#: Cluster sizes (the default, 5, half the time).
NODES = (3, 5)
TICK_MS = 10


def draw(seed: int) -> dict[str, Any]:
    """The RunConfig fields one seed's swarm sets (before the caller's own win)."""
    rng = random.Random(f"swarm:{seed}")
    lo = rng.choice(ELECTION_LO_MS)
    hi = max(lo + TICK_MS, round(lo * rng.choice(ELECTION_SPREAD) / TICK_MS) * TICK_MS)
    heartbeat = max(TICK_MS, round(lo / rng.choice(HEARTBEATS_PER_ELECTION) / TICK_MS) * TICK_MS)
    return {
        "timing": {"heartbeat_ms": heartbeat, "election_timeout_ms": [lo, hi]},
        "node_options": {"max_batch": rng.choice(MAX_BATCH),
                         "max_inflight": rng.choice(MAX_INFLIGHT)},
        "request_timeout": rng.choice(REQUEST_TIMEOUT_S),
        "nemesis_interval": rng.choice(NEMESIS_INTERVAL_S),
        "nodes": rng.choice(NODES),
    }


#: Simulated seconds of load per seed of the generic search: many short runs,
#: each with its own settings and start-up (the hunting plan's episodes, not a
#: run's length, are what find bugs).
SEARCH_S = 20.0


def search_config(system: str, seed: int, bug: str | None = None,
                  **fields: Any) -> RunConfig:
    """One seed of the generic simulated search (resolved by the caller:
    ``harness.simrun.prepare``): the defaults, ``SEARCH_S`` s, ``bug`` on
    (under its workload), ``fields`` as given, the rest swarmed."""
    from harness import bugs

    base = RunConfig(sim=True, system=system, seed=seed, bugs=[bug] if bug else [],
                     workload=bugs.BUGS[bug].workload if bug else "kv", progress=False,
                     **{"time_limit": SEARCH_S, **fields})
    return swarm_config(base)


#: The draw's fields ``run_settings`` leaves alone.
KEPT_BY_RUNS = ("nodes",)


def run_settings(cfg: RunConfig) -> RunConfig:
    """``cfg`` (resolved: it has a seed) with this seed's draw in every field left
    at its default but the node count, when ``cfg`` is a default run of our own
    nodes (the hunting plan, no replay, ``swarm`` on); otherwise ``cfg``."""
    from faults.schedule import HUNT
    from harness.config import SYSTEMS

    if not (cfg.swarm and cfg.replay is None and cfg.system in SYSTEMS
            and cfg.nemesis.strip().lower() in ("", HUNT)):
        return cfg
    return swarm_config(cfg, keep=KEPT_BY_RUNS)


def swarm_config(cfg: RunConfig, keep: tuple[str, ...] = ()) -> RunConfig:
    """``cfg`` with this seed's swarm draw in every field left at its default
    (the fields named in ``keep`` too: they stay as they are)."""
    if cfg.seed is None:
        raise ValueError("a swarmed run needs a seed")
    defaults = RunConfig()
    changes = {k: v for k, v in draw(int(cfg.seed)).items()
               if k not in keep and getattr(cfg, k) == getattr(defaults, k)}
    return dataclasses.replace(cfg, **changes)
