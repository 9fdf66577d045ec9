"""ZMTP 3 in plain Python sockets: the node's ROUTERs and DEALERs, and the harness's DEALER.

Owns the wire of a node's sockets at the byte level (rfc.zeromq.org specs 23
and 37, ZMTP 3.1, NULL mechanism): the greeting, commands and their metadata,
frames, heartbeats, addresses (docs/node-contract.md, "Sockets").

``Router`` is what the driver binds at ``peer_bind`` and ``client_bind``, and
``Dealer`` what it connects to each peer, instead of libzmq sockets. Why: with
libzmq every message crosses libzmq's I/O thread, which must be woken for
each (an eventfd write and a context switch on the sender's path); that was
the largest part of a node's CPU per loop pass once the client replies were
batched. Here the driver's own poll sees the sockets, a pass reads what
arrived with one ``recv`` per connection and sends what it produced with one
``send`` per connection. Any ZeroMQ peer (libzmq, pyzmq: the proxy, tests,
user clients) talks to them as to libzmq ROUTERs and DEALERs.

``Dealer`` is the connecting side, for the harness's clients (harness/zmtp.py)
and the driver's peers. Its invariants:
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
- Heartbeats (``heartbeat_ns``, the driver's peers): a ready connection
  PINGs every ``heartbeat_ns`` and is closed when nothing came back for
  ``heartbeat_timeout_ns`` (a paused process, a silent partition), as
  libzmq's ZMQ_HEARTBEAT_IVL/TIMEOUT: then sends fail at once instead of
  queueing stale messages for a burst when the fault heals.
- ``identity`` goes into its READY (libzmq's ZMQ_ROUTING_ID): the ROUTER
  names the sender by it.

``Router``'s invariants:
- Each connection gets a routing id of its own (``b"\\x00c"`` + a counter),
  never reused while the node runs, or with ``identities`` (the peer ROUTER)
  the Identity its READY names, taken over by a newer connection with the
  same one; a message to a connection that is gone is dropped (as a ROUTER
  drops it).
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
import time
from collections.abc import Callable

import zmq

from nodes.common.wire import BATCH_PROPERTY

__all__ = ["GREETING", "Dealer", "Router", "array_head", "command", "parse_address",
           "properties"]

#: Signature, version 3.1 (3.0 with PING/PONG), mechanism NULL, as-server 0, filler
#: (rfc 23 and 37, "Greeting").
GREETING = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00")
            + b"\x00" + b"\x00" * 31)
RECV_BYTES = 1 << 18
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # as wire.MAX_MESSAGE_BYTES (libzmq's MAXMSGSIZE)
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
RECONNECT_NS = 20_000_000  # a restarted node is reached again within tens of ms
RECONNECT_MAX_NS = 200_000_000
#: Bytes queued on one Dealer beyond which it takes no more (a paused peer whose
#: kernel buffers are full): ``send`` refuses as if it were down.
MAX_QUEUED_BYTES = 8 << 20
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


def greeting(data: bytes, i: int) -> int:
    """The peer's greeting at ``data[i:]``: 1 a ZMTP 3 NULL one (64 bytes), 0 not all
    there yet, -1 anything else (judged from its first 11 bytes, so a stranger
    that sends less than 64 is turned away at once)."""
    g = data[i:i + 64]
    if len(g) < 11:
        return 0
    if g[0] != 0xFF or g[9] != 0x7F or g[10] < 3:
        return -1  # not ZMTP 3 (libzmq peers all are)
    if len(g) < 64:
        return 0
    return 1 if g[12:32].rstrip(b"\x00") == b"NULL" else -1


def next_frame(data: bytes, i: int) -> tuple[int, bytes, int] | None:
    """The frame at ``data[i:]``: (flags, body, where the next one starts); None if it
    is not all there yet; flags -1 if it is longer than ``MAX_MESSAGE_BYTES``."""
    n = len(data)
    if n - i < 2:
        return None
    flags = data[i]
    if flags & 0x02:
        if n - i < 9:
            return None
        size, head = int.from_bytes(data[i + 1:i + 9], "big"), 9
    else:
        size, head = data[i + 1], 2
    if size > MAX_MESSAGE_BYTES:
        return -1, b"", i
    end = i + head + size
    if end > n:
        return None
    return flags, data[i + head:end], end


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


_DOWN, _CONNECTING, _GREETING, _HANDSHAKE, _READY = range(5)


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


class Router:
    """A ROUTER for clients on a listening socket; see the module header.

    Drive it from one thread: poll ``poll_items`` (changes when ``version``
    does), hand every event to ``event(fd, mask)``, take the requests with
    ``take()``, answer with ``send(cid, body)`` and end the pass with
    ``flush()``."""

    def __init__(self, addr: str, metadata: dict[bytes, bytes], *,
                 identities: bool = False) -> None:
        family, sockaddr = parse_address(addr, bind=True)
        #: Peers: a connection's routing id is the Identity of its READY (a DEALER's
        #: ZMQ_ROUTING_ID, the node id), and a new connection with the id of an old one
        #: takes it over (ZMQ_ROUTER_HANDOVER: a restarted peer). Else one is made.
        self._identities = identities
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
            conn = _Conn(sock, b"")  # its routing id comes with its READY
            self._conns[conn.fd] = conn
            self._write(conn, GREETING)
        self._rebuild()

    def _drop(self, conn: _Conn) -> None:
        sock = conn.sock
        if sock is None:
            return
        conn.sock = None
        self._conns.pop(conn.fd, None)
        if self._by_cid.get(conn.cid) is conn:
            del self._by_cid[conn.cid]
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
        i = 0
        while True:
            if conn.state == _GREETING:
                ok = greeting(data, i)
                if ok <= 0:
                    return data[i:] if ok == 0 else None
                i += 64
                conn.state = _HANDSHAKE
                continue
            got = next_frame(data, i)
            if got is None:
                return data[i:]
            flags, body, i = got
            if flags < 0:
                return None  # over MAX_MESSAGE_BYTES
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
                identity = properties(body).get(b"Identity", b"")
            except IndexError:
                return False
            if self._identities and identity:
                old = self._by_cid.get(identity)
                if old is not None:
                    self._drop(old)  # handover: the newer connection wins
                conn.cid = identity
            else:
                self._next_id += 1
                conn.cid = b"\x00c" + self._next_id.to_bytes(8, "big")
            self._by_cid[conn.cid] = conn
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


_PING = b"\x04\x07\x04PING\x00\x00"  # a PING command, TTL 0, no context (ZMTP 3.1)


class Dealer:
    """One DEALER connection to one ROUTER; see the module header ("Dealer").

    Drive it from one thread: ``service(now)`` (connects and reconnects),
    ``want_write`` / ``fileno`` for the poller, ``on_writable``, ``read_frames``,
    ``send`` and ``flush``."""

    def __init__(self, addr: str, *, identity: bytes = b"", heartbeat_ns: int = 0,
                 heartbeat_timeout_ns: int = 0, max_queued: int = MAX_QUEUED_BYTES) -> None:
        self.addr = addr
        self._ready_cmd = command(b"READY", {b"Socket-Type": b"DEALER", b"Identity": identity})
        self._heartbeat_ns = heartbeat_ns
        self._heartbeat_timeout_ns = heartbeat_timeout_ns
        self._max_queued = max_queued
        self._heard = 0  # when the peer last sent anything (heartbeats)
        self._next_ping = 0
        #: Bumped whenever ``fileno`` or ``want_write`` may have changed (for a poll list).
        self.version = 0
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
        """Start a connection attempt if it is down and its retry time has come; with
        heartbeats, PING a ready peer and close the connection to one that stopped
        answering (as libzmq's ZMQ_HEARTBEAT_IVL / ZMQ_HEARTBEAT_TIMEOUT)."""
        if self.state == _DOWN:
            if now >= self._retry_at:
                self._connect(now)
        elif self._heartbeat_ns and self.state == _READY:
            if now - self._heard > self._heartbeat_timeout_ns:
                self.close(now)
            elif now >= self._next_ping:
                self._next_ping = now + self._heartbeat_ns
                self._write(_PING)

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
        self.version += 1
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
        self.version += 1
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
        if self.state != _READY or self._out_bytes + len(self._unsent) > self._max_queued:
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
        unsent = data[n:] if n < len(data) else b""
        if bool(unsent) != bool(self._unsent):
            self.version += 1
        self._unsent = unsent

    def on_writable(self, now: int) -> None:
        """The poller saw the socket writable: a connect finished, or room for more."""
        if self.state == _CONNECTING:
            assert self.sock is not None
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.close(now)
                return
            self.state = _GREETING
            self.version += 1
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
            if self._heartbeat_ns:
                self._heard = time.monotonic_ns()
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
        i = 0
        while True:
            if self.state == _GREETING:
                ok = greeting(data, i)
                if ok <= 0:
                    if ok == 0:
                        return data[i:]
                    self.close()
                    return None
                i += 64
                self.state = _HANDSHAKE
                self._write(self._ready_cmd)
                if self.sock is None:
                    return None
                continue
            got = next_frame(data, i)
            if got is None:
                return data[i:]
            flags, body, i = got
            if flags < 0:
                self.close()  # over MAX_MESSAGE_BYTES
                return None
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
            self._heard = time.monotonic_ns()
            self._next_ping = self._heard + self._heartbeat_ns
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
