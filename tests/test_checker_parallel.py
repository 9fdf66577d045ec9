"""Two processes deciding keys (check_ops ``workers``) give what one does.

The worker only ever reports keys it found plainly valid; everything else
is decided by the calling process through the one loop, so verdicts,
anomalies (sentences, ids, prefixes) and unknown windows must be the same
as with ``workers=1``, over valid and mutated generated histories, with and
without ``every_key``.
"""

from __future__ import annotations

import random

import pytest
from testkit.histories import generate, mutate

from checker import check_events


def _summary(res):
    return (res.valid, res.checked, res.steps,
            [a.to_dict() for a in res.anomalies], [u.to_dict() for u in res.unknown])


@pytest.mark.parametrize("every_key", [False, True])
def test_two_processes_decide_what_one_does(every_key):
    rng = random.Random(20)
    invalid = 0
    for seed in range(30):
        r = random.Random(seed)
        ev = generate(r, 300, processes=6, keys=5, info_rate=0.05, fail_rate=0.05)
        if seed % 2:
            for _ in range(3):
                ev = mutate(rng, ev)
        one = check_events(ev, "kv", every_key=every_key, workers=1)
        two = check_events(ev, "kv", every_key=every_key, workers=2)
        invalid += one.valid is False
        if every_key or one.valid is not False:
            assert _summary(two) == _summary(one), seed
        else:
            # without every_key the check stops at an invalid key, which may be
            # another one than a single process meets first: same verdict, and
            # what it names is a real anomaly of that key
            assert two.valid is False
            keys = {a.key for a in check_events(ev, "kv", every_key=True, workers=1).anomalies}
            assert {a.key for a in two.anomalies} <= keys
    assert invalid >= 5  # the mutants do break some histories


def test_a_memory_capped_key_is_unknown_with_two_processes_too():
    from testkit.histories import blowup_history

    ev = blowup_history(keys=4, writers=14, ops=2000)
    one = check_events(ev, "kv", memory_limit=1, workers=1)
    two = check_events(ev, "kv", memory_limit=1, workers=2)
    assert one.valid == "unknown"
    assert _summary(two) == _summary(one)
