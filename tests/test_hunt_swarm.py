"""harness/swarm.py: the simulated search's per-seed settings.

A seed's draw is a pure function of the seed, spans every corner it names
(narrow and wide election windows, one entry per message and many), is
always a legal cluster (the nodes' own option parser and timing accept it),
never touches what the caller set, never reads ``--bug``, and leaves the
fault plan to faults/hunt.py (the nemesis stays the default). Fast: no runs.
"""

from __future__ import annotations

import pytest

from harness import swarm
from harness.config import RunConfig
from nodes.common.options import CoreOptions


def test_a_seed_draws_the_same_settings_every_time_and_seeds_differ() -> None:
    assert swarm.draw(7) == swarm.draw(7)
    assert len({repr(swarm.draw(s)) for s in range(50)}) > 40


def test_the_draws_span_every_corner_and_are_legal_clusters() -> None:
    draws = [swarm.draw(s) for s in range(400)]
    spreads = {d["timing"]["election_timeout_ms"][1] / d["timing"]["election_timeout_ms"][0]
               for d in draws}
    assert min(spreads) < 1.2 and max(spreads) > 2.5
    assert {d["node_options"]["max_batch"] for d in draws} == set(swarm.MAX_BATCH)
    assert {d["node_options"]["max_inflight"] for d in draws} == set(swarm.MAX_INFLIGHT)
    assert {d["nodes"] for d in draws} == set(swarm.NODES) and min(swarm.NODES) >= 3
    for d in draws:
        lo, hi = d["timing"]["election_timeout_ms"]
        assert swarm.TICK_MS <= d["timing"]["heartbeat_ms"] < lo < hi
        opts = CoreOptions.parse(d["node_options"])
        assert (opts.max_batch, opts.max_inflight) == (d["node_options"]["max_batch"],
                                                       d["node_options"]["max_inflight"])
        assert d["request_timeout"] > 0 and d["nemesis_interval"] > 0


def test_what_the_caller_set_wins_and_bugs_change_nothing() -> None:
    base = RunConfig(sim=True, seed=3, request_timeout=9.0)
    got = swarm.swarm_config(base)
    assert got.request_timeout == 9.0
    assert got.timing == swarm.draw(3)["timing"] and got.nemesis == ""
    with_bug = swarm.search_config("raft", 3, "forget-vote")
    without = swarm.search_config("raft", 3)
    assert with_bug.bugs == ["forget-vote"] and without.bugs == []
    assert {k: v for k, v in with_bug.to_dict().items() if k != "bugs"} == \
        {k: v for k, v in without.to_dict().items() if k != "bugs"}
    assert without.time_limit == swarm.SEARCH_S
    with pytest.raises(ValueError):
        swarm.swarm_config(RunConfig(sim=True))


def _fields(cfg: RunConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("timing", "node_options", "request_timeout",
                                         "nemesis_interval", "nodes")}


def test_a_default_run_is_swarmed_per_seed_and_keeps_its_node_count() -> None:
    from harness import runner, simrun

    for prepare in (lambda c: runner.prepare(c)[0], simrun.prepare):
        for seed in (3, 4):
            got = prepare(RunConfig(seed=seed, nodes=5, net="direct", sim=prepare is simrun.prepare))
            want = {k: v for k, v in swarm.draw(seed).items() if k != "nodes"}
            assert {k: v for k, v in _fields(got).items() if k != "nodes"} == want
            assert got.nodes == 5
        # Each seed of a sweep draws its own: the base's draw is not inherited.
        base = RunConfig(seed=3, net="direct").resolved()
        assert prepare(RunConfig(**{**base.to_dict(), "seed": 4})).timing == \
            swarm.draw(4)["timing"]


def test_a_run_that_names_its_faults_or_opts_out_keeps_the_defaults() -> None:
    defaults = _fields(RunConfig())
    for cfg in (RunConfig(seed=3, nemesis="kill,pause"), RunConfig(seed=3, swarm=False),
                RunConfig(seed=3, nemesis="none"), RunConfig(seed=3, system="./my-node")):
        assert _fields(swarm.run_settings(cfg.resolved())) == defaults
    hunt = swarm.run_settings(RunConfig(seed=3, nemesis="hunt", request_timeout=9.0).resolved())
    assert hunt.request_timeout == 9.0 and hunt.timing == swarm.draw(3)["timing"]
    # What a swarmed run records repeats it: the draw is a function of the seed.
    once = swarm.run_settings(RunConfig(seed=5).resolved())
    assert swarm.run_settings(RunConfig(**once.to_dict()).resolved()) == once
    assert "--no-swarm" in RunConfig(seed=5, swarm=False).argv()
