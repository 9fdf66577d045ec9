"""The list-append workload's generator (harness/txnload.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.txnload import MAX_APPENDS_PER_KEY, TxnGenerator
from harness.workload import generator_class
from nodes.common import wire


def gen(seed: int, slot: int, **kw: object) -> TxnGenerator:
    args = {"keys": 3, "ops": ["read", "write"], "concurrency": 5, "rate": 100.0,
            "txn_length": 4}
    args.update(kw)
    return TxnGenerator(seed, slot, **args)  # type: ignore[arg-type]


def test_the_workload_names_this_generator() -> None:
    assert generator_class("list-append") is TxnGenerator


def test_same_seed_same_transactions_per_slot() -> None:
    a = [gen(7, 2).next_op()]
    g1, g2, g3 = gen(7, 2), gen(7, 2), gen(8, 2)
    s1 = [g1.next_op() for _ in range(200)]
    s2 = [g2.next_op() for _ in range(200)]
    s3 = [g3.next_op() for _ in range(200)]
    assert s1 == s2 and s1 != s3 and a[0] == s1[0]


def test_shape_lengths_and_requests_the_nodes_accept() -> None:
    g = gen(1, 0, txn_length=3)
    lengths = Counter()
    for _ in range(500):
        op = g.next_op()
        assert op.f == "txn" and op.key is None
        lengths[len(op.value)] += 1
        req, why = wire.validate_request({"id": 1, **op.request()})
        assert why == "" and req is not None and req["txn"] == op.value
        for f, k, v in op.value:
            assert (f == "append" and type(v) is int) or (f == "r" and v is None)
    assert set(lengths) == {1, 2, 3}
    mops = [m for _ in range(400) for m in g.next_op().value]
    share = sum(m[0] == "r" for m in mops) / len(mops)
    assert 0.4 < share < 0.6, f"reads are {share:.0%} of micro-operations"


def test_appended_values_are_unique_across_slots_and_keys_rotate() -> None:
    gens = [gen(3, s) for s in range(5)]
    values: Counter = Counter()
    appends: Counter = Counter()
    for _ in range(400):
        for g in gens:
            for f, k, v in g.next_op().value:
                if f == "append":
                    values[(k, v)] += 1
                    appends[k] += 1
    assert max(values.values()) == 1, "an appended value repeats on a key"
    assert len(appends) > 20, "keys do not rotate"
    # every slot moves on at the same pace, so each key gets about MAX_APPENDS_PER_KEY
    mid = sorted(appends.values())[len(appends) // 2]
    assert MAX_APPENDS_PER_KEY / 3 < mid < MAX_APPENDS_PER_KEY * 3, appends


def test_completion_records_the_filled_in_reads_on_ok_only() -> None:
    op = gen(1, 0).next_op()
    filled = [[f, k, [1] if f == "r" else v] for f, k, v in op.value]
    assert op.completion_value("ok", {"ok": True, "value": filled}) == filled
    assert op.completion_value("info", None) == op.value
    assert op.completion_value("fail", {"ok": False}) == op.value


def test_bad_length_is_refused() -> None:
    with pytest.raises(ValueError):
        gen(1, 0, txn_length=0)
