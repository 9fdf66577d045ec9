"""The client's retry rules (harness/retry_rules.py) as a table, and the Pipeline keeping them
on real sockets against scripted libzmq nodes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import zmq

from harness import retry_rules as rules
from harness.client import Call, Pipeline

pytestmark = pytest.mark.timeout(60)

MS = 1_000_000


# --- the pure rules ---------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "expected"), [
    ({"ok": True}, rules.OK),
    ({"ok": False, "error": "timeout"}, rules.INFO),  # not definite: may still take effect
    ({"ok": False, "definite": False, "error": "not_leader"}, rules.INFO),
    ({"ok": False, "definite": True, "error": "cas_mismatch"}, rules.FAIL),
    ({"ok": False, "definite": True, "error": "not_leader"}, rules.REFUSED),
    ({"ok": False, "definite": True, "error": "unavailable"}, rules.REFUSED),
])
def test_outcome_of_each_kind_of_reply(reply: dict, expected: str) -> None:
    assert rules.outcome(reply) == expected


def test_a_refusal_follows_a_usable_hint_at_once_else_goes_home_after_a_pause() -> None:
    nodes = {"n1", "n2", "n3"}
    refusal = {"ok": False, "definite": True, "error": "not_leader", "leader": "n2"}
    assert rules.after_refusal(refusal, "n1", nodes, True, 100, 10**9) == ("n2", 100)
    home = (None, 100 + rules.REFUSED_PAUSE_NS)
    assert rules.after_refusal(refusal, "n1", nodes, False, 100, 10**9) == home
    assert rules.after_refusal(refusal, "n2", nodes, True, 100, 10**9) == home  # itself
    assert rules.after_refusal({**refusal, "leader": "n9"}, "n1", nodes, True, 100,
                               10**9) == home  # unknown node
    assert rules.after_refusal({**refusal, "leader": None}, "n1", nodes, True, 100,
                               10**9) == home
    # never past the deadline, never before now
    assert rules.after_refusal(refusal, "n2", nodes, True, 100, 100 + MS) == (None, 100 + MS)
    assert rules.after_refusal(refusal, "n2", nodes, True, 100, 50) == (None, 100)


def test_an_unsent_request_is_retried_at_its_node_then_moves_on() -> None:
    now = 1_000 * MS
    until = rules.send_deadline(now, now + 10_000 * MS)
    assert until == now + rules.SEND_WAIT_NS
    assert rules.send_deadline(now, now + 5 * MS) == now + 5 * MS  # capped by the deadline
    assert rules.after_unsent(now, until, now + 10_000 * MS) == (False, now + rules.SEND_RETRY_NS)
    late = until - rules.SEND_RETRY_NS + 1
    assert rules.after_unsent(late, until, now + 10_000 * MS) == (True, late)
    # too little time left for a send to be worth it: the next node, at the deadline
    assert rules.after_unsent(late, until, late + rules.SEND_RETRY_NS) == (
        True, late + rules.SEND_RETRY_NS)


def test_the_error_of_an_expired_operation_is_its_last_refusals() -> None:
    assert rules.expired_error(None) == "unavailable"
    assert rules.expired_error({"ok": False, "error": "not_leader"}) == "not_leader"


def test_completion_values() -> None:
    from harness.generator import Invocation

    reply = {"ok": True, "value": 7}
    assert rules.completion_value(Invocation("read", "k", None), "ok", reply) == 7
    assert rules.completion_value(Invocation("read", "k", None), "info", None) is None
    assert rules.completion_value(Invocation("write", "k", 3), "fail", None) == 3
    assert rules.completion_value(Invocation("cas", "k", [1, 2]), "ok", reply) == [1, 2]

    class Echo:  # an invocation without a rule of its own (a Maelstrom echo)
        f, value, key = "echo", None, None

    assert rules.completion_value(Echo(), "ok", {"value": "hi"}) == "hi"


# --- the Pipeline keeps them --------------------------------------------------------


class Node:
    """A libzmq ROUTER answering each request with ``answer(request)``: a reply, a
    (reply, delay in s) pair, or None (no reply); notes every request it received."""

    def __init__(self, answer: Callable[[dict], dict | None], port: int | None = None) -> None:
        self.answer = answer
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.port = port
            self.sock.bind(f"tcp://127.0.0.1:{port}")
        self.addr = f"tcp://127.0.0.1:{self.port}"
        self.got: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        later: list[tuple[float, bytes, dict]] = []
        while not self._stop.is_set():
            now = time.monotonic()
            for item in [x for x in later if x[0] <= now]:
                later.remove(item)
                self.sock.send_multipart([item[1], msgpack.packb(item[2])])
            if not self.sock.poll(2):
                continue
            while True:
                try:
                    client, data = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                req = msgpack.unpackb(data)
                self.got.append(req)
                reply = self.answer(req)
                delay = 0.0
                if isinstance(reply, tuple):
                    reply, delay = reply
                if reply is not None:
                    later.append((time.monotonic() + delay, client, {"id": req["id"], **reply}))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.ctx.term()


def run(pipe: Pipeline, calls: list[tuple[str, dict, int]], limit_s: float = 5.0
        ) -> list[tuple[Any, ...]]:
    """Start each (home, body, timeout) operation; step until all ended."""
    ended: list[tuple[Any, ...]] = []

    def done(c: Call, type_: str, reply: dict | None, node: str | None, error: str | None,
             t: int) -> None:
        ended.append((c.home, type_, node, error, t, reply))

    started = time.monotonic_ns()
    for home, body, timeout in calls:
        pipe.start(Call(home, done), dict(body), timeout)
    while len(ended) < len(calls):
        assert time.monotonic_ns() - started < limit_s * 1e9, ended
        pipe.step(5 * MS)
    return ended


@pytest.fixture
def nodes() -> Any:
    made: list[Node] = []

    def make(answer: Callable[[dict], dict | None], port: int | None = None) -> Node:
        made.append(Node(answer, port))
        return made[-1]

    yield make
    for n in made:
        n.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_not_leader_hint_is_followed_and_a_cas_mismatch_is_a_fail(nodes: Any) -> None:
    leader = nodes(lambda r: {"ok": True} if r["op"] == "write" else
                   {"ok": False, "definite": True, "error": "cas_mismatch"})
    follower = nodes(lambda r: {"ok": False, "definite": True, "error": "not_leader",
                                "leader": "n1"})
    pipe = Pipeline({"n1": leader.addr, "n2": follower.addr})
    try:
        assert pipe.wait_connected(5)
        ended = run(pipe, [("n2", {"op": "write", "key": "k", "value": 1}, 2000 * MS),
                           ("n2", {"op": "cas", "key": "k", "expected": 0, "value": 2},
                            2000 * MS)])
    finally:
        pipe.close()
    assert sorted((e[1], e[2], e[3]) for e in ended) == [("fail", "n1", "cas_mismatch"),
                                                        ("ok", "n1", None)]
    assert len(follower.got) == 2 and len(leader.got) == 2
    ids = [r["id"] for r in follower.got + leader.got]
    assert len(set(ids)) == 4, "each attempt has a request id of its own"


def test_a_reply_that_is_not_definite_is_info_and_never_sent_again(nodes: Any) -> None:
    node = nodes(lambda r: {"ok": False, "error": "timeout"})
    pipe = Pipeline({"n1": node.addr})
    try:
        assert pipe.wait_connected(5)
        (ended,) = run(pipe, [("n1", {"op": "write", "key": "k", "value": 1}, 500 * MS)])
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            pipe.step(10 * MS)
    finally:
        pipe.close()
    assert ended[1:4] == ("info", "n1", "timeout")
    assert len(node.got) == 1


def test_no_reply_is_info_at_the_deadline_and_a_late_reply_completes_nothing(
        nodes: Any) -> None:
    # The write's reply comes 300 ms late, after its 100 ms deadline and while the
    # next operation (a read, answered at 500 ms) is in flight.
    node = nodes(lambda r: ({"ok": True, "value": "stale"}, 0.3) if r["op"] == "write"
                 else ({"ok": True, "value": "fresh"}, 0.5))
    pipe = Pipeline({"n1": node.addr})
    try:
        assert pipe.wait_connected(5)
        t0 = time.monotonic_ns()
        (first,) = run(pipe, [("n1", {"op": "write", "key": "k", "value": 1}, 100 * MS)])
        (second,) = run(pipe, [("n1", {"op": "read", "key": "k"}, 2000 * MS)])
    finally:
        pipe.close()
    assert first[1:4] == ("info", "n1", "timeout")
    assert 100 * MS <= first[4] - t0 < 300 * MS
    assert second[1] == "ok" and second[5]["value"] == "fresh"
    assert second[4] - t0 >= 500 * MS
    assert node.got[0]["id"] != node.got[1]["id"], "request ids are never reused"


def test_a_node_that_is_down_is_skipped_after_the_send_wait(nodes: Any) -> None:
    up = nodes(lambda r: {"ok": True})
    down = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    pipe = Pipeline({"n1": down, "n2": up.addr})
    try:
        t0 = time.monotonic_ns()
        (ended,) = run(pipe, [("n1", {"op": "write", "key": "k", "value": 1}, 3000 * MS)])
    finally:
        pipe.close()
    assert ended[1:3] == ("ok", "n2")
    waited = ended[4] - t0
    assert rules.SEND_WAIT_NS - rules.SEND_RETRY_NS <= waited < rules.SEND_WAIT_NS + 500 * MS, waited


def test_an_operation_whose_nodes_are_all_down_fails_at_its_deadline() -> None:
    pipe = Pipeline({"n1": f"tcp://127.0.0.1:{free_port()}"})
    try:
        t0 = time.monotonic_ns()
        (ended,) = run(pipe, [("n1", {"op": "write", "key": "k", "value": 1}, 300 * MS)])
    finally:
        pipe.close()
    assert ended[1:4] == ("fail", "n1", "unavailable")  # never sent: certainly no effect
    assert ended[4] - t0 >= 300 * MS


def test_a_restarted_node_is_reached_again(nodes: Any) -> None:
    port = free_port()
    first = nodes(lambda r: {"ok": True, "value": "first"}, port)
    pipe = Pipeline({"n1": first.addr})
    try:
        assert pipe.wait_connected(5)
        (a,) = run(pipe, [("n1", {"op": "read", "key": "k"}, 1000 * MS)])
        first.close()
        end = time.monotonic() + 0.1  # the node is down; the client's loop goes on
        while time.monotonic() < end:
            pipe.step(5 * MS)
        second = nodes(lambda r: {"ok": True, "value": "second"}, port)
        (b,) = run(pipe, [("n1", {"op": "read", "key": "k"}, 2000 * MS)])
    finally:
        pipe.close()
    assert a[5]["value"] == "first" and b[1] == "ok" and b[5]["value"] == "second"
    assert second.got


def test_invokes_are_stamped_just_before_their_requests_leave(nodes: Any) -> None:
    received: list[int] = []

    def answer(r: dict) -> dict:
        received.append(time.monotonic_ns())
        return {"ok": True}

    node = nodes(answer)
    stamps: list[int] = []
    pipe = Pipeline({"n1": node.addr}, on_send=stamps.append)
    try:
        assert pipe.wait_connected(5)
        before = time.monotonic_ns()
        ended = run(pipe, [("n1", {"op": "write", "key": "k", "value": i}, 1000 * MS)
                           for i in range(20)])
    finally:
        pipe.close()
    assert len(stamps) == 1, "the twenty requests left together"
    assert before <= stamps[0] <= min(received)
    assert all(e[4] >= max(received) for e in ended)
