"""Speed targets of issue 6 on generated histories (slow: run with -m slow).

CPU time is asserted (this machine is shared; wall time includes waiting for
a core). benchmarks/checker_bench.py prints the full figures.
"""

from __future__ import annotations

import random
import time

import pytest
from testkit.histories import generate

from checker import check_events


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_100k_ops_and_a_buried_violation_under_10_s_cpu_each():
    events = generate(random.Random(1), 100_000, processes=50, keys=16, info_rate=0.02,
                      fail_rate=0.02)
    t = time.process_time()
    assert check_events(events, "kv").valid is True
    assert time.process_time() - t < 10
    mid = len(events) // 2
    last: dict = {}
    for e in events[:mid]:
        if e["type"] == "ok" and e["f"] == "write":
            last.setdefault(e["key"], []).append(e["value"])
    for e in events[mid:]:
        if e["type"] == "ok" and e["f"] == "read" and len(last.get(e["key"], [])) > 3:
            e["value"] = last[e["key"]][-3]
            break
    t = time.process_time()
    res = check_events(events, "kv")
    assert res.valid is False and res.anomalies[0].key == e["key"]
    assert time.process_time() - t < 10
