"""The memory cap (docs/checker.md "Memory limit"): a key whose search would
pass it is unknown, naming its window; the other keys keep their verdicts."""

from __future__ import annotations

import random

from testkit.histories import blowup_history, generate, mutate

from checker import check_events


def test_blown_up_key_is_unknown_and_names_its_window() -> None:
    events = blowup_history(keys=4, writers=14, ops=2_000)
    res = check_events(events, memory_limit=2)
    assert res.valid == "unknown"
    assert [u.key for u in res.unknown] == ["hot"]
    u = res.unknown[0]
    assert u.reason == "memory"
    hot = [op.id for op in res.history if op.key == "hot"]
    # the window lies on the hot key and ends at the read it could not settle
    assert set(u.ops) <= set(hot) and u.ops[-1] == hot[-1] and len(u.ops) > 1
    assert "memory limit (2 MB" in u.sentence
    assert res.checked == res.partitions - 1  # every other key decided
    assert res.to_dict()["unknown"][0]["ops"] == u.ops


def test_without_the_cap_the_same_history_is_invalid() -> None:
    events = blowup_history(keys=4, writers=10, ops=2_000)
    res = check_events(events, memory_limit=None)
    assert res.valid is False and res.anomalies[0].key == "hot"
    assert res.unknown == []


def test_another_keys_violation_still_wins_over_the_unknown_key() -> None:
    events = blowup_history(keys=4, writers=14, ops=2_000)
    # a read of a value never written, on k0, early in the history
    for ev in events:
        if ev["type"] == "ok" and ev["f"] == "read" and ev["key"] == "k0":
            ev["value"] = -7
            break
    res = check_events(events, memory_limit=2, every_key=True)
    assert res.valid is False
    assert [a.key for a in res.anomalies] == ["k0"]
    assert [u.key for u in res.unknown] == ["hot"]


def test_the_default_cap_changes_no_verdict_of_generated_histories() -> None:
    rng = random.Random(20)
    for _ in range(40):
        ev = generate(rng, 60, processes=4, keys=2, info_rate=0.1)
        if rng.random() < 0.5:
            ev = mutate(rng, ev)
        assert check_events(ev).valid == check_events(ev, memory_limit=None).valid
