"""nodes/common/zmtp.py's Router against libzmq DEALERs and harness/zmtp.py: the
handshake and its metadata, frames of every size both ways, multi-part messages,
heartbeats, strangers, clients that go away, ipc; its Dealer as a node's peer
socket: identity, heartbeats, a silent peer given up and reconnected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import zmq

from harness.zmtp import Connection
from nodes.common.zmtp import Dealer, Router

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def router() -> Iterator[Router]:
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = Router(f"tcp://127.0.0.1:{port}", {b"X-Batch": b"1"})
    yield r
    r.close()


def pump(r: Router, until: float, want: int = 0) -> list[tuple[bytes, bytes | None]]:
    """Run the router's side of a node loop until ``want`` messages came (or ``until``)."""
    got: list[tuple[bytes, bytes | None]] = []
    while time.monotonic() < until and (not want or len(got) < want):
        for fd, ev in zmq.zmq_poll(r.poll_items, 5):
            r.event(fd, ev)
        got += r.take()
        r.flush()
    return got


def dealer(r: Router, **opts: int) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    for k, v in opts.items():
        s.setsockopt(getattr(zmq, k), v)
    s.connect(r.addr)
    return s


def test_libzmq_dealers_talk_to_it_as_to_a_router(router: Router) -> None:
    a, b = dealer(router), dealer(router)
    try:
        sizes = [0, 1, 254, 255, 256, 70_000, 3]
        for i, n in enumerate(sizes):
            a.send(bytes([i]) * n)
        b.send(b"from b")
        got = pump(router, time.monotonic() + 10, want=len(sizes) + 1)
        from_a = [m for cid, m in got if m != b"from b"]
        assert from_a == [bytes([i]) * n for i, n in enumerate(sizes)], "in order, every size"
        ids = {cid for cid, _ in got}
        assert len(ids) == 2, "each connection has a routing id of its own"
        cid_a = next(cid for cid, m in got if m == b"\x00" * 0)
        cid_b = next(cid for cid, m in got if m == b"from b")
        for n in sizes:
            router.send(cid_a, b"r" * n)
        router.send(cid_b, b"to b")
        router.flush()
        a.setsockopt(zmq.RCVTIMEO, 5000)
        b.setsockopt(zmq.RCVTIMEO, 5000)
        assert [a.recv() for _ in sizes] == [b"r" * n for n in sizes]
        assert b.recv() == b"to b"
        # A multi-part message is handed over as None; the next one arrives as usual.
        a.send_multipart([b"one", b"two"])
        a.send(b"after")
        assert [m for _, m in pump(router, time.monotonic() + 5, want=2)] == [None, b"after"]
    finally:
        a.close()
        b.close()


def test_the_harness_connection_sees_the_batch_property(router: Router) -> None:
    conn = Connection(router.addr)
    try:
        deadline = time.monotonic() + 5
        while not conn.ready:
            assert time.monotonic() < deadline, "no handshake"
            now = time.monotonic_ns()
            conn.service(now)
            if conn.want_write:
                conn.on_writable(now)
            if conn.sock is not None:
                conn.read_frames()
            pump(router, time.monotonic() + 0.005)
        assert conn.batch
    finally:
        conn.close()


def test_heartbeats_are_answered_and_strangers_and_leavers_cost_only_their_connection(
        router: Router) -> None:
    hb = dealer(router, HEARTBEAT_IVL=20, HEARTBEAT_TIMEOUT=100, HEARTBEAT_TTL=200)
    stranger = socket.create_connection(("127.0.0.1", int(router.addr.rsplit(":", 1)[1])))
    try:
        stranger.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 100)
        hb.send(b"hello")
        (cid, msg), = pump(router, time.monotonic() + 5, want=1)
        assert msg == b"hello"
        pump(router, time.monotonic() + 0.4)  # four heartbeat timeouts long
        stranger.settimeout(5)
        data = b""
        while chunk := stranger.recv(4096):  # closed by the router after its greeting
            data += chunk
        assert data[:1] == b"\xff", "it got the greeting, then the connection closed"
        router.send(cid, b"still here")
        router.flush()
        hb.setsockopt(zmq.RCVTIMEO, 5000)
        assert hb.recv() == b"still here", "libzmq kept the connection: its PINGs had PONGs"
        hb.close()
        pump(router, time.monotonic() + 0.3)
        router.send(cid, b"to nobody")  # dropped: the client is gone
        router.flush()
        assert len(router.poll_items) == 1, "only the listening socket is left"
    finally:
        hb.close()
        stranger.close()


def test_ipc(tmp_path: object) -> None:
    path = f"/tmp/node-zmtp-test-{time.monotonic_ns()}.sock"
    r = Router(f"ipc://{path}", {})
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    try:
        s.connect(f"ipc://{path}")
        s.send(b"over a unix socket")
        (cid, msg), = pump(r, time.monotonic() + 5, want=1)
        assert msg == b"over a unix socket"
        r.send(cid, b"back")
        r.flush()
        s.setsockopt(zmq.RCVTIMEO, 5000)
        assert s.recv() == b"back"
    finally:
        s.close()
        r.close()


def spin(d: Dealer, until: float) -> None:
    """Run a Dealer's side of a loop (as the driver does) until ``until``."""
    while time.monotonic() < until:
        now = time.monotonic_ns()
        d.service(now)
        if d.want_write:
            d.on_writable(now)
        if d.sock is not None:
            d.read_frames()
        d.flush()
        time.sleep(0.002)


def test_a_peer_dealer_names_itself_and_gives_up_on_a_peer_that_stopped_answering() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = Router(f"tcp://127.0.0.1:{port}", {}, identities=True)
    d = Dealer(r.addr, identity=b"n2", heartbeat_ns=50_000_000, heartbeat_timeout_ns=200_000_000)
    try:
        deadline = time.monotonic() + 5
        while not d.ready:
            assert time.monotonic() < deadline, "no handshake"
            spin(d, time.monotonic() + 0.005)
            pump(r, time.monotonic() + 0.005)
        assert d.send(b"one")
        d.flush()
        (who, msg), = pump(r, time.monotonic() + 5, want=1)
        assert (who, msg) == (b"n2", b"one"), "the routing id is the DEALER's identity"
        # Answered PINGs keep it up for many timeouts...
        t_end = time.monotonic() + 0.6
        while time.monotonic() < t_end:
            spin(d, time.monotonic() + 0.01)
            pump(r, time.monotonic() + 0.01)
        assert d.ready and d.version == 2, "the connection was never dropped"
        # ...and a peer that stops answering (paused) is given up: sends fail at once.
        spin(d, time.monotonic() + 0.5)
        assert not d.ready and not d.send(b"lost"), "a silent peer's connection is closed"
        # When it answers again, a new connection replaces the old one (handover).
        deadline = time.monotonic() + 5
        while not d.ready:
            assert time.monotonic() < deadline, "never reconnected"
            spin(d, time.monotonic() + 0.01)
            pump(r, time.monotonic() + 0.01)
        assert d.send(b"two")
        d.flush()
        assert pump(r, time.monotonic() + 5, want=1) == [(b"n2", b"two")]
    finally:
        d.close()
        r.close()
