"""The key-value state machine and its one applier: operation semantics, waiters, snapshots."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodes.common.applier import BLOCK, Applier
from nodes.common.core_api import Entry, Ready, Snapshot, SoftState
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


# -- the applier (nodes/common/applier.py) -------------------------------------

def w(index: int, term: int, key: str, value: object) -> Entry:
    return Entry(index, term, {"op": "write", "key": key, "value": value})


def test_applier_answers_own_entries_ok_and_replaced_ones_outcome_unknown() -> None:
    a = Applier("n1", None, 10_000)
    rd = Ready(soft_state=SoftState("follower", "n2", 3),
               committed=[w(1, 1, "x", 1), w(2, 2, "x", 2), Entry(3, 2, None)],
               waiters=[(0, (b"c1", 10, 1, None)), (1, (b"c2", 11, 1, None)),
                        (2, (b"c3", 12, None, {"op": "write", "key": "x", "value": 9}))],
               reads=[(b"c4", 13, "x")])
    assert a.apply(rd) is None
    assert a.kv.data == {"x": 2} and a.applied == 3
    assert rd.replies == [
        (b"c1", {"ok": True, "id": 10}),
        # term 2 is not the term c2's command was appended in: someone else's entry
        (b"c2", {"id": 11, "ok": False, "error": "not_leader", "leader": "n2"}),
        (b"c3", {"id": 12, "ok": False, "error": "not_leader", "leader": "n2"}),  # a no-op
        (b"c4", {"ok": True, "value": 2, "id": 13}),  # after the Ready's entries
    ]
    assert not any(r.get("definite") for _c, r in rd.replies)


def test_applier_restores_a_peer_snapshot_between_the_entries_around_it() -> None:
    a = Applier("n1", None, 10_000)
    snap = Snapshot(5, 2, KVStore({"y": 5}).snapshot())
    rd = Ready(committed=[w(1, 1, "x", 1), w(6, 2, "z", 6)], snapshot=snap, restore=True,
               waiters=[(0, (b"c1", 1, 1, None))])
    a.apply(rd)
    assert rd.replies == [(b"c1", {"ok": True, "id": 1})]  # applied before the restore
    assert a.kv.data == {"y": 5, "z": 6} and a.applied == 6


def test_applier_takes_a_snapshot_every_snapshot_entries() -> None:
    a = Applier("n1", None, 3)
    assert a.apply(Ready(committed=[w(1, 1, "x", 1), w(2, 1, "x", 2)])) is None
    snap = a.apply(Ready(committed=[w(3, 1, "y", 3)]))
    assert snap is not None and snap.index == 3
    assert KVStore.restore(snap.data).data == {"x": 2, "y": 3}
    assert a.apply(Ready(committed=[w(4, 1, "y", 4)])) is None  # counted from the snapshot


# -- the agreement chain (nodes/common/applier.py; compared by faults/agreement.py) --

def _writes(n: int, first: int = 1) -> list[Entry]:
    return [w(i, 1 + i // 50, f"k{i % 3}", i) if i % 17 else Entry(i, 1, None)
            for i in range(first, first + n)]


def test_a_snapshot_carries_an_extra_beside_the_map_and_restore_reads_both_forms() -> None:
    kv = KVStore({"x": [1, 2], "y": 3})
    assert KVStore.restore(kv.snapshot()) == kv
    assert KVStore.restore_with_extra(kv.snapshot()) == (kv, None)
    assert KVStore.restore_with_extra(kv.snapshot([64, b"h" * 8, []])) == (kv, [64, b"h" * 8, []])
    with pytest.raises(ValueError, match="not a map"):
        KVStore.restore(b"\x92\x01\x02")  # [1, 2]: an array, but no map in it


def test_the_chain_depends_only_on_the_commands_at_each_index() -> None:
    es = _writes(300)
    one = Applier("n1", None, 10_000)
    one.apply(Ready(committed=es))
    # other batches, other terms, and snapshots taken (and restarted from) on the way
    two = Applier("n2", None, 45)
    snaps = []
    for i in range(0, 300, 7):
        got = two.apply(Ready(committed=[Entry(e.index, 99, e.data) for e in es[i:i + 7]]))
        snaps += [got] if got is not None else []
    snap = next(s for s in snaps if 130 < s.index < 192 and s.index % BLOCK)  # between marks
    three = Applier("n3", snap, 10_000)  # a restart: the snapshot, then the log after it
    three.apply(Ready(committed=es[snap.index:]))
    a, b, c = one.agreement(), two.agreement(), three.agreement()
    assert a is not None and a == b and a["applied"] == 300 and c is not None
    assert c["hash"] == a["hash"]
    assert c["marks"] == [m for m in a["marks"] if m[0] > snap.index]  # sealed since the restart
    assert [m[0] for m in a["marks"]] == list(range(BLOCK, 301, BLOCK))
    assert one.agreement(since=128)["marks"] == [m for m in a["marks"] if m[0] > 128]  # type: ignore[index]
    # a peer's snapshot (restore) carries the chain to a follower that lagged
    four = Applier("n4", None, 10_000)
    four.apply(Ready(committed=es[:10]))
    four.apply(Ready(committed=es[snap.index:], snapshot=snap, restore=True))
    assert four.agreement()["hash"] == a["hash"]  # type: ignore[index]


def test_one_different_command_changes_the_hash_at_its_index_and_every_later_one() -> None:
    es = _writes(200)
    planted = list(es)
    planted[69] = w(70, 1, "k0", "other")
    a, b = Applier("n1", None, 10_000), Applier("n2", None, 10_000)
    a.apply(Ready(committed=es[:69]))
    b.apply(Ready(committed=planted[:69]))
    assert a.agreement() == b.agreement()
    a.apply(Ready(committed=es[69:]))
    b.apply(Ready(committed=planted[69:]))
    ma, mb = a.agreement()["marks"], b.agreement()["marks"]  # type: ignore[index]
    assert [m[0] for m in ma] == [m[0] for m in mb] and ma[0][0] < 70
    assert all((x[1] == y[1]) == (x[0] < 70) for x, y in zip(ma, mb))
    assert a.agreement()["hash"] != b.agreement()["hash"]  # type: ignore[index]


def test_a_gap_or_a_snapshot_without_the_chain_makes_it_unknown_never_wrong() -> None:
    a = Applier("n1", None, 10_000)
    a.apply(Ready(committed=_writes(5)))
    a.apply(Ready(committed=_writes(3, first=8)))  # 6 and 7 never applied
    assert a.agreement() is None
    old = Snapshot(5, 1, KVStore({"x": 1}).snapshot())  # an older node's snapshot
    assert Applier("n2", old, 10_000).agreement() is None
    assert Applier("n3", None, 10_000).agreement() == {"applied": 0, "hash": "00" * 8,
                                                       "marks": []}


def test_another_command_at_an_index_already_applied_is_reported_as_rewrote() -> None:
    es = _writes(100)
    alt = [w(e.index, 1, "k0", "other") if e.index == 55 else e for e in es]
    first = Applier("n1", None, 10_000)
    first.apply(Ready(committed=es[:60]))
    first.apply(Ready(committed=alt[49:70]))  # the core rewound its commit index to 49
    got = first.agreement()
    assert got is not None and got["hash"] is None and got["marks"] == []
    index, before, after = got["rewrote"]
    # both hashes are the chain's own, so any replica's report at 55 compares with them
    kept, moved = Applier("n2", None, 10_000), Applier("n3", None, 10_000)
    kept.apply(Ready(committed=es[:55]))
    moved.apply(Ready(committed=alt[:55]))
    assert (index, before, after) == (55, kept.agreement()["hash"],  # type: ignore[index]
                                      moved.agreement()["hash"])  # type: ignore[index]
    # the same commands again prove nothing; a rewind past the held blocks cannot be told
    same = Applier("n4", None, 10_000)
    same.apply(Ready(committed=es[:60]))
    same.apply(Ready(committed=es[40:70]))
    far = Applier("n5", None, 10_000)
    far.apply(Ready(committed=es))
    far.apply(Ready(committed=alt[9:]))  # from 10: older than the HELD blocks
    assert same.agreement() is None and far.agreement() is None

