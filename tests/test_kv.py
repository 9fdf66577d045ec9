"""The key-value state machine: operation semantics and snapshot round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodes.common.kv import KVStore


def test_read_of_absent_key_is_ok_with_null() -> None:
    assert KVStore().apply({"op": "read", "key": "k"}) == {"ok": True, "value": None}


def test_write_then_read() -> None:
    kv = KVStore()
    assert kv.apply({"op": "write", "key": "k", "value": 3}) == {"ok": True}
    assert kv.apply({"op": "read", "key": "k"}) == {"ok": True, "value": 3}
    assert kv.read("k") == {"ok": True, "value": 3}


def test_cas_on_absent_key_fails_definitely_with_no_key() -> None:
    kv = KVStore()
    reply = kv.apply({"op": "cas", "key": "k", "expected": 1, "value": 2})
    assert reply == {"ok": False, "error": "no_key", "definite": True}
    assert kv.data == {}


def test_cas_mismatch_changes_nothing() -> None:
    kv = KVStore({"k": 1})
    reply = kv.apply({"op": "cas", "key": "k", "expected": 5, "value": 2})
    assert reply == {"ok": False, "error": "cas_mismatch", "definite": True}
    assert kv.data == {"k": 1}


def test_cas_match_swaps() -> None:
    kv = KVStore({"k": 1})
    assert kv.apply({"op": "cas", "key": "k", "expected": 1, "value": 2}) == {"ok": True}
    assert kv.data == {"k": 2}


def test_cas_with_null_expected_on_present_null_value_succeeds() -> None:
    kv = KVStore({"k": None})
    assert kv.apply({"op": "cas", "key": "k", "expected": None, "value": 1})["ok"]


def test_unknown_op_raises() -> None:
    with pytest.raises(ValueError):
        KVStore().apply({"op": "append", "key": "k"})


def test_restore_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        KVStore.restore(b"\xc1garbage")
    with pytest.raises(ValueError):
        KVStore.restore(b"\x01")  # valid msgpack, not a map


# Values arrive as msgpack, so integers stay within its 64-bit range.
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
values = st.one_of(st.none(), ints, st.text(max_size=5), st.lists(ints, max_size=3))
commands = st.one_of(
    st.fixed_dictionaries({"op": st.just("write"), "key": st.sampled_from("abc"), "value": values}),
    st.fixed_dictionaries({"op": st.just("read"), "key": st.sampled_from("abc")}),
    st.fixed_dictionaries(
        {"op": st.just("cas"), "key": st.sampled_from("abc"), "expected": values, "value": values}
    ),
)


@given(st.lists(commands, max_size=30))
def test_snapshot_round_trip_and_determinism(cmds: list[dict]) -> None:
    a, b = KVStore(), KVStore()
    for cmd in cmds:
        assert a.apply(cmd) == b.apply(cmd)
    restored = KVStore.restore(a.snapshot())
    assert restored == a
    # The restored copy keeps behaving the same.
    for cmd in cmds:
        assert restored.apply(cmd) == a.apply(cmd)
