"""Maelstrom's protocol, services and checkers on their own (no processes)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from maelstrom import checkers, protocol
from maelstrom.services import LinKV, LwwKV, SeqKV, Services


def test_error_codes_follow_maelstrom() -> None:
    for code in (1, 10, 11, 12, 14, 20, 21, 22, 30):
        assert protocol.is_definite(code), code
    for code in (0, 13, 1000, 42, -1, None, "11", True):
        assert not protocol.is_definite(code), code
    r = protocol.client_reply(7, {"type": "error", "code": 22, "text": "no", "in_reply_to": 7})
    assert r == {"id": 7, "ok": False, "error": "22 precondition-failed", "code": 22,
                 "text": "no", "definite": True}
    assert protocol.client_reply(7, {"type": "error", "code": 1234})["definite"] is False
    assert protocol.code_of("20 key-does-not-exist") == 20
    assert protocol.client_reply(3, {"type": "read_ok", "messages": [1]})["value"] == [1]
    assert protocol.client_reply(3, {"type": "generate_ok", "id": "x"})["value"] == "x"


def test_grid_topology_is_symmetric() -> None:
    ids = [f"n{i}" for i in range(5)]
    top = protocol.grid(ids)
    assert top["n0"] == ["n3", "n1"]  # a 3-wide grid: below, right
    for a, near in top.items():
        for b in near:
            assert a in top[b]


def _kv(store: Any, src: str, **body: Any) -> dict[str, Any]:
    return store.handle(src, {"msg_id": 1, **body})


def test_lin_kv_codes() -> None:
    kv = LinKV()
    assert _kv(kv, "n0", type="read", key=1)["code"] == 20
    assert _kv(kv, "n0", type="cas", key=1, **{"from": 1, "to": 2})["code"] == 20
    assert _kv(kv, "n0", type="cas", key=1, create_if_not_exists=True,
               **{"from": 1, "to": 2})["type"] == "cas_ok"
    assert _kv(kv, "n1", type="read", key=1)["value"] == 2
    assert _kv(kv, "n1", type="cas", key=1, **{"from": 1, "to": 3})["code"] == 22
    assert _kv(kv, "n1", type="write", key=[1, 2], value=5)["type"] == "write_ok"
    assert _kv(kv, "n1", type="read", key=[1, 2])["value"] == 5
    assert _kv(kv, "n1", type="write", key=1)["code"] == 12
    assert _kv(kv, "n1", type="delete", key=1)["code"] == 10


def test_seq_kv_is_sequential_and_serves_stale_reads() -> None:
    """Each client's reads never go back in the total order of updates, and some
    reads do observe past states (it is not merely linearizable)."""
    kv = SeqKV(random.Random(3))
    stale = 0
    last_seen: dict[str, int] = {}
    for i in range(1, 400):
        writer, reader = f"n{i % 3}", f"n{(i + 1) % 3}"
        _kv(kv, writer, type="write", key="x", value=i)
        got = _kv(kv, reader, type="read", key="x")["value"]
        assert got <= i
        assert got >= last_seen.get(reader, 0)  # monotonic per client
        assert got >= last_seen.get(f"w{reader}", 0)  # sees its own writes
        last_seen[reader] = got
        last_seen[f"w{writer}"] = i
        stale += got < i
    assert stale > 20


def test_lww_kv_converges_after_gossip() -> None:
    kv = LwwKV(random.Random(1))
    for i in range(20):
        _kv(kv, "n0", type="write", key="k", value=i)
    before = {_kv(kv, "n1", type="read", key="k")["value"] for _ in range(50)}
    assert len(before) > 1  # the replicas answered independently
    kv.tick()
    # one winner everywhere: the newest stamp, which clock skew may give an older write
    assert len({_kv(kv, "n1", type="read", key="k")["value"] for _ in range(50)}) == 1


def test_services_route_by_destination() -> None:
    import orjson

    s = Services(0)
    out = orjson.loads(s.handle(b'{"src":"n0","dest":"lin-tso","body":{"type":"ts","msg_id":4}}'))
    assert out == {"src": "lin-tso", "dest": "n0", "body": {"type": "ts_ok", "ts": 1,
                                                              "in_reply_to": 4}}
    assert s.handle(b"not json") is None
    out = orjson.loads(s.handle(b'{"src":"n0","dest":"nope","body":{"type":"ts","msg_id":4}}'))
    assert out["body"]["code"] == 1


# --- checkers on hand-made histories -----------------------------------------------------


class H:
    """A history under construction: invoke/complete with increasing times."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.t = 0

    def ev(self, p: int, type_: str, f: str, key: Any, value: Any, **kw: Any) -> None:
        self.t += 1_000_000  # 1 ms per event
        self.events.append({"index": len(self.events), "time": self.t, "process": p,
                            "type": type_, "f": f, "key": key, "value": value, **kw})

    def op(self, p: int, f: str, key: Any, value: Any, out: Any = None, type_: str = "ok",
           **kw: Any) -> None:
        self.ev(p, "invoke", f, key, value)
        self.ev(p, type_, f, key, out if out is not None or f == "read" else value, **kw)


CFG = SimpleNamespace(workload="g-set", check_time_limit=10)


def test_set_checker_finds_lost_unexpected_and_stale() -> None:
    h = H()
    h.op(0, "add", "g-set", 1, node="n1")
    h.op(1, "add", "g-set", 2, node="n2")
    h.op(2, "add", "g-set", 3, type_="info")
    h.op(0, "read", "g-set", None, [1], node="n2")  # stale: lacks 2, added before
    h.op(0, "read", "g-set", None, [1, 2, 9], node="n1")  # 9 was never added
    h.op(5, "read", "g-set", None, [1, 2, 3], node="n1", final=True)
    h.op(6, "read", "g-set", None, [2], node="n2", final=True)  # 1 lost here
    verdict, d = checkers.check_set(h.events, CFG)
    assert verdict == "invalid"
    sec = d["section"]
    assert sec["lost_count"] == 1 and sec["lost"][0]["value"] == 1
    assert sec["lost"][0]["nodes"] == ["n2"]
    assert sec["unexpected_count"] == 1 and sec["unexpected"][0]["value"] == 9
    assert sec["stale_reads"] == 1
    assert {a["kind"] for a in d["anomalies"]} == {"lost", "unexpected"}


def test_set_checker_passes_a_converged_history_and_measures_visibility() -> None:
    h = H()
    h.op(0, "add", "g-set", 1, node="n1")
    h.op(0, "read", "g-set", None, [], node="n2")
    h.op(0, "read", "g-set", None, [1], node="n2")
    h.op(0, "read", "g-set", None, [1], node="n1")
    h.op(1, "add", "g-set", 2, node="n1")
    h.op(5, "read", "g-set", None, [1, 2], node="n1", final=True)
    h.op(6, "read", "g-set", None, [1, 2], node="n2", final=True)
    verdict, d = checkers.check_set(h.events, CFG)
    assert verdict == "valid", d
    sec = d["section"]
    # 1: visible on n2 from the read invoked at 5 ms, on n1 from the one at 7 ms
    assert sec["visibility_ms"]["max"] == pytest.approx(7.0 - 1.0)
    # 2 is first seen everywhere by the final reads: no latency is claimed for it
    assert sec["visible_only_finally"] == 1 and sec["never_stable"] == 0


def test_set_checker_without_final_reads_is_unknown() -> None:
    h = H()
    h.op(0, "add", "g-set", 1, node="n1")
    verdict, d = checkers.check_set(h.events, CFG)
    assert verdict == "unknown" and "final read" in d["reason"]


def test_counter_checker_bounds() -> None:
    cfg = SimpleNamespace(workload="pn-counter")
    h = H()
    h.op(0, "add", "pn-counter", 5, node="n1")
    h.op(1, "add", "pn-counter", -2, node="n2")
    h.op(2, "add", "pn-counter", 3, type_="info")
    h.op(3, "add", "pn-counter", -4, type_="info")
    h.op(4, "add", "pn-counter", 100, type_="fail")
    h.op(5, "read", "pn-counter", None, 3, node="n1", final=True)
    h.op(6, "read", "pn-counter", None, 2, node="n2", final=True)  # 3-4 = -1 ... 3+3 = 6: ok
    verdict, d = checkers.check_counter(h.events, cfg)
    assert verdict == "valid", d
    assert (d["section"]["low"], d["section"]["high"]) == (-1, 6)
    h.op(7, "read", "pn-counter", None, 8, node="n3", final=True)  # double counted
    verdict, d = checkers.check_counter(h.events, cfg)
    assert verdict == "invalid" and "more than" in d["anomalies"][0]["sentence"]


def test_unique_ids_and_echo() -> None:
    h = H()
    h.op(0, "generate", "ids", None, "a", node="n1")
    h.op(1, "generate", "ids", None, [1, 2], node="n2")
    assert checkers.check_unique_ids(h.events, CFG)[0] == "valid"
    h.op(2, "generate", "ids", None, [1, 2], node="n3")
    verdict, d = checkers.check_unique_ids(h.events, CFG)
    assert verdict == "invalid" and d["section"]["duplicates"] == 1
    e = H()
    e.op(0, "echo", "echo-0-1", None, "echo-0-1", node="n1")
    assert checkers.check_echo(e.events, CFG)[0] == "valid"
    e.op(0, "echo", "echo-0-2", None, "echo-0-1", node="n1")
    assert checkers.check_echo(e.events, CFG)[0] == "invalid"


def test_lin_kv_maps_code_20_on_read_to_absent() -> None:
    cfg = SimpleNamespace(workload="lin-kv", check_time_limit=10)
    h = H()
    h.op(0, "read", "k1", None, type_="fail", error="20 key-does-not-exist")
    h.op(0, "write", "k1", 3)
    h.op(0, "cas", "k1", [2, 4], type_="fail", error="22 precondition-failed")
    h.op(0, "read", "k1", None, 3)
    verdict, d = checkers.check_lin_kv(h.events, cfg)
    assert verdict == "valid", d
    assert d["section"]["absent_reads"] == 1
    h.op(0, "read", "k1", None, type_="fail", error="20 key-does-not-exist")  # after a write
    assert checkers.check_lin_kv(h.events, cfg)[0] == "invalid"


def test_problem_lines_leave_out_the_harness_own_kills(tmp_path) -> None:
    from maelstrom.final import problems_in

    lines = [
        "12:00:00.000 n1 (n0) maelstrom: the node program ended while serving (exit code 3); x",
        "12:00:00.000 n1 (n0) maelstrom: the node program ended while serving (killed by SIGKILL)",
        ("12:00:00.000 n1 (n0) maelstrom: the node program ended before it answered init "
         "(exit status unknown); 0 messages carried"),
        "12:00:00.000 n1 (n0) maelstrom: the node program ended while serving (killed by SIGTERM)",
        "12:00:00.000 n1 (n0) maelstrom: the node program ended while serving (killed by SIGSEGV)",
        "12:00:00.000 n1 (n0) maelstrom: the node program wrote a stdout line that is not JSON",
        "a line of the program's own",
    ]
    (tmp_path / "n1.log").write_text("\n".join(lines) + "\n")
    found = problems_in(tmp_path)
    assert len(found) == 3, found
    assert any("exit code 3" in f for f in found)
    assert any("SIGSEGV" in f for f in found)
    assert any("not JSON" in f for f in found)
