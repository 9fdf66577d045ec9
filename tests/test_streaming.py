"""The streaming checker (checker/stream.py; docs/checker.md "Checking while
the run goes") never disagrees with the offline check: whatever it proves
while following, the full check finds invalid too; a linearizable history
gives it nothing to report."""

from __future__ import annotations

import random

from testkit.histories import generate, mutate

from checker import check_events
from checker.stream import StreamChecker


def follow(events: list[dict]) -> StreamChecker:
    s = StreamChecker()
    for ev in events:
        s.feed(ev)
    return s


def test_streaming_never_disagrees_with_the_offline_check() -> None:
    rng = random.Random(2020)
    found = invalid = 0
    for n in range(600):
        ev = generate(rng, rng.choice((20, 60, 150)), processes=rng.choice((2, 4, 8)),
                      keys=rng.choice((1, 2, 4)), info_rate=rng.choice((0.0, 0.05, 0.2)))
        offline = check_events(ev)
        assert offline.valid is True
        assert follow(ev).anomalies == [], f"history {n}: streaming flagged a valid history"
        bad = mutate(rng, ev)
        offline = check_events(bad)
        s = follow(bad)
        invalid += offline.valid is False
        if s.anomalies:
            found += 1
            assert offline.valid is False, (n, s.anomalies[0].sentence)
            keys = {a.key for a in check_events(bad, every_key=True).anomalies}
            assert s.anomalies[0].key in keys
    # it is a detector worth running: it finds a good part of the violations
    print(f"streaming proved {found} of {invalid} invalid mutants")
    assert invalid > 100 and found > invalid // 5, (found, invalid)


def test_a_stale_read_is_reported_at_the_completion_that_proves_it() -> None:
    ev = [
        {"index": 0, "time": 10, "process": 0, "type": "invoke", "f": "write", "key": "k3", "value": 1},
        {"index": 1, "time": 20, "process": 0, "type": "ok", "f": "write", "key": "k3", "value": 1},
        {"index": 2, "time": 30, "process": 1, "type": "invoke", "f": "write", "key": "k3", "value": 2},
        {"index": 3, "time": 40, "process": 1, "type": "ok", "f": "write", "key": "k3", "value": 2},
        {"index": 4, "time": 50, "process": 2, "type": "invoke", "f": "read", "key": "k3", "value": None},
        {"index": 5, "time": 60, "process": 2, "type": "ok", "f": "read", "key": "k3", "value": 1},
    ]
    s = StreamChecker()
    assert [s.feed(e) for e in ev[:5]] == [None] * 5
    a = s.feed(ev[5])
    assert a is not None and a.key == "k3" and a.index == 5 and a.time == 60
    assert check_events(ev).valid is False


def test_an_indeterminate_write_may_still_be_what_a_read_saw() -> None:
    ev = [
        {"index": 0, "process": 0, "type": "invoke", "f": "write", "key": "k", "value": 1},
        {"index": 1, "process": 0, "type": "info", "f": "write", "key": "k", "value": 1},
        {"index": 2, "process": 1, "type": "invoke", "f": "write", "key": "k", "value": 2},
        {"index": 3, "process": 1, "type": "ok", "f": "write", "key": "k", "value": 2},
        {"index": 4, "process": 2, "type": "invoke", "f": "read", "key": "k", "value": None},
        {"index": 5, "process": 2, "type": "ok", "f": "read", "key": "k", "value": 1},
    ]
    assert follow(ev).anomalies == []
    assert check_events(ev).valid is True


def test_memory_is_bounded_by_operations_in_flight() -> None:
    rng = random.Random(7)
    ev = generate(rng, 20_000, processes=8, keys=4, info_rate=0.02)
    s = follow(ev)
    assert s.anomalies == []
    for k in s.keys.values():
        assert len(k.muts_ret) <= 16 and len(k.open_calls) <= 16 + len(k.closed)
