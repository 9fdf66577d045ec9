"""harness/zmtp.py against libzmq: the handshake, short and long frames in both directions,
multi-part messages dropped, heartbeats answered, a stranger's bytes survived."""

from __future__ import annotations

import socket
import threading
import time

import msgpack
import pytest
import zmq

from harness.zmtp import Connection, parse_address
from nodes.common import wire

pytestmark = pytest.mark.timeout(30)


def drive(conn: Connection, until: float, want: int = 0) -> list[bytes]:
    """Run the connection's loop (as Pipeline does) until ``want`` frames came or ``until``."""
    got: list[bytes] = []
    while time.monotonic() < until and (not want or len(got) < want):
        now = time.monotonic_ns()
        conn.service(now)
        if conn.want_write:
            conn.on_writable(now)
        if conn.sock is not None:
            frames = conn.read_frames()
            got += frames or []
        conn.flush()
        time.sleep(0.001)
    return got


@pytest.fixture
def router() -> zmq.Socket:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    yield sock
    sock.close()
    ctx.destroy(linger=0)


def connected(router: zmq.Socket) -> Connection:
    port = router.bind_to_random_port("tcp://127.0.0.1")
    conn = Connection(f"tcp://127.0.0.1:{port}")
    assert not conn.send(b"early"), "nothing is queued before the handshake (ZMQ_IMMEDIATE)"
    deadline = time.monotonic() + 5
    while not conn.ready:
        assert time.monotonic() < deadline
        drive(conn, time.monotonic() + 0.01)
    return conn


def test_frames_of_every_size_cross_in_order_both_ways(router: zmq.Socket) -> None:
    conn = connected(router)
    sizes = [0, 1, 254, 255, 256, 70_000, 3] * 20
    for i, n in enumerate(sizes):
        assert conn.send(bytes([i % 251]) * n)
    conn.flush()
    router.setsockopt(zmq.RCVTIMEO, 5000)
    got = [router.recv_multipart() for _ in sizes]
    assert [m[1] for m in got] == [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    for m in got:
        router.send_multipart(m)
    back = drive(conn, time.monotonic() + 5, want=len(sizes))
    assert back == [m[1] for m in got]
    conn.close()


def test_a_router_that_advertises_batches_gets_one_array_per_flush(router: zmq.Socket) -> None:
    router.setsockopt(zmq.METADATA, wire.BATCH_METADATA)
    conn = connected(router)
    assert conn.batch, "the READY's X-Batch property was read"
    values = [{"id": i, "pad": "x" * (i * 40)} for i in range(20)]  # the array is a long frame
    for v in values:
        assert conn.send(msgpack.packb(v))
    conn.flush()
    assert conn.send(msgpack.packb({"id": 99}))
    conn.flush()
    router.setsockopt(zmq.RCVTIMEO, 5000)
    first, second = router.recv_multipart(), router.recv_multipart()
    assert msgpack.unpackb(first[1]) == values
    assert msgpack.unpackb(second[1]) == [{"id": 99}]
    conn.close()
    assert not conn.batch, "learnt again at the next handshake"


def test_a_plain_router_gets_every_message_alone(router: zmq.Socket) -> None:
    conn = connected(router)
    assert not conn.batch
    conn.send(b"one")
    conn.send(b"two")
    conn.flush()
    router.setsockopt(zmq.RCVTIMEO, 5000)
    assert [router.recv_multipart()[1] for _ in range(2)] == [b"one", b"two"]
    conn.close()


def test_a_multipart_message_is_dropped_whole_and_the_next_one_arrives(
        router: zmq.Socket) -> None:
    conn = connected(router)
    conn.send(b"hello")
    conn.flush()
    router.setsockopt(zmq.RCVTIMEO, 5000)
    ident, _ = router.recv_multipart()
    router.send_multipart([ident, b"part one", b"part two" * 100])
    router.send_multipart([ident, b"single"])
    assert drive(conn, time.monotonic() + 5, want=1) == [b"single"]
    conn.close()


def test_heartbeats_are_answered_so_the_router_keeps_the_connection(
        router: zmq.Socket) -> None:
    router.setsockopt(zmq.HEARTBEAT_IVL, 20)
    router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 100)
    router.setsockopt(zmq.HEARTBEAT_TTL, 200)
    conn = connected(router)
    sock = conn.sock
    drive(conn, time.monotonic() + 0.6)  # many heartbeat timeouts long
    assert conn.ready and conn.sock is sock, "the connection was never dropped"
    conn.send(b"still here")
    conn.flush()
    router.setsockopt(zmq.RCVTIMEO, 5000)
    assert router.recv_multipart()[1] == b"still here"
    conn.close()


def test_a_peer_that_is_not_zmtp_breaks_the_connection_and_it_is_retried() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(5)
        try:
            while len(accepted) < 2:
                s, _ = server.accept()
                s.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"x" * 100)
                accepted.append(s)
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    conn = Connection(f"tcp://127.0.0.1:{server.getsockname()[1]}")
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(accepted) < 2:
            assert time.monotonic() < deadline, "it never connected again after the first broke"
            got += drive(conn, time.monotonic() + 0.05)
        assert got == [] and not conn.ready
        t.join(5)
    finally:
        conn.close()
        server.close()
        for s in accepted:
            s.close()


def test_addresses() -> None:
    assert parse_address("tcp://127.0.0.1:5555") == (socket.AF_INET, ("127.0.0.1", 5555))
    assert parse_address("ipc:///tmp/x.sock") == (socket.AF_UNIX, "/tmp/x.sock")
    with pytest.raises(ValueError, match="tcp:// or ipc://"):
        parse_address("inproc://x")


def test_ipc(tmp_path: object) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    path = f"/tmp/zmtp-test-{time.monotonic_ns()}.sock"
    router.bind(f"ipc://{path}")
    conn = Connection(f"ipc://{path}")
    try:
        deadline = time.monotonic() + 5
        while not conn.ready:
            assert time.monotonic() < deadline
            drive(conn, time.monotonic() + 0.01)
        conn.send(b"over a unix socket")
        conn.flush()
        router.setsockopt(zmq.RCVTIMEO, 5000)
        assert router.recv_multipart()[1] == b"over a unix socket"
    finally:
        conn.close()
        router.close()
        ctx.destroy(linger=0)


class _ResetSocket:
    """A connected socket whose peer is gone: every send raises ECONNRESET."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def send(self, data: bytes) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


def test_a_pipeline_whose_send_finds_the_node_gone_drops_that_connection_and_goes_on(
        router: zmq.Socket) -> None:
    """A node killed between a request's queueing and its flush: the flush closes the
    connection, which takes it off the set of queued connections while that set is
    being sent (a worker died of "Set changed size during iteration", and the requests
    it had stamped never reached the history). The request ends as the retry rules
    say, and the pipeline keeps running."""
    from harness.client import Call, Pipeline

    port = router.bind_to_random_port("tcp://127.0.0.1")
    pipe = Pipeline({"n1": f"tcp://127.0.0.1:{port}"})
    assert pipe.wait_connected(5.0)
    ended: list[str] = []
    c = Call("n1", lambda call, type_, *rest: ended.append(type_))
    pipe.start(c, {"op": "read", "key": "k"}, timeout_ns=200_000_000)
    conn = pipe._conns["n1"]
    conn.sock = _ResetSocket(conn.sock)  # type: ignore[assignment]
    deadline = time.monotonic() + 5
    while not ended:
        assert time.monotonic() < deadline, "the operation never ended"
        pipe.step(10_000_000)
    assert ended == ["info"] or ended == ["fail"]
    pipe.close()
