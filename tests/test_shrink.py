"""The shrinking search (harness/shrink.py) against a stand-in simulator whose failure
needs known parts, so what the search must find is known exactly."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import RunConfig
from harness.shrink import Candidate, Outcome, Shrinker, ddmin

G_SINGLE = {"model": "kv", "anomalies": [{"kind": "stale read"}]}
OTHER = {"model": "kv", "anomalies": [{"kind": "lost write"}]}


@given(st.sets(st.integers(0, 39), max_size=4), st.integers(1, 40))
@settings(max_examples=120, deadline=None)
def test_ddmin_finds_exactly_the_needed_items(needed: set[int], n: int) -> None:
    needed = {x for x in needed if x < n}
    calls = itertools.count()

    def fails(items: list[int]) -> bool:
        next(calls)
        return needed <= set(items)

    assert set(ddmin(list(range(n)), fails)) == needed
    assert next(calls) < 40 + 8 * max(1, len(needed)) * n.bit_length() ** 2


@given(st.integers(0, 63), st.integers(0, 2**32))
@settings(max_examples=100, deadline=None)
def test_halves_keeps_a_failing_sublist_in_order(needed: int, seed: int) -> None:
    import random

    from harness.shrink import halves

    tried = []

    def fails(xs: list[int]) -> bool:
        tried.append(len(xs))
        return needed in xs

    out = halves(list(range(64)), fails, random.Random(seed))
    assert needed in out and out == sorted(out)
    assert all(n == 64 // 2 ** (i + 1) for i, n in enumerate(sorted(set(tried), reverse=True)))


def test_ddmin_keeps_order() -> None:
    assert ddmin([5, 3, 9, 1], lambda xs: {9, 3} <= set(xs)) == [3, 9]


def invoked(cfg: RunConfig, every: Any) -> tuple[tuple[int, int], ...]:
    """The (slot, n) of ``every`` that ``cfg.client_mask`` lets a run invoke."""
    mask = cfg.client_mask or {}
    dropped = set(mask.get("drop_slots", ()))
    skipped = {tuple(o) for o in mask.get("skip_ops", ())}
    kept = None if "keep_ops" not in mask else {tuple(o) for o in mask["keep_ops"]}
    return tuple(o for o in every if o[0] not in dropped and o not in skipped
                 and (kept is None or o in kept))


class FakeSim:
    """Fails (stale read) iff the run lasts past 7 s, holds the kill at 4 s with a hold of
    at least 0.5 s, and slot 2's op 5 is invoked; with the kill's hold below 0.5 s it
    fails differently (lost write), which must not count."""

    def __init__(self) -> None:
        self.runs = 0

    def per_slot(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> int:
        return int(cfg.time_limit * 2)

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(self.per_slot(cfg, faults))
                            for s in range(cfg.concurrency)))
        kill = [f for f in faults if f["f"] == "kill" and f["at"] == 4.0]
        bad = cfg.time_limit > 7 and kill and (2, 5) in ops
        checker = None
        if bad:
            checker = G_SINGLE if kill[0]["hold"] >= 0.5 else OTHER
        return Outcome("invalid" if bad else "valid", checker, len(ops), ops)


def test_shrinker_finds_the_story() -> None:
    faults = tuple({"f": f, "at": float(at), "hold": 3.0, "value": ["n1"]}
                   for at, f in zip(range(1, 30, 3), itertools.cycle(["pause", "kill", "partition"])))
    assert any(f["f"] == "kill" and f["at"] == 4.0 for f in faults)
    base = RunConfig(sim=True, time_limit=30.0, concurrency=6, seed=1)
    sim = FakeSim()
    s = Shrinker(base, Candidate(30.0, faults), sim, budget_s=60)
    out = s.run()
    best = out.candidate
    assert [f["at"] for f in best.faults] == [4.0]
    assert 0.5 <= best.faults[0]["hold"] < 1.0  # halved from 3 s while it still failed the same way
    assert 7.0 < best.time_limit <= 8.0
    assert out.outcome.ops == ((2, 5),) and out.outcome.client_ops == 1
    assert out.attempts == sim.runs and not out.out_of_budget
    assert [line.split(":")[0] for line in out.steps] == [
        "shorter run", "fewer faults, nodes renamed", "only the anomaly's operations",
        "fewer clients",
        "fewer client ops, in blocks", "fewer faults", "shorter windows",
        "fewer client ops, in blocks", "fewer faults", "fewer client ops", "fewer faults"]
    assert best.stop_on_anomaly  # tried first; it changed nothing here, so it stayed


class EagerSim(FakeSim):
    """FakeSim whose slots draw more operations the fewer faults there are (a healthier
    cluster answers sooner): what let a shrink end with more operations than it began."""

    def per_slot(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> int:
        return int(cfg.time_limit * 2) + 4 * (10 - len(faults))


def test_a_shrink_never_ends_larger_in_any_measure() -> None:
    faults = tuple({"f": f, "at": float(at), "hold": 3.0, "value": ["n1"]}
                   for at, f in zip(range(1, 30, 3), itertools.cycle(["pause", "kill", "partition"])))
    sizes = []

    class Watched(EagerSim):
        def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
            return super().__call__(cfg, faults)

    s = Shrinker(RunConfig(sim=True, time_limit=30.0, concurrency=6, seed=1),
                 Candidate(30.0, faults), Watched(), budget_s=60)
    real_fails = s.fails

    def fails(c: Candidate) -> bool:
        ok = real_fails(c)
        sizes.append((len(s.best.faults), s.best_outcome.client_ops))
        return ok

    s.fails = fails  # type: ignore[method-assign]
    out = s.run()
    assert [f["at"] for f in out.candidate.faults] == [4.0]
    assert out.outcome.ops == ((2, 5),)
    # the best never grew in either measure, step by step
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in itertools.pairwise(sizes))
    assert out.outcome.client_ops <= out.original_outcome.client_ops


def test_a_candidate_met_again_is_not_run_again() -> None:
    faults = ({"f": "kill", "at": 4.0, "hold": 3.0, "value": ["n1"]},)
    sim = FakeSim()
    s = Shrinker(RunConfig(sim=True, time_limit=30.0, concurrency=6, seed=1),
                 Candidate(30.0, faults), sim, budget_s=60)
    c = Candidate(20.0, faults)
    assert s.fails(c) and s.fails(c)
    assert sim.runs == 2 and s.attempts == 2 and s.cached == 1


def test_a_budget_stops_with_the_best_seen_so_far() -> None:
    faults = ({"f": "kill", "at": 4.0, "hold": 3.0, "value": ["n1"]},)
    sim = FakeSim()
    s = Shrinker(RunConfig(sim=True, time_limit=30.0, concurrency=6, seed=1),
                 Candidate(30.0, faults), sim, budget_s=0.0)
    out = s.run()
    assert out.out_of_budget and out.candidate.time_limit == 30.0 and sim.runs == 1


def test_a_run_that_does_not_fail_in_simulation_is_refused() -> None:
    import pytest

    from harness.shrink import ShrinkError

    with pytest.raises(ShrinkError, match="does not fail in simulation"):
        Shrinker(RunConfig(sim=True, time_limit=3.0, concurrency=6, seed=1),
                 Candidate(3.0, ()), FakeSim())


class KeyedSim(FakeSim):
    """FakeSim whose failure needs every invoked op on key k2 (each slot's op n is on key
    k{(slot + n) % 4}) and names them: the focus pass alone must cut the load to them."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        every = [(s, n) for n in range(int(cfg.time_limit)) for s in range(cfg.concurrency)]
        ops = invoked(cfg, every)
        keys = tuple(f"k{(s + n) % 4}" for s, n in ops)
        need = {o for o in every if (o[0] + o[1]) % 4 == 2}
        if not need <= set(ops):
            return Outcome("valid", None, len(ops), ops, None, keys)
        named = tuple(i for i, k in enumerate(keys) if k == "k2")
        return Outcome("invalid", G_SINGLE, len(ops), ops, None, keys, named)


def test_the_focus_pass_keeps_only_the_anomalys_operations() -> None:
    base = RunConfig(sim=True, time_limit=8.0, concurrency=4, seed=1)
    sim = KeyedSim()
    s = Shrinker(base, Candidate(8.0, ()), sim, budget_s=60)
    s.focus()
    assert s.best_outcome.client_ops == 8 and set(s.best_outcome.keys) == {"k2"}
    assert sim.runs == 3  # the original, no operation, then only k2's (the named ones are the same)


class LateSim(FakeSim):
    """Fails iff slot 0's ops 20..30 (invoked at n/10 s) are all invoked; names only op 30:
    the focus pass must find by its time cut that what came before 2 s can go."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(40) for s in range(2)))
        times = tuple(n / 10 for _, n in ops)
        if not {(0, n) for n in range(20, 31)} <= set(ops):
            return Outcome("valid", None, len(ops), ops, times=times)
        return Outcome("invalid", G_SINGLE, len(ops), ops, None, (), (ops.index((0, 30)),),
                       times=times)


def test_the_focus_pass_cuts_what_came_long_before() -> None:
    sim = LateSim()
    s = Shrinker(RunConfig(sim=True, time_limit=4.0, concurrency=2, seed=1),
                 Candidate(4.0, ()), sim, budget_s=60)
    s.focus()
    kept = s.best_outcome.ops
    assert {(0, n) for n in range(20, 31)} <= set(kept)
    assert min(n for _, n in kept) >= 15 and len(kept) < 45  # from 80


class PrefixSim(FakeSim):
    """Fails iff slot 0's ops 25..30 (invoked at n/10 s) are all invoked; names op 30 and,
    as the prefix it was checked against, every fifth op of slot 0 from the load's start
    (the kv checker's ``prefix``), and ends at 3.05 s: the focus pass must cut what came
    before 2.5 s, named or not."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(40) for s in range(2)))
        times = tuple(n / 10 for _, n in ops)
        if not {(0, n) for n in range(25, 31)} <= set(ops):
            return Outcome("valid", None, len(ops), ops, times=times)
        named = tuple(i for i, o in enumerate(ops) if o[0] == 0 and o[1] % 5 == 0 and o[1] <= 30)
        return Outcome("invalid", G_SINGLE, len(ops), ops, 3.05, (), named, times=times)


def test_the_focus_pass_cuts_the_named_prefix_too() -> None:
    sim = PrefixSim()
    s = Shrinker(RunConfig(sim=True, time_limit=4.0, concurrency=2, seed=1),
                 Candidate(4.0, ()), sim, budget_s=60)
    s.focus()
    kept = s.best_outcome.ops
    assert {(0, n) for n in range(25, 31)} <= set(kept)
    assert min(n for _, n in kept) >= 20 and len(kept) <= 40  # from 80; keeping the named
    # prefix (every fifth op of slot 0 from 0 s) cut nothing, since it starts with the load


DIVERGED = {"kind": "replicas-diverged", "finding": "replicas diverged", "ops": [], "prefix": [],
            "time": 9_000_000_000}


class FindingSim:
    """Replicas diverge (a finding: no operations, seen at 9 s) iff the run lasts past 6 s
    and the kill at 4 s stays; without the pause at 1 s the history shows a stale read too,
    which the checker lists first: that candidate still shows the finding, so it fails the
    same way. A run of at most 3 s shows only the stale read: another failure."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        from harness.shrink import firsts_by_kind

        ops = tuple((s, n) for n in range(int(cfg.time_limit)) for s in range(2))
        kill = any(f["f"] == "kill" and f["at"] == 4.0 for f in faults)
        pause = any(f["f"] == "pause" for f in faults)
        anomalies: list[dict[str, Any]] = []
        if cfg.time_limit <= 3:
            anomalies = [{"kind": "stale read", "ops": [0]}]
        elif cfg.time_limit > 6 and kill:
            anomalies = ([] if pause else [{"kind": "stale read", "ops": [0]}]) + [DIVERGED]
        checker = {"model": "kv", "anomalies": anomalies}
        events = [{"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "read"},
                  {"index": 1, "time": 10**8, "process": 0, "type": "ok", "f": "read"}]
        by_kind = firsts_by_kind(events, checker)
        return Outcome("invalid" if anomalies else "valid", checker, len(ops), ops,
                       by_kind[0][1] if by_kind else None, by_kind=by_kind)


def test_a_finding_is_the_same_failure_beside_a_history_anomaly_and_its_time_ends_the_run() -> None:
    faults = ({"f": "pause", "at": 1.0, "hold": 1.0, "value": ["n1"]},
              {"f": "kill", "at": 4.0, "hold": 1.0, "value": ["n2"]},
              {"f": "partition", "at": 12.0, "hold": 1.0, "value": {"shape": "leader"}})
    base = RunConfig(sim=True, time_limit=20.0, concurrency=2, seed=1)
    s = Shrinker(base, Candidate(20.0, faults), FindingSim(), budget_s=60)
    assert s.want == ("kv", "replicas-diverged")
    out = s.run()
    assert [f["f"] for f in out.candidate.faults] == ["kill"]  # the pause went, though a
    # stale read then comes first: the finding is still there
    kinds = [a["kind"] for a in out.outcome.checker["anomalies"]]
    assert kinds[-1] == "replicas-diverged"
    assert 6.0 < out.candidate.time_limit <= 10.0  # the finding's time (9 s) + 1 s first


def test_firsts_by_kind_takes_a_findings_time_and_the_operations_end_otherwise() -> None:
    from harness.shrink import firsts_by_kind

    events = [{"index": 0, "time": 10**9, "process": 0, "type": "invoke", "f": "write"},
              {"index": 1, "time": 2 * 10**9, "process": 1, "type": "invoke", "f": "read"},
              {"index": 2, "time": 3 * 10**9, "process": 0, "type": "ok", "f": "write"},
              {"index": 3, "time": 5 * 10**9, "process": 1, "type": "ok", "f": "read"}]
    checker = {"anomalies": [{"kind": "stale read", "ops": [1], "prefix": [0]},
                             {"kind": "stale read", "ops": [0]}, DIVERGED]}
    assert firsts_by_kind(events, checker) == (("stale read", 5.0, (0, 1)),
                                               ("replicas-diverged", 9.0, ()))


def test_ddmin_sweeps_on_after_a_cut_instead_of_starting_over() -> None:
    needed = set(range(0, 64, 4))  # a quarter of the items, spread: many single cuts
    tried: set[tuple[int, ...]] = set()

    def fails(xs: list[int]) -> bool:
        tried.add(tuple(xs))
        return needed <= set(xs)

    assert ddmin(list(range(64)), fails) == sorted(needed)
    assert len(tried) < 300  # 457 different candidates when each cut started over


@given(st.sets(st.integers(0, 63), max_size=3), st.integers(0, 2**32))
@settings(max_examples=30, deadline=None)
def test_blocks_keeps_a_failing_sublist_in_order(needed: set[int], seed: int) -> None:
    import random

    from harness.shrink import BLOCK_TRIES, blocks

    calls = itertools.count()

    def fails(xs: list[int]) -> bool:
        next(calls)
        return needed <= set(xs)

    out = blocks(list(range(64)), fails, random.Random(seed))
    assert needed <= set(out) and out == sorted(out)
    # at most `tries` failures per size (6 sizes from 32 down to 1) beside the successes
    assert next(calls) <= BLOCK_TRIES * 6 + (64 - len(out))


def test_block_ops_cuts_the_load_in_few_runs() -> None:
    from harness.shrink import BLOCK_TRIES

    sim = FakeSim()  # needs slot 2's op 5 (and the kill at 4 s) of 6 slots x 60 operations
    faults = ({"f": "kill", "at": 4.0, "hold": 1.0, "value": ["n1"]},)
    s = Shrinker(RunConfig(sim=True, time_limit=30.0, concurrency=6, seed=3),
                 Candidate(30.0, faults), sim, budget_s=60)
    s.block_ops()
    assert (2, 5) in s.best_outcome.ops and s.best_outcome.client_ops <= 20  # from 360
    assert sim.runs <= 1 + BLOCK_TRIES * 9 + 40  # tries per size (180 .. 1) and the cuts


def _diverging_event(time_ns: int) -> dict[str, Any]:
    """The nemesis event faults/agreement.py records when two replicas report different
    hashes for one index (what the simulator's sampler records)."""
    from faults.agreement import EVENT, AgreementWatch

    watch = AgreementWatch()
    assert not watch.observe("n1", 101, {"applied": 3, "hash": "aa", "marks": []})
    (d,) = watch.observe("n2", 202, {"applied": 3, "hash": "bb", "marks": []})
    return {"time": time_ns, "process": "nemesis", "type": "info", "f": EVENT,
            "value": d["value"], "evidence": d["evidence"]}


def test_a_simulated_stop_on_anomaly_stops_at_a_divergence_too() -> None:
    from harness.simrun import _Follower

    events: list[dict[str, Any]] = [
        {"time": 10**8, "process": 0, "type": "invoke", "f": "write", "key": "k1", "value": 1},
        {"time": 2 * 10**8, "process": 0, "type": "ok", "f": "write", "key": "k1", "value": 1},
        {"time": 3 * 10**8, "process": "nemesis", "type": "info", "f": "kill", "value": ["n1"]}]
    follower = _Follower(events)
    assert not follower.look() and follower.note() is None  # a fault alone proves nothing
    events.append(_diverging_event(4 * 10**9))
    assert follower.look()  # the load ends here: the history shows no anomaly of its own
    assert follower.first is None and follower.finding is not None
    assert follower.finding["kind"] == "replicas-diverged"
    assert "replicas diverged at 4.0 s (--stop-on-anomaly ended the load)" in follower.note()


class StopSim:
    """A run shows the anomalies ``full`` (kinds, in the checker's order); with
    --stop-on-anomaly its load ends early (5 operations, not 40) and it shows ``stopped``.
    The stop makes a candidate cheaper, but one that shows none of the original's first
    kind fails another way, and the shrinker must not keep it."""

    def __init__(self, full: list[str], stopped: list[str]) -> None:
        self.full, self.stopped = full, stopped

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        n = 5 if cfg.stop_on_anomaly else 40
        kinds = self.stopped if cfg.stop_on_anomaly else self.full
        anomalies = [{"kind": k, "ops": [], "time": 2 * 10**9} for k in kinds]
        return Outcome("invalid", {"model": "kv", "anomalies": anomalies}, n,
                       tuple((0, i) for i in range(n)))


def test_a_stopped_candidate_counts_only_when_it_fails_the_same_way() -> None:
    faults = ({"f": "kill", "at": 1.0, "hold": 1.0, "value": ["n1"]},)
    base = RunConfig(sim=True, time_limit=20.0, concurrency=1, seed=1)
    stale, div = "stale read", "replicas-diverged"
    for full, stopped, kept in (([stale, div], [div], False),   # stopped at the divergence
                                ([div], [stale], False),        # a finding is its own kind
                                ([stale, div], [stale], True),
                                ([div], [stale, div], True)):
        s = Shrinker(base, Candidate(20.0, faults), StopSim(full, stopped), budget_s=60,
                     passes=("shorter_run",))
        assert s.want == ("kv", full[0])
        out = s.run()
        assert bool(out.candidate.stop_on_anomaly) is kept, (full, stopped)
        assert out.outcome.client_ops == (5 if kept else 40)


class CoupledKeySim(FakeSim):
    """Each slot's op n is on key k{n % 4} and is a (read, write, cas)[slot % 3]. The run
    fails iff slot 0's ops on k2 (which the anomaly names) are all invoked and some write
    on k1 is too: the anomaly's key alone does not fail, and neither does any other key
    without k1's writes."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(12) for s in range(cfg.concurrency)))
        keys = tuple(f"k{n % 4}" for _, n in ops)
        fs = tuple(("read", "write", "cas")[s % 3] for s, _ in ops)
        named = tuple(i for i, (s, n) in enumerate(ops) if s == 0 and n % 4 == 2)
        k1_write = any(k == "k1" and f == "write" for k, f in zip(keys, fs, strict=True))
        if len(named) < 3 or not k1_write:
            return Outcome("valid", None, len(ops), ops, None, keys, fs=fs)
        return Outcome("invalid", G_SINGLE, len(ops), ops, None, keys, named, fs=fs)


def test_the_coarse_pass_cuts_whole_keys_then_whole_kinds_of_operation() -> None:
    sim = CoupledKeySim()
    s = Shrinker(RunConfig(sim=True, time_limit=4.0, concurrency=4, seed=1),
                 Candidate(4.0, ()), sim, budget_s=60)
    s.coarse_ops()
    out = s.best_outcome
    assert set(out.keys) == {"k1", "k2"}  # k0 and k3 went, k1 (needed, not named) stayed
    named = {(0, 2), (0, 6), (0, 10)}
    assert named <= set(out.ops)
    # of the rest only the writes (slot 1's) stay: reads and cas went as whole kinds
    assert {o for o in out.ops if o not in named} == {(1, n) for n in (1, 2, 5, 6, 9, 10)}
    assert sim.runs <= 12  # a few runs per class, not one per operation (48 of them)
    assert s.steps[-1].startswith("fewer keys and kinds of operations")


class FragileSim(FakeSim):
    """A failure every cut of the load perturbs: a candidate fails iff it keeps slot 2's
    op 5 and a hash of the operations it invokes falls in one of eight buckets (so about
    one half in sixteen fails, whichever half it is), the original always."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        import zlib

        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(40) for s in range(cfg.concurrency)))
        lucky = zlib.crc32(repr(ops).encode()) % 8 == 0 or len(ops) == 40 * cfg.concurrency
        bad = (2, 5) in ops and lucky
        return Outcome("invalid" if bad else "valid", G_SINGLE if bad else None, len(ops), ops)


def test_the_early_halves_cut_a_fragile_load_that_few_tries_would_not() -> None:
    from harness.shrink import EARLY_HALF_TRIES, HALF_TRIES, halves

    base = RunConfig(sim=True, time_limit=20.0, concurrency=6, seed=5)
    s = Shrinker(base, Candidate(20.0, ()), FragileSim(), budget_s=60)
    s.halve_ops()
    assert (2, 5) in s.best_outcome.ops and s.best_outcome.client_ops <= 30  # from 240
    assert s.steps[-1].startswith("fewer client ops, in halves")
    # the same halves with the late pass's few tries per size stop sooner on this load
    few = Shrinker(base, Candidate(20.0, ()), FragileSim(), budget_s=60)
    halves(list(few.best_outcome.ops), lambda keep: few.fails(few._keeping(keep)), few.rng,
           tries=HALF_TRIES)
    assert HALF_TRIES < EARLY_HALF_TRIES and few.best_outcome.client_ops > 30


class LoadCoupledFaultSim(FakeSim):
    """Which faults can go follows the load: the run fails (it needs slot 2's op 5) with the
    kills at 4 s and 7 s both, or, on a load of at most 10 operations, with the pause at
    1 s alone; the other faults are noise."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(10) for s in range(3)))
        at = {(f["f"], f["at"]) for f in faults}
        bad = (2, 5) in ops and ({("kill", 4.0), ("kill", 7.0)} <= at
                                 or (("pause", 1.0) in at and len(ops) <= 10))
        return Outcome("invalid" if bad else "valid", G_SINGLE if bad else None, len(ops), ops)


def test_the_fresh_fault_search_begins_again_from_every_fault_on_the_small_load() -> None:
    faults = ({"f": "pause", "at": 1.0, "hold": 1.0, "value": ["n1"]},
              {"f": "kill", "at": 4.0, "hold": 1.0, "value": ["n2"]},
              {"f": "kill", "at": 7.0, "hold": 1.0, "value": ["n3"]},
              *({"f": "partition", "at": 8.0 + i, "hold": 0.5, "value": [f"n{i}"]}
                for i in range(7)))
    s = Shrinker(RunConfig(sim=True, time_limit=20.0, concurrency=3, seed=1),
                 Candidate(20.0, faults), LoadCoupledFaultSim(), budget_s=60)
    s.fewer_faults()  # on the whole load: the two kills
    s.fewer_ops()
    s.fewer_faults()  # on the small load, from the two kills: neither can go
    assert s.best_outcome.client_ops <= 10
    assert {f["at"] for f in s.best.faults} == {4.0, 7.0}
    ops = s.best_outcome.ops
    s.fresh_faults()  # from all ten on the small load: the pause alone
    assert [(f["f"], f["at"]) for f in s.best.faults] == [("pause", 1.0)]
    assert s.best_outcome.ops == ops and s.steps[-1].startswith("fewer faults, from all")


def test_the_fresh_fault_search_never_ends_with_more_faults() -> None:
    # on the whole load the two kills are needed whatever the search begins from
    faults = ({"f": "kill", "at": 4.0, "hold": 1.0, "value": ["n2"]},
              {"f": "kill", "at": 7.0, "hold": 1.0, "value": ["n3"]},
              {"f": "partition", "at": 9.0, "hold": 0.5, "value": ["n1"]})
    sim = LoadCoupledFaultSim()
    s = Shrinker(RunConfig(sim=True, time_limit=20.0, concurrency=3, seed=1),
                 Candidate(20.0, faults), sim, budget_s=60)
    s.fewer_faults()
    assert len(s.best.faults) == 2
    runs = sim.runs
    s.fresh_faults()
    assert {f["at"] for f in s.best.faults} == {4.0, 7.0} and s.best_outcome.client_ops == 30
    assert sim.runs > runs  # it did search again (from all three)


class StageSim(FakeSim):
    """Fails iff the kill at 10 s hits the node that leads then, and the leader is
    set by the stage: the faults before 10 s (n1, n2 or n3 by their count mod 3).
    Leaving stage faults out moves the lead, so the recorded kill misses it unless
    its node is renamed too."""

    def __call__(self, cfg: RunConfig, faults: list[dict[str, Any]]) -> Outcome:
        self.runs += 1
        ops = invoked(cfg, ((s, n) for n in range(4) for s in range(cfg.concurrency)))
        stage = sum(1 for f in faults if f["at"] < 10.0)
        leader = f"n{1 + stage % 3}"
        bad = any(f["f"] == "kill" and f["at"] == 10.0 and f["value"] == [leader] for f in faults)
        return Outcome("invalid" if bad else "valid", G_SINGLE if bad else None, len(ops), ops)


def _staged() -> tuple[dict[str, Any], ...]:
    stage = tuple({"f": "pause", "at": float(at), "hold": 0.5, "value": [f"n{at % 3 + 1}"]}
                  for at in range(1, 6))
    return (*stage, {"f": "kill", "at": 10.0, "hold": 1.0, "value": ["n3"]})  # 5 % 3 -> n3


def test_renamed_faults_drops_the_stage_that_only_chose_the_nodes() -> None:
    base = RunConfig(sim=True, seed=3, nodes=3, concurrency=2, time_limit=20.0).resolved()
    alone = Shrinker(base, Candidate(20.0, _staged()), StageSim(), budget_s=60,
                     passes=("fewer_faults",)).run()
    assert len(alone.candidate.faults) == 3  # two stage faults kept n3 in the lead
    out = Shrinker(base, Candidate(20.0, _staged()), StageSim(), budget_s=60,
                   passes=("renamed_faults",)).run()
    assert out.candidate.faults == ({"f": "kill", "at": 10.0, "hold": 1.0, "value": ["n1"]},)
    assert out.outcome.client_ops <= out.original_outcome.client_ops
    assert out.steps[-1].startswith("fewer faults, nodes renamed")


def test_renamed_renames_every_node_id_in_a_value_and_nothing_else() -> None:
    from harness.shrink import renamed

    names = {"n1": "n2", "n2": "n1", "n3": "n3"}
    value = {"shape": "leader", "grudge": {"n1": ["n2", "n3"], "n2": ["n1"]},
             "links": [["n1", "n3"]], "node": "n2", "rate": 0.2}
    assert renamed(value, names) == {"shape": "leader", "grudge": {"n2": ["n1", "n3"], "n1": ["n2"]},
                                     "links": [["n2", "n3"]], "node": "n1", "rate": 0.2}
