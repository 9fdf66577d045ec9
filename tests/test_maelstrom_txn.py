"""Maelstrom txn-list-append: the generator's txn messages, the checker with Maelstrom's
codes, and whole `harness run`s of the test nodes under real faults (the correct node
valid under partitions and under kill/pause, the non-atomic and the stale one caught).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_maelstrom_runs import maelstrom_system
from test_maelstrom_units import H

from maelstrom import checkers, protocol
from maelstrom.workloads import MTxn, TxnListAppendGenerator, from_maelstrom_txn, to_maelstrom_txn

CFG = SimpleNamespace(workload="txn-list-append", consistency="strict-serializable",
                      check_time_limit=10)


# --- the generator and the mapping to Maelstrom's txn messages -------------------------


def test_txn_bodies_carry_integer_keys_and_the_history_ours() -> None:
    a = TxnListAppendGenerator(5, 2, keys=3, ops=["read"], concurrency=4, rate=0.0)
    b = TxnListAppendGenerator(5, 2, keys=3, ops=["read"], concurrency=4, rate=0.0)
    appended: list[Any] = []
    for _ in range(200):
        op = a.next_op()
        assert op == b.next_op()  # deterministic per (seed, slot)
        assert isinstance(op, MTxn) and op.f == "txn" and op.key is None
        body = op.request()
        assert body["type"] == "txn" and body["client"] == 3  # the slot plus one
        assert body["txn"] == to_maelstrom_txn(op.value)
        for (f, k, v), (bf, bk, bv) in zip(op.value, body["txn"]):
            assert f in ("r", "append") and k.startswith("k") and bk == int(k[1:])
            assert (f, v, bv) == (bf, bv, v) and (v is None) == (f == "r")
            if f == "append":
                appended.append(v)
    assert len(appended) == len(set(appended))  # unique values, as Elle needs


def test_txn_ok_maps_back_and_null_reads_are_empty() -> None:
    op = MTxn("txn", None, [["r", "k1", None], ["append", "k2", 3]], {})
    reply = protocol.client_reply(9, {"type": "txn_ok", "in_reply_to": 9,
                                      "txn": [["r", 1, None], ["append", 2, 3]]})
    assert reply["value"] == [["r", 1, None], ["append", 2, 3]]
    assert op.completion_value("ok", reply) == [["r", "k1", []], ["append", "k2", 3]]
    assert op.completion_value("info", None) == op.value
    assert op.completion_value("fail", {"ok": False}) == op.value
    assert from_maelstrom_txn("junk") == "junk"
    assert from_maelstrom_txn([["r", 4, [1, 2]], 7]) == [["r", "k4", [1, 2]], 7]


def test_txn_conflict_is_definite_and_unknown_codes_are_not() -> None:
    r = protocol.client_reply(4, {"type": "error", "code": 30, "text": "conflict"})
    assert r["definite"] is True and r["error"] == "30 txn-conflict"
    for code in (0, 13, 99):
        assert protocol.client_reply(4, {"type": "error", "code": code})["definite"] is False


# --- the checker on hand-made histories -------------------------------------------------


def _txn(h: H, p: int, asked: list[list[Any]], got: Any = None, type_: str = "ok",
         **kw: Any) -> None:
    h.ev(p, "invoke", "txn", None, asked)
    h.ev(p, type_, "txn", None, got if type_ == "ok" else asked, **kw)


def test_a_serial_history_is_valid_and_failed_txns_count_for_nothing() -> None:
    h = H()
    _txn(h, 0, [["append", "k0", 1]], [["append", "k0", 1]], node="n1")
    _txn(h, 1, [["append", "k0", 2]], type_="fail", error="30 txn-conflict")
    _txn(h, 1, [["append", "k0", 3]], type_="info", error="0 timeout")
    _txn(h, 2, [["r", "k0", None], ["append", "k1", 4]], [["r", "k0", [1]], ["append", "k1", 4]])
    _txn(h, 0, [["r", "k1", None]], [["r", "k1", [4]]])
    verdict, d = checkers.check_txn_list_append(h.events, CFG)
    assert verdict == "valid", d
    sec = d["section"]
    assert sec["txns"] == {"ok": 3, "fail": 1, "info": 1}
    assert sec["errors"] == {"0 timeout": 1, "30 txn-conflict": 1}
    assert sec["consistency"] == "strict-serializable" and sec["wrong_replies"] == 0


def test_a_history_without_an_ok_txn_has_no_verdict() -> None:
    h = H()
    _txn(h, 0, [["append", "k0", 1]], type_="info", error="13 crash")
    verdict, d = checkers.check_txn_list_append(h.events, CFG)
    assert verdict == "unknown" and d["reason"] == "no transaction completed ok"


def test_a_read_of_a_failed_append_is_g1a() -> None:
    h = H()
    _txn(h, 1, [["append", "k0", 2]], type_="fail", error="30 txn-conflict")
    _txn(h, 0, [["r", "k0", None]], [["r", "k0", [2]]])
    verdict, d = checkers.check_txn_list_append(h.events, CFG)
    assert verdict == "invalid"
    assert d["anomalies"][0]["kind"] == "G1a"


def test_a_torn_transaction_is_g_single() -> None:
    """T1 appends to k0 and k1; T2 sees T1's k0 but not its k1."""
    h = H()
    _txn(h, 0, [["append", "k0", 1], ["append", "k1", 1]],
         [["append", "k0", 1], ["append", "k1", 1]])
    _txn(h, 1, [["r", "k0", None], ["r", "k1", None]], [["r", "k0", [1]], ["r", "k1", []]])
    verdict, d = checkers.check_txn_list_append(h.events, CFG)
    assert verdict == "invalid"
    kinds = {a["kind"] for a in d["anomalies"]}
    assert kinds & {"G-single", "G-single-realtime"}, kinds
    assert d["section"]["anomaly_kinds"]


def test_a_stale_read_is_caught_only_under_strict_serializability() -> None:
    h = H()
    _txn(h, 0, [["append", "k0", 1]], [["append", "k0", 1]])
    _txn(h, 1, [["r", "k0", None]], [["r", "k0", []]])  # began after the append completed
    assert checkers.check_txn_list_append(h.events, CFG)[0] == "invalid"
    serial = SimpleNamespace(**{**vars(CFG), "consistency": "serializable"})
    assert checkers.check_txn_list_append(h.events, serial)[0] == "valid"
    # the default, when a config names none, is Maelstrom's: strict-serializable
    assert checkers.check_txn_list_append(h.events, SimpleNamespace())[0] == "invalid"


@pytest.mark.parametrize("got", [
    [["append", "k0", 1]],  # the read is missing
    [["r", "k0", [1]], ["append", "k0", 9]],  # a different value appended
    [["r", "k7", [1]], ["append", "k0", 1]],  # another key
    [["r", "k0", 5], ["append", "k0", 1]],  # a read that is no list
    "txn_ok",
])
def test_a_txn_ok_that_does_not_echo_its_request_is_wrong(got: Any) -> None:
    h = H()
    _txn(h, 0, [["r", "k0", None], ["append", "k0", 1]], got, node="n2")
    _txn(h, 1, [["r", "k0", None]], [["r", "k0", []]])
    verdict, d = checkers.check_txn_list_append(h.events, CFG)
    assert verdict == "invalid"
    assert d["anomalies"][0]["kind"] == "wrong-txn"
    assert "does not echo" in d["anomalies"][0]["sentence"]
    assert d["section"]["wrong_replies"] == 1


def test_the_section_renders() -> None:
    from maelstrom.report import render

    h = H()
    _txn(h, 0, [["append", "k0", 1]], [["append", "k0", 1]])
    _txn(h, 1, [["r", "k0", None]], [["r", "k0", []]])
    _, d = checkers.check_txn_list_append(h.events, CFG)
    page = render(d["section"], SimpleNamespace(node_ids=["n1", "n2"]))
    assert "Workload: txn-list-append" in page and "strict-serializable" in page
    assert "G-single" in page


# --- whole runs of the test nodes -------------------------------------------------------


def go(tmp_path: Path, program: str, nemesis: str, nodes: int = 3, seed: int = 7) -> dict:
    from harness.config import RunConfig
    from harness.runner import run

    cfg = RunConfig(system=maelstrom_system(program, tmp_path), workload="txn-list-append",
                    nodes=nodes, time_limit=10, rate=100, keys=3, nemesis=nemesis,
                    nemesis_interval=2, seed=seed, store=str(tmp_path / "store"),
                    name="txn-list-append", progress=False, follow=False,
                    recovery_timeout=10, check_time_limit=60)
    result = run(cfg)
    checker = result.results.get("checker") or {}
    return {"verdict": result.verdict, "section": checker.get("section") or {},
            "anomalies": checker.get("anomalies") or [], "counts": result.counts,
            "report": result.report, "notes": result.results.get("notes")}


CYCLES = {"G0", "G1c", "G-single", "G2-item", "G1a", "G1b", "internal", "incompatible-order"}


def _named(anomalies: list[dict[str, Any]]) -> set[str]:
    """The anomaly kinds without Elle's -realtime / -process suffix."""
    return {str(a.get("kind")).removesuffix("-realtime").removesuffix("-process")
            for a in anomalies}


@pytest.mark.process
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("nemesis", "nodes"), [
    pytest.param("partition", 5, marks=pytest.mark.slow),
    pytest.param("kill,pause", 3, marks=pytest.mark.slow),  # the suite stays under 10 minutes
])
def test_the_correct_node_is_valid(tmp_path: Path, no_leftovers: None, nemesis: str,
                                   nodes: int) -> None:
    r = go(tmp_path, "txn_list_append.py", nemesis, nodes=nodes)
    assert r["verdict"] == "valid", r
    assert r["section"]["txns"]["ok"] > 100, r["section"]
    assert r["report"] is not None and r["report"].exists()


@pytest.mark.process
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("program", "nemesis"), [
    ("txn_list_append.py --bug", "partition"),
    pytest.param("txn_list_append.py --stale", "kill,pause", marks=pytest.mark.slow),
])
def test_the_buggy_nodes_are_caught(tmp_path: Path, no_leftovers: None, program: str,
                                    nemesis: str) -> None:
    r = go(tmp_path, program, nemesis)
    assert r["verdict"] == "invalid", r
    assert _named(r["anomalies"]) & CYCLES, [a.get("kind") for a in r["anomalies"]]
    page = r["report"].read_text()
    assert "What went wrong" in page and "Workload: txn-list-append" in page
