"""The checker against a brute-force search, on generated small histories.

The brute force shares only the models' ``step`` (the specification) with
the checker: no linked list, no reductions, no integer coding. It places
operations one at a time, any operation whose real-time predecessors
(definite operations that completed before it was invoked) are placed,
optional operations may be left out, memoized on (placed set, state).
"""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testkit.histories import generate, mutate

from checker import check_events, make_model
from checker.history import pair
from checker.model import hkey

INF = float("inf")


def brute_force(events: list[dict], model: str, **semantics) -> bool:
    m = make_model(model, **semantics)
    ops = pair(events)
    fail_observed = semantics.get("fail_cas") == "observed"
    # fail = no effect (dropped), except a failed cas read as an observed mismatch
    ops = [op for op in ops if op.type != "fail" or (fail_observed and op.f == "cas")]
    for part in m.partition(ops):
        if not _part_ok(m, part):
            return False
    return True


def _part_ok(m, ops) -> bool:
    n = len(ops)
    definite = [op.type != "info" for op in ops]
    must_all = sum(1 << i for i in range(n) if definite[i])
    # preds[j]: definite ops that completed before op j was invoked
    preds = [sum(1 << i for i in range(n) if definite[i] and ops[i].ret < ops[j].call)
             for j in range(n)]
    key = m.partition_key(ops)
    init = m.initial_for(key) if hasattr(m, "initial_for") else m.init()

    @cache
    def go(placed: int, state_key) -> bool:
        state = states[state_key]
        if placed & must_all == must_all:
            return True
        for j in range(n):
            if placed >> j & 1 or preds[j] & ~placed:
                continue
            ok, s2 = m.step(state, ops[j])
            if ok:
                k2 = hkey(s2) if not isinstance(s2, tuple) else s2
                states.setdefault(k2, s2)
                if go(placed | 1 << j, k2):
                    return True
        return False

    k0 = hkey(init) if not isinstance(init, tuple) else init
    states = {k0: init}
    return go(0, k0)


def _case(seed: int, model: str, mutations: int, semantics: dict) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    events = generate(rng, n, processes=rng.randint(1, 4), keys=0 if model == "mutex" else rng.choice([0, 1, 2]),
                      info_rate=rng.choice([0.0, 0.2, 0.5]), fail_rate=0.1, model=model)
    if mutations == 0:
        res = check_events(events, model, **semantics)
        assert res.valid is True, (seed, res.anomalies)
        return
    for _ in range(mutations):
        events = mutate(rng, events)
    expected = brute_force(events, model, **semantics)
    res = check_events(events, model, **semantics)
    assert res.valid is expected, (seed, model, semantics, events)
    if res.valid is False:
        a = res.anomalies[0]
        assert a.sentence and a.ops


SEMANTICS = [
    ("kv", {}),
    ("cas-register", {"fail_cas": "observed"}),
    ("cas-register", {"nil_read": "wildcard"}),
    ("kv-append", {}),
    ("mutex", {}),
    ("multi-register", {"initial": {"x": 0, "y": 0}}),
]


@pytest.mark.parametrize("model,semantics", SEMANTICS, ids=[m + str(s) for m, s in SEMANTICS])
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), mutations=st.integers(0, 3))
def test_checker_agrees_with_brute_force(model, semantics, seed, mutations):
    _case(seed, model, mutations, semantics)


def test_generated_histories_are_linearizable_by_construction():
    rng = random.Random(7)
    for _ in range(50):
        events = generate(rng, 300, processes=8, keys=3, info_rate=0.05)
        assert check_events(events, "kv").valid is True


def test_mutations_sometimes_break_linearizability():
    # guards the differential test against a generator that never finds violations
    outcomes = set()
    rng = random.Random(3)
    for _ in range(200):
        ev = mutate(rng, generate(rng, 6, processes=3, keys=1))
        outcomes.add(brute_force(ev, "kv"))
    assert outcomes == {True, False}
