"""The list-append checker: named anomalies on hand-made histories, and a
differential test against a brute-force search of serial orders."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.history import pair
from checker.listappend import TxnTableBuilder, check_list_append

# ---------------------------------------------------------------- building histories


def history(*txns: tuple) -> list[dict]:
    """Events from ``(process, type, mops)`` triples, each invoked and completed
    in turn unless a txn is given as ``(process, type, mops, "open")``: then its
    completion is written after every later txn's (they overlap it)."""
    events: list[dict] = []
    late: list[dict] = []
    for t in txns:
        p, typ, mops = t[0], t[1], t[2]
        invoke_mops = [[f, k, None if f == "r" else v] for f, k, v in mops]
        events.append({"process": p, "type": "invoke", "f": "txn", "value": invoke_mops})
        done = {"process": p, "type": typ, "f": "txn",
                "value": mops if typ == "ok" else invoke_mops}
        (late if len(t) > 3 else events).append(done)
    events.extend(late)
    for i, ev in enumerate(events):
        ev["index"] = i
        ev["time"] = i * 1000
    return events


def check(events: list[dict], consistency: str = "strict-serializable"):
    return check_list_append(pair(events), consistency)


def A(k: str, v: int) -> list:
    return ["append", k, v]


def R(k: str, v: list | None) -> list:
    return ["r", k, v]


# ---------------------------------------------------------------- named anomalies


def test_a_serial_history_is_valid() -> None:
    res = check(history(
        (0, "ok", [A("x", 1), A("y", 1)]),
        (1, "ok", [R("x", [1]), A("x", 2)]),
        (0, "ok", [R("x", [1, 2]), R("y", [1])]),
    ))
    assert res.valid, [a.sentence for a in res.anomalies]


def test_g_single_is_named_and_explained() -> None:
    # T1 reads x without T0's append but y with it: one anti-dependency (rw)
    # closed by a read dependency (wr), a cycle of exactly one rw: G-single.
    res = check(history(
        (0, "ok", [A("x", 1), A("y", 1)], "open"),
        (1, "ok", [R("x", []), R("y", [1])]),
    ), "serializable")
    assert not res.valid
    a = res.anomalies[0]
    assert a.kind == "G-single"
    assert "a cycle, G-single" in a.sentence
    assert "without 1" in a.sentence and "with it" in a.sentence
    assert sorted(a.ops) == [0, 1]
    assert {e["kind"] for e in a.cycle} == {"rw", "wr"}


def test_write_skew_is_g2_and_allowed_under_snapshot_isolation() -> None:
    events = history(
        (0, "ok", [R("x", []), A("y", 1)], "open"),
        (1, "ok", [R("y", []), A("x", 1)]),
        (2, "ok", [R("x", [1]), R("y", [1])]),
    )
    ser = check(events, "serializable")
    assert [a.kind for a in ser.anomalies] == ["G2-item"]
    si = check(events, "snapshot-isolation")
    assert si.valid and si.allowed == {"G2-item": 1}


def test_lost_update_is_forbidden_under_snapshot_isolation() -> None:
    # both append to y and neither saw the other: no read orders the appends,
    # but first-committer-wins says one must have seen the other
    events = history(
        (0, "ok", [R("y", []), A("x", 1), A("y", 1)], "open"),
        (1, "ok", [A("y", 2), R("x", [])]),
    )
    si = check(events, "snapshot-isolation")
    assert [a.kind for a in si.anomalies] == ["lost-update"]
    assert "both appended to y" in si.anomalies[0].sentence
    assert check(events, "read-committed").valid
    assert not check(events, "serializable").valid


def test_g0_write_cycle() -> None:
    res = check(history(
        (0, "ok", [A("x", 1), A("y", 2)], "open"),
        (1, "ok", [A("x", 2), A("y", 1)], "open"),
        (2, "ok", [R("x", [1, 2]), R("y", [1, 2])]),
    ), "read-committed")
    assert [a.kind for a in res.anomalies] == ["G0"]


def test_g1c_circular_information_flow() -> None:
    res = check(history(
        (0, "ok", [A("x", 1), R("y", [1])], "open"),
        (1, "ok", [A("y", 1), R("x", [1])]),
    ), "read-committed")
    assert [a.kind for a in res.anomalies] == ["G1c"]


def test_g1a_aborted_read() -> None:
    res = check(history(
        (0, "fail", [A("x", 1)]),
        (1, "ok", [R("x", [1])]),
    ), "read-committed")
    assert [a.kind for a in res.anomalies] == ["G1a"]


def test_g1b_intermediate_read() -> None:
    res = check(history(
        (0, "ok", [A("x", 1), A("x", 2)], "open"),
        (1, "ok", [R("x", [1])]),
        (2, "ok", [R("x", [1, 2])]),
    ), "read-committed")
    assert "G1b" in res.kinds


def test_internal_inconsistency() -> None:
    res = check(history((0, "ok", [A("x", 1), R("x", [])])))
    assert res.kinds == ["internal"]


def test_incompatible_orders() -> None:
    res = check(history(
        (0, "ok", [A("x", 1)]), (1, "ok", [A("x", 2)]),
        (2, "ok", [R("x", [1, 2])]), (3, "ok", [R("x", [2, 1])]),
    ))
    assert "incompatible-order" in res.kinds


def test_a_stale_read_is_only_a_realtime_anomaly() -> None:
    events = history(
        (0, "ok", [A("x", 1)]),
        (1, "ok", [R("x", [])]),  # invoked after the append completed
    )
    assert check(events, "serializable").valid
    strict = check(events, "strict-serializable")
    assert [a.kind for a in strict.anomalies] == ["G-single-realtime"]
    assert "completed at" in strict.anomalies[0].sentence


def test_info_appends_count_only_when_observed() -> None:
    seen = history((0, "info", [A("x", 1)]), (1, "ok", [R("x", [1])]))
    assert check(seen).valid
    unseen = history((0, "info", [A("x", 1)]), (1, "ok", [R("x", [])]))
    assert check(unseen).valid  # it may never have happened


# ---------------------------------------------------------------- brute force


def brute_force(events: list[dict], consistency: str) -> bool:
    """Is there an execution of the committed transactions (every ok one, any
    subset of the info ones) that ``consistency`` allows and that gives every
    ok read exactly what it saw? Each model by its operational definition:

    - serializable: a serial order; strict-serializable: one that also keeps
      real-time order;
    - snapshot-isolation: a commit order, and for each transaction a snapshot
      (the transactions committed before it started) that it reads whole;
      two transactions appending to one key never overlap (first committer
      wins);
    - read-committed: a commit order; each read of a key sees the appends of
      some transactions committed before the reader (a prefix of the key's
      appenders in that order), possibly a different moment per key.

    Appends take effect in commit order; a transaction's reads see its own
    earlier appends, and its reads of one key agree (else "internal")."""
    ops = [op for op in pair(events) if op.f == "txn"]
    ok = [op for op in ops if op.type == "ok"]
    info = [op for op in ops if op.type == "info"]
    for r in range(len(info) + 1):
        for extra in itertools.combinations(info, r):
            chosen = ok + list(extra)
            for order in itertools.permutations(chosen):
                if consistency == "strict-serializable" and any(
                        a.ret < b.call for i, b in enumerate(order) for a in order[i + 1:]):
                    continue
                if consistency in ("serializable", "strict-serializable"):
                    if _explains(order, [i for i in range(len(order))]):
                        return True
                elif consistency == "snapshot-isolation":
                    # snapshot of the i-th committer: the first s[i] <= i committers
                    for snaps in itertools.product(*[range(i + 1) for i in range(len(order))]):
                        if _first_committer_wins(order, snaps) and _explains(order, snaps):
                            return True
                elif _read_committed(order):
                    return True
    return False


def _mops(op: Any) -> list:
    return op.output if op.type == "ok" else op.value


def _explains(order: Any, snaps: Any) -> bool:
    """Every ok read of the transaction at position i sees what the first
    snaps[i] committers appended, plus its own appends so far."""
    for i, op in enumerate(order):
        if op.type != "ok":
            continue
        seen: dict[Any, list] = {}
        for other in order[:snaps[i]]:
            for f, k, v in _mops(other):
                if f == "append":
                    seen.setdefault(k, []).append(v)
        for f, k, v in _mops(op):
            if f == "append":
                seen.setdefault(k, []).append(v)
            elif v is not None and seen.get(k, []) != v:
                return False
    return True


def _first_committer_wins(order: Any, snaps: Any) -> bool:
    writes = [{k for f, k, _v in _mops(op) if f == "append"} for op in order]
    for j in range(len(order)):
        for i in range(snaps[j], j):  # committed after j started, before j committed
            if writes[i] & writes[j]:
                return False
    return True


def _read_committed(order: Any) -> bool:
    appends = [[(k, v) for f, k, v in _mops(op) if f == "append"] for op in order]
    for i, op in enumerate(order):
        if op.type != "ok":
            continue
        ext: dict[Any, list] = {}  # key -> what it saw of others' appends
        own: dict[Any, list] = {}
        for f, k, v in _mops(op):
            if f == "append":
                own.setdefault(k, []).append(v)
                continue
            if v is None:
                continue
            mine = own.get(k, [])
            if v[len(v) - len(mine):] != mine:
                return False
            before = v[:len(v) - len(mine)]
            if ext.setdefault(k, before) != before:
                return False
        for k, before in ext.items():
            # some prefix of the appenders of k committed before this one
            acc: list = []
            options = [list(acc)]
            for j in range(i):
                vs = [v for kk, v in appends[j] if kk == k]
                if vs:
                    acc += vs
                    options.append(list(acc))
            if before not in options:
                return False
    # and appends never read still land in commit order: a read's prefix is
    # of the whole commit-order list, which the options above already are
    return True


@st.composite
def tiny_histories(draw: Any) -> list[dict]:
    """2-4 transactions over keys x, y: a serial execution, then perturbed reads,
    outcomes and overlaps, so that valid and invalid histories both come up."""
    n = draw(st.integers(2, 4))
    counter = {"x": 0, "y": 0}
    state: dict[str, list] = {"x": [], "y": []}
    txns = []
    for _ in range(n):
        mops = []
        for _ in range(draw(st.integers(1, 3))):
            k = draw(st.sampled_from("xy"))
            if draw(st.booleans()):
                counter[k] += 1
                mops.append(["append", k, counter[k]])
                state[k].append(counter[k])
            else:
                seen = list(state[k])
                if draw(st.integers(0, 3)) == 0:  # a lie: some other prefix
                    seen = seen[:draw(st.integers(0, len(seen)))]
                mops.append(["r", k, seen])
        txns.append(mops)
    typ = [draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"])) for _ in range(n)]
    # Interleave: each txn's invoke and completion at drawn positions.
    slots = []
    for i in range(n):
        a = draw(st.integers(0, 2 * n))
        b = draw(st.integers(a, 2 * n + 1))
        slots.append((a, 0, i))
        slots.append((b, 1, i))
    slots.sort()
    events = []
    for _, kind, i in slots:
        inv = [[f, k, None if f == "r" else v] for f, k, v in txns[i]]
        if kind == 0:
            events.append({"process": i, "type": "invoke", "f": "txn", "value": inv})
        elif typ[i] != "info" or draw(st.booleans()):
            events.append({"process": i, "type": typ[i], "f": "txn",
                           "value": txns[i] if typ[i] == "ok" else inv})
    for j, ev in enumerate(events):
        ev["index"] = j
        ev["time"] = j
    return events


@pytest.mark.parametrize("consistency", ["serializable", "strict-serializable",
                                         "snapshot-isolation", "read-committed"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=tiny_histories())
def test_agrees_with_brute_force(consistency: str, events: list[dict]) -> None:
    res = check(events, consistency)
    expected = brute_force(events, consistency)
    # the table a file is read into, event by event, decides the same
    builder = TxnTableBuilder()
    builder.feed(events)
    streamed = check_list_append(builder.finish(), consistency)
    assert (streamed.valid, [a.ops for a in streamed.anomalies]) == \
        (res.valid, [a.ops for a in res.anomalies])
    assert res.valid == expected, (events, [a.sentence for a in res.anomalies])


ELLE_EDN = """\
{:type :invoke, :f :txn, :value [[:append 1 1] [:append 2 1]], :time 1000, :process 0, :index 0}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]], :time 2000, :process 1, :index 1}
{:type :ok, :f :txn, :value [[:append 1 1] [:append 2 1]], :time 3000, :process 0, :index 2}
{:type :ok, :f :txn, :value [[:r 1 []] [:r 2 [1]]], :time 4000, :process 1, :index 3}
{:type :invoke, :f :txn, :value [[:append 3 8]], :time 7000, :process 2, :index 4}
{:type :info, :f :txn, :value [[:append 3 8]], :time 8000, :process 2, :index 5}
{:type :invoke, :f :txn, :value [[:r 3 nil]], :time 9000, :process 1, :index 6}
{:type :ok, :f :txn, :value [[:r 3 [8]]], :time 10000, :process 1, :index 7}
"""


def test_an_elle_edn_history_is_checked_from_its_file(tmp_path: Any) -> None:
    from checker import check_file

    path = tmp_path / "elle.edn"
    path.write_text(ELLE_EDN)
    res = check_file(path, "list-append")
    assert res.valid is False and res.model == "list-append"
    a = res.anomalies[0]
    assert a.kind == "G-single" and a.ops == [1, 0]
    assert "T1 read key 1 as [], without 1, which T0 appended" in a.sentence
    d = res.to_dict(res.history)
    assert d["txns"] == 4 and d["consistency"] == "strict-serializable"
    assert [o["id"] for o in d["anomalies"][0]["operations"]] == [1, 0]
    assert d["anomalies"][0]["operations"][0]["output"] == [["r", 1, []], ["r", 2, [1]]]
    assert check_file(path, "list-append", consistency="read-committed").valid is True
    # the same history as events gives the same verdict and ids
    from checker.history import read_history

    same = check_events_la(read_history(path))
    assert same.valid is False and same.anomalies[0].ops == [1, 0]


def check_events_la(events: list[dict]) -> Any:
    from checker import check_events

    return check_events(events, model="list-append")
