"""The host of one Maelstrom node: our node contract outside, Maelstrom's protocol inside.

``python -m maelstrom.host --command 'CMD' [--workload NAME] --id ID --cluster PATH``

Owns how a Maelstrom program (JSON lines on stdin/stdout, doc/protocol.md)
becomes a node of this harness (docs/node-contract.md), so LocalCluster, the
proxy, netns, every fault, the journal and --replay work unchanged
(docs/maelstrom.md).

The process splits in two at start:
- the process the harness started *becomes the Maelstrom program* (exec), so
  the harness's SIGKILL, SIGSTOP and SIGCONT act on the program itself, and it
  keeps the harness's parent-death signal;
- a forked child, the adapter, owns the sockets: the peer ROUTER and one
  DEALER per peer exactly as our nodes have them, the client ROUTER (bound
  once the program answered ``init``), and a DEALER to the run's services
  (maelstrom/services.py, reached directly, never through the proxy).

Invariants:
- Every node-to-node Maelstrom message leaves through the peer DEALER of its
  destination as one msgpack map ``{"type": body.type, "j": the JSON line}``
  (the proxy journals ``type``); the line is passed on as the program wrote it.
- A client request ``{"id", "client", "type", ...}`` becomes the Maelstrom
  message ``{"src": "c<client>", "dest": <this node>, "body": {..., "msg_id": id}}``;
  its reply (``in_reply_to``) is translated once, by maelstrom.protocol.client_reply.
- The program's input is written once per loop turn, a batch of messages per write.
- Every wait is bounded: no ``init_ok`` within ``--init-timeout`` (the
  program silent, crashed, printing garbage or malformed JSON) is one log line
  and the node process ends; lines that are not Maelstrom messages are logged
  (the first few, then a count) and dropped; writes to the program never
  block (a bounded buffer: a paused program's input waits there, as in a
  socket buffer).
- The adapter dies with the program (parent-death signal, and it checks its
  parent every loop turn); log lines go to stderr (the node's log), never per
  message.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

import msgpack
import zmq

from maelstrom.protocol import (
    SERVICES,
    client_reply,
    dumps,
    error_body,
    grid,
    loads,
    maelstrom_ids,
)
from nodes.common.clusterfile import ClusterConfig, ConfigError, load_cluster
from nodes.common.wire import CLIENT_HWM, PEER_HWM, bind_router, connect_dealer, decode_reply

INIT_ID = 1
TOPOLOGY_ID = 2
#: Bytes of program input held while the program does not read (paused): then dropped.
MAX_INPUT_BUFFER = 64 * 1024 * 1024
#: Garbage lines logged one by one before they are only counted.
GARBAGE_LOGGED = 3
#: Seconds a client request's routing is kept without a reply.
PENDING_S = 120.0
LOOP_MS = 100
BIND_RETRY_S = 3.0
CONNECT_WAIT_S = 1.0


def _log(node: str, text: str) -> None:
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
    with contextlib.suppress(OSError):
        os.write(2, f"{stamp} {node} maelstrom: {text}\n".encode(errors="replace"))


def program_state(pid: int) -> tuple[str, int | None]:
    """(state letter, waitpid-style exit status when a zombie) of ``pid`` from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return "", None
    rest = data[data.rfind(b")") + 2:].split()
    state = rest[0].decode() if rest else ""
    status = int(rest[49]) if state == "Z" and len(rest) > 49 else None
    return state, status


def describe_status(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if status & 0x7F:
        sig = status & 0x7F
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {status >> 8}"


def service_address(cluster: str) -> tuple[str, str]:
    """(ZeroMQ address, lock file) of the services of the run whose cluster.json is
    ``cluster``: a short path in /tmp, since a unix socket path is short and a
    file-system socket is reachable from every network namespace."""
    import hashlib

    tag = hashlib.sha1(os.path.realpath(cluster).encode()).hexdigest()[:16]
    return f"ipc:///tmp/maelstrom-{tag}.sock", f"/tmp/maelstrom-{tag}.lock"


class Adapter:
    """The adapter's loop; see the module header."""

    def __init__(self, spec: ClusterConfig, me: str, program: int, to_fd: int, from_fd: int,
                 workload: str, init_timeout: float) -> None:
        self.spec = spec
        self.me = me
        self.program = program
        self.to_fd = to_fd
        self.from_fd = from_fd
        self.workload = workload
        self.init_timeout = init_timeout
        ids = list(spec.nodes)
        self.mids = maelstrom_ids(ids)
        self.mme = self.mids[me]
        self.name = f"{me} ({self.mme})"
        self.ctx = zmq.Context()
        self.peer_in = self._bind(spec.nodes[me].peer_bind, PEER_HWM)
        self.peers: dict[str, zmq.Socket] = {
            self.mids[p]: connect_dealer(self.ctx, spec.routes[me][p], me) for p in ids if p != me}
        self.client: zmq.Socket | None = None
        self.service: zmq.Socket | None = None
        self.service_failed = False
        self.poller = zmq.Poller()
        self.poller.register(self.peer_in, zmq.POLLIN)
        self.poller.register(from_fd, zmq.POLLIN)
        self.out = bytearray()  # input for the program not yet written
        self.out_waiting = False  # to_fd is polled for POLLOUT
        self.partial = b""  # the program's output after its last newline
        self.pending: dict[tuple[str, Any], tuple[bytes, float]] = {}
        self.anon: dict[bytes, str] = {}
        self.initialized = False
        self.before_init: list[bytes] = []
        self.garbage = 0
        self.dropped = 0
        self.carried = 0
        self.overflowed = False
        self.unknown_dest = 0
        self.term = False
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack

    def _bind(self, addr: str, hwm: int) -> zmq.Socket:
        """Bind, retrying briefly: the process this one replaces may still hold the port."""
        deadline = time.monotonic() + BIND_RETRY_S
        while True:
            try:
                return bind_router(self.ctx, addr, hwm)
            except zmq.ZMQError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # --- the program's input ----------------------------------------------------------

    def to_program(self, line: bytes) -> None:
        if len(self.out) > MAX_INPUT_BUFFER:
            self.dropped += 1
            if not self.overflowed:
                self.overflowed = True
                _log(self.name, f"the node program read none of its last {MAX_INPUT_BUFFER} "
                                "bytes of input (paused?); dropping its messages until it reads")
            return
        self.out += line
        if not line.endswith(b"\n"):
            self.out += b"\n"

    def _write_out(self, events: dict[Any, int]) -> None:
        """Write the program's pending input once per loop turn (one write for a whole
        batch of messages); poll for POLLOUT only while its pipe is full."""
        if self.out and (not self.out_waiting or events.get(self.to_fd, 0)):
            self._flush()
        if self.out and not self.out_waiting:
            self.out_waiting = True
            self.poller.register(self.to_fd, zmq.POLLOUT)
        elif not self.out and self.out_waiting:
            self.out_waiting = False
            self.poller.unregister(self.to_fd)

    def _flush(self) -> None:
        try:
            n = os.write(self.to_fd, self.out)
        except BlockingIOError:
            return
        except OSError:  # the program is gone; its stdout's end says so
            self.out.clear()
            return
        del self.out[:n]
        if not self.out:
            self.overflowed = False

    # --- the program's output ---------------------------------------------------------

    def from_program(self) -> bool:
        """Read what the program wrote; False at EOF (it ended)."""
        try:
            data = os.read(self.from_fd, 1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_INPUT_BUFFER:
            self._garbage(self.partial[:80], "is longer than 64 MiB without a newline")
            self.partial = b""
        for line in lines:
            if line.strip():
                self.route(line)
        return True

    def _garbage(self, line: bytes, why: str) -> None:
        self.garbage += 1
        if self.garbage <= GARBAGE_LOGGED:
            _log(self.name, f"the node program wrote a stdout line that {why}, dropped: "
                            f"{line[:120]!r}")
        elif self.garbage == GARBAGE_LOGGED + 1:
            _log(self.name, "more such lines are only counted (status: garbage)")

    def route(self, line: bytes) -> None:
        try:
            msg = loads(line)
        except ValueError:
            self._garbage(line, "is not JSON")
            return
        if not isinstance(msg, dict):
            self._garbage(line, "is not a JSON object")
            return
        dest = msg.get("dest")
        body = msg.get("body")
        if not isinstance(dest, str) or not isinstance(body, dict):
            self._garbage(line, "has no string dest and object body")
            return
        peer = self.peers.get(dest)
        if peer is not None:
            kind = body.get("type")
            try:
                peer.send(self._pack({"type": kind if isinstance(kind, str) else None, "j": line}),
                          zmq.NOBLOCK)
                self.carried += 1
            except zmq.Again:  # no connection, or its queue is full: the network lost it
                self.dropped += 1
            return
        if dest == self.mme:
            self.to_program(line)
        elif dest in SERVICES:
            self.to_service(dest, line, body)
        elif dest[:1] == "c":
            self.to_client(dest, body)
        else:
            self.unknown_dest += 1
            if self.unknown_dest == 1:
                _log(self.name, f"a message to {dest!r}, which is no node, client or service, "
                                "dropped (further ones are only counted)")

    def to_client(self, dest: str, body: dict[str, Any]) -> None:
        irt = body.get("in_reply_to")
        if dest == "c0":
            if irt == INIT_ID and not self.initialized:
                self._init_reply(body)
            return  # topology_ok, or a late duplicate
        entry = self.pending.pop((dest, irt), None)
        if entry is not None:  # else a second reply, or one whose client gave up
            self._answer(entry[0], client_reply(irt, body))

    def _answer(self, rid: bytes, reply: dict[str, Any]) -> None:
        """One reply to the client ``rid``; a client that is gone or full loses it."""
        if self.client is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.client.send_multipart([rid, self._pack(reply)], zmq.NOBLOCK)

    def to_service(self, dest: str, line: bytes, body: dict[str, Any]) -> None:
        if self.service is None and not self.service_failed:
            self.service = self._connect_service()
        if self.service is None:
            self.to_program(dumps({"src": dest, "dest": self.mme, "body": error_body(
                13, "the harness's services are not running", body.get("msg_id"))}))
            return
        with contextlib.suppress(zmq.Again):
            self.service.send(line, zmq.NOBLOCK)

    def _connect_service(self) -> zmq.Socket | None:
        addr, lock = service_address(str(self.spec.path))
        try:
            ensure_services(str(self.spec.path), addr, lock)
        except RuntimeError as exc:
            self.service_failed = True
            _log(self.name, f"the services (lin-kv, seq-kv, lww-kv, lin-tso) could not start: {exc}")
            return None
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self.mme.encode())
        sock.setsockopt(zmq.SNDHWM, PEER_HWM)
        sock.connect(addr)
        self.poller.register(sock, zmq.POLLIN)
        return sock

    # --- init ------------------------------------------------------------------------

    def _init_reply(self, body: dict[str, Any]) -> None:
        if body.get("type") != "init_ok":
            _log(self.name, f"the node program answered init with {body!r}, not init_ok")
            return
        self.initialized = True
        if self.workload == "broadcast":
            top = grid(list(self.mids.values()))
            self.to_program(dumps({"src": "c0", "dest": self.mme, "body": {
                "type": "topology", "msg_id": TOPOLOGY_ID, "topology": top}}))
        for line in self.before_init:
            self.to_program(line)
        self.before_init.clear()
        self.client = self._bind(self.spec.nodes[self.me].client_bind, CLIENT_HWM)
        self.poller.register(self.client, zmq.POLLIN)

    def send_init(self) -> None:
        """``init``, once the peer connections are up (at most ``CONNECT_WAIT_S``: a peer
        may be down), so the program's first messages are not lost to a network that
        is still connecting, as none are in Maelstrom."""
        deadline = time.monotonic() + CONNECT_WAIT_S
        for sock in self.peers.values():
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLOUT):
                break
        self.to_program(dumps({"src": "c0", "dest": self.mme, "body": {
            "type": "init", "msg_id": INIT_ID, "node_id": self.mme,
            "node_ids": list(self.mids.values())}}))

    # --- sockets ---------------------------------------------------------------------

    def from_peers(self) -> None:
        for _ in range(256):
            try:
                frames = self.peer_in.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = msgpack.unpackb(frames[-1], raw=False)
                line = msg["j"]
            except (ValueError, TypeError, KeyError, msgpack.UnpackException):
                continue  # not from an adapter: dropped, like our nodes drop malformed frames
            if not isinstance(line, bytes):
                continue
            if self.initialized:
                self.to_program(line)
            elif len(self.before_init) < 10_000:
                self.before_init.append(line)

    def from_service(self) -> None:
        assert self.service is not None
        for _ in range(256):
            try:
                line = self.service.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.to_program(line)

    def from_clients(self) -> None:
        assert self.client is not None
        now = time.monotonic()
        for _ in range(256):
            try:
                rid, frame = self.client.recv_multipart(zmq.NOBLOCK)[-2:]
            except (zmq.Again, ValueError):
                return
            req = decode_reply(frame)
            if req is None:
                continue
            if req.get("op") == "status":
                if program_state(self.program)[0] not in ("T", "t"):  # a paused node is silent
                    self._answer(rid, self.status(req.get("id")))
                continue
            req_id = req.pop("id", None)
            client = req.pop("client", None)
            if not isinstance(req.get("type"), str) or not isinstance(req_id, int):
                self._answer(rid, {
                    "id": req_id if isinstance(req_id, int) else None, "ok": False,
                    "error": "malformed", "definite": True,
                    "reason": "a Maelstrom request needs an integer id and a string type"})
                continue
            if isinstance(client, int) and not isinstance(client, bool) and client > 0:
                src = f"c{client}"
            else:
                src = self.anon.get(rid) or self.anon.setdefault(rid, f"c{10_000 + len(self.anon)}")
            req["msg_id"] = req_id
            self.pending[(src, req_id)] = (rid, now)
            self.to_program(dumps({"src": src, "dest": self.mme, "body": req}))

    def status(self, req_id: Any) -> dict[str, Any]:
        return {"id": req_id, "ok": True, "node": self.me, "maelstrom_id": self.mme,
                "pid": self.program, "adapter_pid": os.getpid(), "carried": self.carried,
                "dropped": self.dropped, "garbage": self.garbage}

    # --- the loop --------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        self.send_init()
        self._write_out({})
        started = time.monotonic()
        next_sweep = started + 5.0
        while True:
            events = dict(self.poller.poll(LOOP_MS))
            if self.from_fd in events and not self.from_program():
                return self._ended()
            if self.peer_in in events:
                self.from_peers()
            if self.service is not None and self.service in events:
                self.from_service()
            if self.client is not None and self.client in events:
                self.from_clients()
            self._write_out(events)
            if os.getppid() != self.program or self.term:
                return self._ended()
            if not self.initialized and time.monotonic() - started > self.init_timeout:
                _log(self.name, f"the node program did not answer init with init_ok within "
                                f"{self.init_timeout:g} s; ending it")
                with contextlib.suppress(OSError):
                    os.kill(self.program, signal.SIGKILL)
                return 2
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + 5.0
                old = [k for k, (_, t) in self.pending.items() if now - t > PENDING_S]
                for k in old:
                    del self.pending[k]

    def _on_term(self, signum: int, frame: Any) -> None:
        self.term = True

    def _ended(self) -> int:
        """The program is gone (or we are told to stop): say how, once."""
        deadline = time.monotonic() + 0.2
        state, status = program_state(self.program)
        while state not in ("Z", "") and os.getppid() == self.program and not self.term \
                and time.monotonic() < deadline:
            time.sleep(0.01)
            state, status = program_state(self.program)
        if state in ("Z", "") or os.getppid() != self.program:
            how = describe_status(status)
            when = "before it answered init" if not self.initialized else "while serving"
            _log(self.name, f"the node program ended {when} ({how}); "
                            f"{self.carried} messages carried, {self.garbage} garbage lines")
        return 0

    def close(self) -> None:
        self.ctx.destroy(linger=0)


# --- the services' process ------------------------------------------------------------


def ensure_services(cluster: str, addr: str, lock_path: str, timeout: float = 5.0) -> None:
    """Start the run's services process unless one answers at ``addr``; RuntimeError if
    none answers within ``timeout``. One adapter at a time decides (a file lock)."""
    from maelstrom.services import ping

    deadline = time.monotonic() + timeout
    with open(lock_path, "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another node holds the services' lock") from None
                time.sleep(0.02)
        try:
            if ping(addr, 0.2):
                return
            harness = _harness_pid()
            argv = [sys.executable, "-m", "maelstrom.services", "--bind", addr,
                    "--cluster", cluster, "--watch-pid", str(harness)]
            held = _held_log()
            if held:
                argv += ["--watch-file", held]
            log = os.path.join(os.path.dirname(os.path.realpath(cluster)), "maelstrom-services.log")
            with open(log, "ab") as out:
                # its own session and no parent-death signal: it outlives a killed node,
                # and ends with the harness (see maelstrom/services.py)
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True, close_fds=True)
            while time.monotonic() < deadline:
                if ping(addr, 0.2):
                    return
            raise RuntimeError(f"no answer at {addr} within {timeout:g} s (see {log})")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _harness_pid() -> int:
    """The harness: the parent of the node process (the program, this adapter's parent)."""
    try:
        with open(f"/proc/{os.getppid()}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return 1


def _held_log() -> str | None:
    """The node log the harness holds open (our stderr), if it is a file."""
    with contextlib.suppress(OSError):
        path = os.readlink("/proc/self/fd/2")
        if path.startswith("/") and os.path.isfile(path):
            return path
    return None


# --- the process -----------------------------------------------------------------------


_PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: int) -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m maelstrom.host", description=__doc__.split("\n")[0])
    ap.add_argument("--command", required=True, help="the Maelstrom node program's command line")
    ap.add_argument("--workload", default="", help="the Maelstrom workload (broadcast: topology)")
    ap.add_argument("--init-timeout", type=float, default=10.0)
    ap.add_argument("--id", required=True)
    ap.add_argument("--cluster", required=True)
    args = ap.parse_args(argv)
    try:
        spec = load_cluster(args.cluster)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.id not in spec.nodes:
        print(f"{args.cluster}: no node {args.id!r} (it has {', '.join(spec.nodes)})",
              file=sys.stderr)
        return 2
    try:
        program = shlex.split(args.command)
    except ValueError as exc:
        print(f"--command: cannot parse {args.command!r}: {exc}", file=sys.stderr)
        return 2
    if not program:
        print("--command: empty; give the Maelstrom node's command line", file=sys.stderr)
        return 2
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:  # the adapter
        os.close(to_r)
        os.close(from_w)
        _parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(0)
        os.set_blocking(to_w, False)
        os.set_blocking(from_r, False)
        code = 1
        adapter = None
        try:
            adapter = Adapter(spec, args.id, parent, to_w, from_r, args.workload,
                              args.init_timeout)
            code = adapter.run()
        except zmq.ZMQError as exc:
            _log(args.id, f"cannot serve: {exc}; ending the node program")
            with contextlib.suppress(OSError):
                os.kill(parent, signal.SIGKILL)
        except BaseException as exc:  # noqa: BLE001 - one line, and the node must not linger
            _log(args.id, f"adapter failed: {exc!r}; ending the node program")
            with contextlib.suppress(OSError):
                os.kill(parent, signal.SIGKILL)
        finally:
            if adapter is not None:
                with contextlib.suppress(Exception):
                    adapter.close()
        os._exit(code)
    os.close(to_w)
    os.close(from_r)
    os.dup2(to_r, 0)
    os.dup2(from_w, 1)
    os.close(to_r)
    os.close(from_w)
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        os.write(2, f"maelstrom: cannot run {program[0]}: {exc.strerror or exc}\n".encode())
        os._exit(2)
    return 2  # not reached


if __name__ == "__main__":
    sys.exit(main())
