"""A ZeroMQ DEALER in plain Python sockets: ZMTP 3.0 framing, many frames per syscall.

Owns the client side of the wire to a node's client ROUTER (docs/node-contract.md,
"Sockets"): the nodes keep libzmq; the harness's operation engine
(harness/client.py ``Pipeline``) speaks the same protocol (rfc.zeromq.org
spec 23, ZMTP 3.0, NULL mechanism) on its own non-blocking TCP or unix socket.
Why not libzmq here: every ``zmq_send`` hands one message to libzmq's I/O
thread and wakes it, and every poll is another syscall; at tens of thousands of
operations a second that was most of a worker's CPU. Here the frames queued
during one pass of the worker's loop leave in ONE ``send`` and the replies that
arrived come in with one ``recv``.

Invariants:
- ``send`` queues a frame only on a connection whose handshake completed (the
  peer's READY was read), as ZMQ_IMMEDIATE does, and whose backlog is under
  ``MAX_QUEUED_BYTES`` (as a high-water mark): otherwise it returns False and
  the frame provably never left this process.
- Queued bytes leave in order on ``flush``; what the kernel does not take stays
  queued (``pending_bytes``) and goes out when the socket is writable again. A
  connection that breaks loses what it had queued (as libzmq's does): the
  caller's deadline decides those requests (unknown outcome).
- A broken or refused connection is retried after ``RECONNECT_NS`` (doubling to
  ``RECONNECT_MAX_NS`` while it keeps failing), from ``service``; nothing here
  blocks, sleeps or starts a thread.
- Batches (docs/node-contract.md, "Batches"): when the node's READY carries
  ``X-Batch: 1`` (``batch``), the messages queued between two flushes leave as
  ONE message, the msgpack array of them (so each must be one msgpack value),
  and the node answers with arrays of replies. Without it every message goes
  alone, as sent.
- Only single-frame messages are delivered (the node contract's one msgpack map
  per message); a multi-part message is dropped whole. ZMTP 3.1 PINGs are
  answered with PONG; an ERROR command or a malformed frame breaks the
  connection.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable

from nodes.common.wire import BATCH_PROPERTY
from nodes.common.zmtp import GREETING, array_head, command, parse_address, properties

__all__ = ["Connection", "parse_address"]

RECONNECT_NS = 20_000_000  # a restarted node is reached again within tens of ms
RECONNECT_MAX_NS = 200_000_000
RECV_BYTES = 1 << 18
#: Bytes queued on one connection beyond which it takes no more (a paused peer
#: whose kernel buffers are full): ``send`` refuses as if it were down.
MAX_QUEUED_BYTES = 8 << 20

READY = command(b"READY", {b"Socket-Type": b"DEALER"})
_SHORT = [bytes((0, n)) for n in range(256)]  # the head of a short, final message frame

_DOWN, _CONNECTING, _GREETING, _HANDSHAKE, _READY = range(5)


class Connection:
    """One DEALER connection to one ROUTER; see the module header.

    Drive it from one thread: ``service(now)`` (connects and reconnects),
    ``want_write`` / ``fileno`` for the poller, ``on_writable``, ``read_frames``,
    ``send`` and ``flush``."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.family, self.sockaddr = parse_address(addr)
        self.sock: socket.socket | None = None
        self.state = _DOWN
        self._out: list[bytes] = []  # frames queued since the last flush
        #: The node takes arrays of messages (its READY said so): ``send`` queues the
        #: bare values in ``_out`` and ``flush`` sends them as one array.
        self.batch = False
        self._out_bytes = 0
        self._unsent = b""  # what the kernel did not take at the last flush
        self._inbuf = b""
        # One receive buffer, reused: a fresh 256 kB bytes per recv is an mmap and a
        # munmap each time (that was a third of a worker's CPU).
        self._rbuf = bytearray(RECV_BYTES)
        self._rview = memoryview(self._rbuf)
        self._more = False  # inside a multi-part message (dropped whole)
        self._retry_at = 0
        self._backoff = RECONNECT_NS
        #: Set by the owner, so it can (un)register the socket with its poller: called
        #: as ``on_socket(conn)`` for a new socket, ``on_socket(conn, old_fd)`` before
        #: one is closed.
        self.on_socket: Callable[..., None] | None = None

    # --- state -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state == _READY

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    @property
    def want_write(self) -> bool:
        """The socket must be watched for writability (connecting, or bytes left)."""
        return self.state == _CONNECTING or bool(self._unsent)

    @property
    def pending_bytes(self) -> int:
        """Bytes queued or left unsent by the kernel (a paused peer's backlog)."""
        return len(self._unsent) + self._out_bytes

    def service(self, now: int) -> None:
        """Start a connection attempt if it is down and its retry time has come."""
        if self.state == _DOWN and now >= self._retry_at:
            self._connect(now)

    def next_retry(self) -> int | None:
        """When ``service`` will next try to connect (None while not down)."""
        return self._retry_at if self.state == _DOWN else None

    def _connect(self, now: int) -> None:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.sockaddr)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            self._failed(now)
            return
        self.sock = sock
        self.state = _CONNECTING
        self._inbuf = b""
        self._more = False
        if self.on_socket is not None:
            self.on_socket(self)
        if err == 0:
            self.on_writable(now)

    def _failed(self, now: int) -> None:
        self._retry_at = now + self._backoff
        self._backoff = min(RECONNECT_MAX_NS, self._backoff * 2)

    def close(self, now: int | None = None) -> None:
        """Drop the connection (and whatever it had queued); retried later."""
        sock, self.sock = self.sock, None
        was_ready = self.state == _READY
        self.state = _DOWN
        self.batch = False  # learnt again from the next handshake (a restart may change it)
        self._out.clear()
        self._out_bytes = 0
        self._unsent = b""
        self._inbuf = b""
        if sock is not None:
            if self.on_socket is not None:
                self.on_socket(self, sock.fileno())
            sock.close()
        now = time.monotonic_ns() if now is None else now
        if was_ready:
            self._backoff = RECONNECT_NS
        self._failed(now)

    # --- bytes ---------------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        """Queue one single-frame message; False (nothing queued) unless connected
        with fewer than ``MAX_QUEUED_BYTES`` waiting."""
        if self.state != _READY or self._out_bytes + len(self._unsent) > MAX_QUEUED_BYTES:
            return False
        n = len(frame)
        if self.batch:
            self._out.append(frame)
        else:
            self._out.append((_SHORT[n] if n < 256 else b"\x02" + n.to_bytes(8, "big")) + frame)
        self._out_bytes += n
        return True

    def flush(self) -> None:
        """Hand everything queued to the kernel, as far as it takes it."""
        out = self._out
        if not out or self.sock is None:
            return
        if self.batch:
            body = array_head(len(out)) + b"".join(out)
            n = len(body)
            data = (_SHORT[n] if n < 256 else b"\x02" + n.to_bytes(8, "big")) + body
        else:
            data = b"".join(out)
        out.clear()
        self._out_bytes = 0
        self._write(data)

    def _write(self, data: bytes) -> None:
        """Send ``data`` after whatever the kernel did not take before."""
        if self._unsent:
            data = self._unsent + data
        try:
            n = self.sock.send(data)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.close()
            return
        self._unsent = data[n:] if n < len(data) else b""

    def on_writable(self, now: int) -> None:
        """The poller saw the socket writable: a connect finished, or room for more."""
        if self.state == _CONNECTING:
            assert self.sock is not None
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.close(now)
                return
            self.state = _GREETING
            self._write(GREETING)
        elif self._unsent:
            self._write(b"")

    def read_frames(self) -> list[bytes] | None:
        """The messages that arrived (each one frame); None if the connection broke."""
        sock = self.sock
        if sock is None:
            return None
        frames: list[bytes] = []
        buf = self._rbuf
        while True:
            try:
                got = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                got = 0
            if not got:
                self.close()
                return None
            chunk = self._rview[:got].tobytes()
            data = self._inbuf + chunk if self._inbuf else chunk
            if self.state == _READY and not self._more:
                data = self._frames(data, frames)
            if data and (data[0] or self.state != _READY or self._more):
                data = self._slow(data, frames)
                if data is None:
                    return None
            self._inbuf = data
            if got < RECV_BYTES:
                break
        return frames

    @staticmethod
    def _frames(data: bytes, out: list[bytes]) -> bytes:
        """The fast path: short, final message frames appended to ``out``; the rest."""
        i, n = 0, len(data)
        while i + 2 <= n:
            if data[i]:  # long, more or command: not the common case
                break
            end = i + 2 + data[i + 1]
            if end > n:
                break
            out.append(data[i + 2:end])
            i = end
        return data[i:] if i else data

    def _slow(self, data: bytes, out: list[bytes]) -> bytes | None:
        """Every kind of frame (greeting, handshake, long, multi-part, commands); the
        incomplete rest, or None if the connection broke."""
        i, n = 0, len(data)
        while True:
            if self.state == _GREETING:
                if n - i < 64:
                    return data[i:]
                g = data[i:i + 64]
                if (g[0] != 0xFF or g[9] != 0x7F or g[10] < 3
                        or g[12:32].rstrip(b"\x00") != b"NULL"):
                    self.close()
                    return None
                i += 64
                self.state = _HANDSHAKE
                self._write(READY)
                if self.sock is None:
                    return None
                continue
            if n - i < 2:
                return data[i:]
            flags = data[i]
            if flags & 0x02:
                if n - i < 9:
                    return data[i:]
                size, head = int.from_bytes(data[i + 1:i + 9], "big"), 9
            else:
                size, head = data[i + 1], 2
            end = i + head + size
            if end > n:
                return data[i:]
            body = data[i + head:end]
            i = end
            if flags & 0x04:
                if not self._command(body):
                    return None
            elif self.state != _READY:
                self.close()  # a message before the handshake: not a ZMTP peer
                return None
            elif flags & 0x01 or self._more:
                self._more = bool(flags & 0x01)  # a multi-part message: dropped whole
            else:
                out.append(body)

    def _command(self, body: bytes) -> bool:
        """Handle one command frame; False if it broke the connection."""
        name = body[1:1 + body[0]] if body else b""
        if name == b"READY" and self.state == _HANDSHAKE:
            try:
                self.batch = properties(body).get(BATCH_PROPERTY) == b"1"
            except IndexError:  # a READY whose metadata is cut short: not a ZMTP peer
                self.close()
                return False
            self.state = _READY
            self._backoff = RECONNECT_NS
            return True
        if name == b"PING" and self.state == _READY:
            pong = b"\x04PONG" + body[1 + body[0] + 2:]  # its context, after the 2-byte TTL
            if len(pong) < 256:
                self._write(bytes((0x04, len(pong))) + pong)
            return self.sock is not None
        if name == b"PONG":
            return True
        self.close()  # ERROR, or a handshake out of order
        return False
