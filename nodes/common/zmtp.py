"""ZMTP 3 in plain Python sockets: the node's client ROUTER, and the framing both sides share.

Owns the wire between a node and its clients at the byte level (rfc.zeromq.org
spec 23, ZMTP 3.0/3.1, NULL mechanism): the greeting, commands and their
metadata, frames, addresses. harness/zmtp.py (the harness's DEALER) uses the
same helpers.

``ClientRouter`` is what the driver binds at ``client_bind`` instead of a
libzmq ROUTER (docs/node-contract.md, "Sockets"). Why: with libzmq every
request and every reply crosses libzmq's I/O thread, which must be woken for
each (an eventfd write and a context switch on the sender's path); that was
the largest part of a leader's CPU per pass after the replies were batched.
Here the driver's own poll sees the client sockets, a pass reads what arrived
with one ``recv`` per connection and writes what it answered with one
``send`` per connection. Any ZeroMQ DEALER (libzmq, pyzmq, harness/zmtp.py)
talks to it as to a libzmq ROUTER.

Invariants:
- Each connection gets a routing id of its own (``b"c"`` + a counter), never
  reused while the node runs; a reply to a connection that is gone is
  dropped (as a ROUTER drops it).
- Only single-frame messages are requests; a multi-part message is handed
  over as ``None`` (the driver answers it ``malformed``).
- The handshake must come first: a greeting that is not ZMTP 3 with NULL, a
  frame over ``MAX_MESSAGE_BYTES``, an ERROR or anything before READY closes
  that connection, never the node. PINGs are answered with PONG.
- Nothing blocks: what the kernel does not take stays queued for the next
  writable poll; past ``MAX_BACKLOG_BYTES`` queued on one connection (a
  client that stopped reading) further replies to it are dropped, as a full
  ROUTER queue drops them (the client times out).
"""

from __future__ import annotations

import errno
import os
import socket

import zmq

__all__ = ["GREETING", "ClientRouter", "array_head", "command", "parse_address", "properties"]

#: Signature, version 3.0, mechanism NULL, as-server 0, filler (rfc 23, "Greeting").
GREETING = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
            + b"\x00" + b"\x00" * 31)
RECV_BYTES = 1 << 18
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # as wire.MAX_MESSAGE_BYTES (libzmq's MAXMSGSIZE)
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
POLLIN, POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)  # zmq_poll's flags, for raw fds too
_SHORT = [bytes((0, n)) for n in range(256)]  # the head of a short, final message frame


def command(name: bytes, props: dict[bytes, bytes]) -> bytes:
    """One command frame: ``name`` with its metadata (rfc 23, "Commands")."""
    body = bytes([len(name)]) + name + b"".join(
        bytes([len(k)]) + k + len(v).to_bytes(4, "big") + v for k, v in props.items())
    return (b"\x04" + bytes([len(body)]) if len(body) < 256
            else b"\x06" + len(body).to_bytes(8, "big")) + body


def properties(body: bytes) -> dict[bytes, bytes]:
    """The metadata of a command frame's body; IndexError if it is cut short."""
    props: dict[bytes, bytes] = {}
    i = 1 + body[0]
    n = len(body)
    while i < n:
        k = body[i + 1:i + 1 + body[i]]
        i += 1 + body[i]
        if i + 4 > n:
            raise IndexError("property cut short")
        size = int.from_bytes(body[i:i + 4], "big")
        if i + 4 + size > n:
            raise IndexError("property cut short")
        props[k] = body[i + 4:i + 4 + size]
        i += 4 + size
    return props


def frame(body: bytes) -> bytes:
    """``body`` as one final message frame."""
    n = len(body)
    return (_SHORT[n] if n < 256 else b"\x02" + n.to_bytes(8, "big")) + body


def array_head(n: int) -> bytes:
    """msgpack's head of an array of ``n`` values."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def parse_address(addr: str, *, bind: bool = False) -> tuple[int, object]:
    """(address family, sockaddr) of a ZeroMQ ``tcp://host:port`` or ``ipc://path``;
    ``bind`` also takes libzmq's ``*`` for every interface."""
    if addr.startswith("ipc://"):
        return socket.AF_UNIX, addr[len("ipc://"):]
    if addr.startswith("tcp://"):
        host, sep, port = addr[len("tcp://"):].rpartition(":")
        if sep and port.isdigit():
            host = host.strip("[]")
            if bind and host == "*":
                host = "0.0.0.0"
            family, _, _, _, sockaddr = socket.getaddrinfo(
                host, int(port), type=socket.SOCK_STREAM)[0]
            return family, sockaddr
    raise ValueError(f"not a tcp:// or ipc:// ZeroMQ address: {addr!r}")


_GREETING, _HANDSHAKE, _READY = range(3)


class _Conn:
    __slots__ = ("cid", "fd", "inbuf", "more", "out", "out_bytes", "sock", "state", "unsent")

    def __init__(self, sock: socket.socket, cid: bytes) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.cid = cid
        self.state = _GREETING
        self.inbuf = b""
        self.more = False  # inside a multi-part message
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.unsent = b""


class ClientRouter:
    """A ROUTER for clients on a listening socket; see the module header.

    Drive it from one thread: poll ``poll_items`` (changes when ``version``
    does), hand every event to ``event(fd, mask)``, take the requests with
    ``take()``, answer with ``send(cid, body)`` and end the pass with
    ``flush()``."""

    def __init__(self, addr: str, metadata: dict[bytes, bytes]) -> None:
        family, sockaddr = parse_address(addr, bind=True)
        self.addr = addr
        self._unix = sockaddr if family == socket.AF_UNIX else None
        lsock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family != socket.AF_UNIX:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            elif isinstance(sockaddr, str) and os.path.exists(sockaddr):
                os.unlink(sockaddr)  # libzmq replaces a stale ipc socket file too
            lsock.bind(sockaddr)  # type: ignore[arg-type]
            lsock.listen(128)
            lsock.setblocking(False)
        except OSError:
            lsock.close()
            raise
        self._lsock = lsock
        self._lfd = lsock.fileno()
        self._ready = command(b"READY", {b"Socket-Type": b"ROUTER", **metadata})
        self._conns: dict[int, _Conn] = {}  # by fd
        self._by_cid: dict[bytes, _Conn] = {}
        self._next_id = 0
        self._dirty: list[_Conn] = []  # connections with replies queued since the last flush
        self._inbox: list[tuple[bytes, bytes | None]] = []
        self._rbuf = bytearray(RECV_BYTES)
        self._rview = memoryview(self._rbuf)
        self.version = 0
        self.poll_items: list[tuple[int, int]] = []
        self._rebuild()

    # --- polling ----------------------------------------------------------------

    def _rebuild(self) -> None:
        self.version += 1
        self.poll_items = [(self._lfd, POLLIN)] + [
            (c.fd, POLLIN | POLLOUT if c.unsent else POLLIN) for c in self._conns.values()]

    def event(self, fd: int, mask: int) -> None:
        """One poll result for one of ``poll_items``."""
        if fd == self._lfd:
            self._accept()
            return
        conn = self._conns.get(fd)
        if conn is None:
            return
        if mask & POLLOUT:
            self._write(conn, b"")
            if conn.sock is None:
                return
            if not conn.unsent:
                self._rebuild()
        if mask & ~POLLOUT:
            self._read(conn)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                                 errno.ECONNABORTED, errno.EPROTO):
                    break  # out of descriptors or a client gone already: try later
                raise
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._next_id += 1
            conn = _Conn(sock, b"c" + self._next_id.to_bytes(8, "big"))
            self._conns[conn.fd] = conn
            self._by_cid[conn.cid] = conn
            self._write(conn, GREETING)
        self._rebuild()

    def _drop(self, conn: _Conn) -> None:
        sock = conn.sock
        if sock is None:
            return
        conn.sock = None
        self._conns.pop(conn.fd, None)
        self._by_cid.pop(conn.cid, None)
        sock.close()
        self._rebuild()

    # --- reading ----------------------------------------------------------------

    def take(self) -> list[tuple[bytes, bytes | None]]:
        """The messages read since the last call: (routing id, frame, or None for a
        multi-part message)."""
        got = self._inbox
        self._inbox = []
        return got

    def _read(self, conn: _Conn) -> None:
        sock = conn.sock
        buf, view = self._rbuf, self._rview
        while sock is not None:
            try:
                got = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                got = 0
            if not got:
                self._drop(conn)
                return
            chunk = view[:got].tobytes()
            data = conn.inbuf + chunk if conn.inbuf else chunk
            if conn.state == _READY and not conn.more:
                data = self._frames(conn.cid, data)
            if data and (data[0] or conn.state != _READY or conn.more):
                rest = self._slow(conn, data)
                if rest is None:
                    self._drop(conn)
                    return
                data = rest
            conn.inbuf = data
            if got < RECV_BYTES:
                return

    def _frames(self, cid: bytes, data: bytes) -> bytes:
        """The fast path: short, final message frames; the rest."""
        out = self._inbox
        i, n = 0, len(data)
        while i + 2 <= n:
            if data[i]:  # long, more or command: not the common case
                break
            end = i + 2 + data[i + 1]
            if end > n:
                break
            out.append((cid, data[i + 2:end]))
            i = end
        return data[i:] if i else data

    def _slow(self, conn: _Conn, data: bytes) -> bytes | None:
        """Every kind of frame (greeting, handshake, long, multi-part, commands); the
        incomplete rest, or None if the connection must be closed."""
        i, n = 0, len(data)
        while True:
            if conn.state == _GREETING:
                if n - i < 11:
                    return data[i:]
                g = data[i:i + 64]
                if g[0] != 0xFF or g[9] != 0x7F or g[10] < 3:
                    return None  # not ZMTP 3 (libzmq clients all are)
                if len(g) < 64:
                    return data[i:]
                if g[12:32].rstrip(b"\x00") != b"NULL":
                    return None
                i += 64
                conn.state = _HANDSHAKE
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
            if size > MAX_MESSAGE_BYTES:
                return None
            end = i + head + size
            if end > n:
                return data[i:]
            body = data[i + head:end]
            i = end
            if flags & 0x04:
                if not self._command(conn, body):
                    return None
            elif conn.state != _READY:
                return None  # a message before the handshake: not a ZMTP peer
            elif flags & 0x01 or conn.more:
                if not conn.more:
                    self._inbox.append((conn.cid, None))  # a multi-part message
                conn.more = bool(flags & 0x01)
            else:
                self._inbox.append((conn.cid, body))

    def _command(self, conn: _Conn, body: bytes) -> bool:
        name = body[1:1 + body[0]] if body else b""
        if name == b"READY" and conn.state == _HANDSHAKE:
            try:
                properties(body)
            except IndexError:
                return False
            conn.state = _READY
            self._write(conn, self._ready)
            return conn.sock is not None
        if name == b"PING" and conn.state == _READY:
            pong = b"\x04PONG" + body[1 + body[0] + 2:]  # its context, after the 2-byte TTL
            if len(pong) < 256:
                self._write(conn, bytes((0x04, len(pong))) + pong)
            return conn.sock is not None
        return name == b"PONG"  # else an ERROR, or a handshake out of order

    # --- writing ----------------------------------------------------------------

    def send(self, cid: bytes, body: bytes) -> None:
        """Queue one single-frame message to the client ``cid`` (dropped if it is gone
        or has ``MAX_BACKLOG_BYTES`` waiting)."""
        conn = self._by_cid.get(cid)
        if conn is None or conn.state != _READY:
            return
        n = len(body)
        if conn.out_bytes + len(conn.unsent) + n > MAX_BACKLOG_BYTES:
            return
        if not conn.out:
            self._dirty.append(conn)
        conn.out.append((_SHORT[n] if n < 256 else b"\x02" + n.to_bytes(8, "big")) + body)
        conn.out_bytes += n

    def flush(self) -> None:
        """Hand every connection's queued replies to the kernel, one ``send`` each."""
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = []
        for conn in dirty:
            out = conn.out
            if not out or conn.sock is None:
                continue
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            conn.out_bytes = 0
            had = bool(conn.unsent)
            self._write(conn, data)
            if conn.sock is not None and bool(conn.unsent) != had:
                self._rebuild()

    def _write(self, conn: _Conn, data: bytes) -> None:
        if conn.unsent:
            data = conn.unsent + data
        if not data:
            return
        sock = conn.sock
        if sock is None:
            return
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._drop(conn)
            return
        conn.unsent = data[n:] if n < len(data) else b""
        if conn.unsent:
            self._rebuild()

    def close(self) -> None:
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._lsock.close()
        if isinstance(self._unix, str):
            try:
                os.unlink(self._unix)
            except OSError:
                pass
