"""Client workers: processes that run the logical client processes at full speed.

Owns the Jepsen process discipline and the worker processes
(docs/history.md, "How a run records"). A run's ``concurrency`` logical
processes (slots) are spread over ``worker_count`` OS processes
(``python -m harness.workers``; one per four cores by default); each runs
its slots on one ``harness.client.Pipeline`` (one DEALER connection per
node, replies matched by request id, no asyncio) and sends its events to the harness's
``Recorder`` over its stdout pipe, in batches, each with a horizon.

Invariants:
- Each slot starts every operation at its home node: slot ``i`` of ``n``
  nodes is bound to node ``i % n``; slots of every second round
  (``(i // n) % 2 == 1``) follow the leader instead: their home becomes the
  node that last answered ``ok``, so they stay with a leader until it refuses
  (a deposed leader that still answers keeps them). Either way a definite
  refusal with a leader hint is followed for that operation (harness/client.py).
- Each slot has at most one operation in flight, from its OpGenerator
  (harness/generator.py: the same seed gives each slot the same sequence of
  invocations as before; ``seen`` is shared by the slots of one process).
- An invoke is stamped just before its request is sent (the Pipeline's
  ``on_send``: the requests begun in one pass of the loop are stamped together,
  then leave in one ``send`` per node), or, if no request of it could be sent
  at all, just before its completion; a completion is stamped right after the
  ``recv`` that brought its reply (or when its deadline passes). Batches are
  time-sorted and every later event of the process has a time >= the batch's
  horizon.
- The client mask (``RunConfig.client_mask``, a shrunk run) is honoured as
  the simulated clients honour it (nodes/sim/load.py): a slot of
  ``drop_slots`` invokes nothing; a slot's n-th drawn operation (0-based) in
  ``skip_ops`` is drawn but not invoked, its gap is drawn too and the slot
  waits for its next start, so every other operation keeps its draws and its
  time. With ``keep_ops`` a slot invokes only its listed (slot, n) operations
  (the others are skipped so), and once it has drawn past its last listed one
  it invokes nothing more; a slot with none listed starts nothing.
- A slot whose operation ended ``info`` continues under a fresh process
  number (its old operation may still take effect); a late reply to the old
  request has a request id the Pipeline no longer knows, so it is dropped.
  Fresh numbers of worker ``w`` of ``W``: ``concurrency + w + W*k``.
- After ``stop``, no slot starts an operation; those in flight end within
  the request timeout; the process sends its last batch (horizon and
  ``next_process``) and exits. It dies with the harness (PR_SET_PDEATHSIG)
  and when its pipe breaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.client import Call, Pipeline
from harness.generator import Invocation, OpGenerator
from harness.recorder import Recorder, frame, json_value, op_text
from harness.retry_rules import completion_value
from harness.workload import generator_class

#: Seconds between a worker's batches: the history lags the clients by about this
#: plus the recorder's flush interval.
BATCH_S = 0.02
PIPE_BYTES = 1 << 20  # the worker's pipe to the harness (worker_main)
_TYPE_SLOT = {"invoke": 0, "ok": 1, "fail": 2, "info": 3}


@dataclass
class WorkerSettings:
    addrs: dict[str, str]
    request_timeout: float


def default_worker_count(concurrency: int) -> int:
    """One worker process per four cores (at least one, at most one per slot).

    The nodes under test need the machine more than the clients do: one worker
    process drives tens of thousands of operations a second, and each extra one
    costs CPU per operation (smaller batches per wake-up: against the same fake
    cluster, 64 slots took ~45 us of CPU an operation in one process and ~60 us
    in two)."""
    return max(1, min(concurrency, (os.cpu_count() or 1) // 4))


# --- inside a worker process ---------------------------------------------------------


class _Batch:
    """Events not yet sent to the recorder, and how to send them."""

    def __init__(self, fd: int, t0: int) -> None:
        self.fd = fd
        self.t0 = t0
        self.times: list[int] = []
        self.texts: list[str] = []
        self.counts = [0, 0, 0, 0]

    def send(self, extra: dict[str, Any] | None = None) -> None:
        horizon = time.monotonic_ns() - self.t0  # every later stamp is >= this
        data = frame(horizon, self.counts, self.times, self.texts, extra)
        self.times, self.texts, self.counts = [], [], [0, 0, 0, 0]
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


class _Slot(Call):
    """One logical process: its generator, its process number, its operation."""

    __slots__ = ("drawn", "ended", "gen", "next_at", "op", "process", "slot", "sticky",
                 "unstamped")

    def __init__(self, home: str, done: Any, gen: OpGenerator, process: int,
                 sticky: bool = False) -> None:
        super().__init__(home, done)
        self.sticky = sticky  # follows the leader: home = the node that last answered ok
        self.gen = gen
        self.slot = process  # its number in the run (the client mask's), as its first process
        self.process = process
        self.drawn = 0  # operations drawn from gen so far
        self.op: Invocation | None = None
        self.next_at = 0
        self.ended = False
        self.unstamped = False  # its operation's invoke is not recorded yet


class _Runner:
    """The slots of one worker process on one Pipeline."""

    def __init__(self, spec: dict[str, Any], out_fd: int) -> None:
        self.t0 = spec["t0_ns"]
        self.timeout_ns = int(spec["request_timeout"] * 1e9)
        self.pipe = Pipeline(spec["addrs"], on_send=self._stamp)
        self._unstamped: list[_Slot] = []  # begun, invoke not recorded yet (in begin order)
        self.batch = _Batch(out_fd, self.t0)
        self.stopping = False
        self.active = 0
        w, count, concurrency = spec["worker"], spec["workers"], spec["concurrency"]
        self._fresh = iter(range(concurrency + w, 1 << 62, count))
        node_ids = list(spec["addrs"])
        seen: dict[str, Any] = {}  # newest value observed per key, for cas expectations
        gen = generator_class(spec.get("workload", "kv"))
        options = spec.get("options") or {}
        # The client mask (RunConfig.client_mask, a shrunk run): dropped slots invoke
        # nothing; a skipped (slot, n) is drawn but not invoked, so the rest are unchanged.
        drop = set(spec.get("drop_slots") or ())
        self.skip_ops = {(a, b) for a, b in spec.get("skip_ops") or ()}
        # keep_ops: only these (slot, n) are invoked; past its last one a slot ends.
        keep = spec.get("keep_ops")
        self.keep_ops = None if keep is None else {(a, b) for a, b in keep}
        self.last_kept: dict[int, int] = {}
        for a, b in self.keep_ops or ():
            self.last_kept[a] = max(b, self.last_kept.get(a, -1))
        self.slots = [
            _Slot(node_ids[slot % len(node_ids)], self._done,
                  gen(spec["seed"], slot, keys=spec["keys"], ops=spec["ops"],
                      concurrency=concurrency, rate=spec["rate"], seen=seen, **options), slot,
                  sticky=(slot // len(node_ids)) % 2 == 1)
            for slot in spec["slots"] if slot not in drop]
        self._key_json: dict[str, str] = {}
        self._node_json = {n: json_value(n) for n in node_ids}

    def go(self) -> None:
        now = time.monotonic_ns()
        for s in self.slots:
            if self.keep_ops is not None and s.slot not in self.last_kept:
                s.ended = True  # no operation of it is kept: it starts nothing, as if dropped
                continue
            self.active += 1
            s.next_at = now + int(s.gen.first_delay() * 1e9)
            self.pipe.at(s.next_at, self._begin_later, s)

    def _key(self, key: str) -> str:
        js = self._key_json.get(key)
        if js is None:
            js = self._key_json[key] = json_value(key)
        return js

    def _begin_later(self, s: _Slot) -> None:
        self._begin(s, time.monotonic_ns())

    def _begin(self, s: _Slot, now: int) -> None:
        if self.stopping or s.ended:
            self._end(s)
            return
        op = s.op = s.gen.next_op()
        s.drawn += 1
        while self._skipped(s):
            # Drawn, not invoked: its time stays empty (its gap drawn as if it had run),
            # so the slot's later operations keep their times and draws.
            s.next_at += int(s.gen.gap() * 1e9)
            if s.next_at > now:
                self.pipe.at(s.next_at, self._begin_later, s)
                return
            op = s.op = s.gen.next_op()
            s.drawn += 1
        if s.ended:
            return
        s.unstamped = True
        self._unstamped.append(s)
        self.pipe.start(s, op.request(), self.timeout_ns, now)

    def _skipped(self, s: _Slot) -> bool:
        """The slot's newest draw is not invoked (the client mask); past its last kept
        operation the slot ends (and this says so, with ``s.ended``)."""
        n = s.drawn - 1
        if self.keep_ops is not None:
            if n > self.last_kept.get(s.slot, -1):
                self._end(s)
                return False
            if (s.slot, n) not in self.keep_ops:
                return True
        return bool(self.skip_ops) and (s.slot, n) in self.skip_ops

    def _stamp(self, t_abs: int) -> None:
        """Record the invokes of the operations begun since the last call, at ``t_abs``:
        the Pipeline calls it just before it sends their requests."""
        waiting = self._unstamped
        if not waiting:
            return
        t = t_abs - self.t0
        b = self.batch
        times, texts, keys = b.times, b.texts, self._key_json
        for s in waiting:
            op = s.op
            times.append(t)
            texts.append(op_text(t, s.process, "invoke", op.f,
                                 keys.get(op.key) or self._key(op.key), op.value))
            s.unstamped = False
        b.counts[0] += len(waiting)
        waiting.clear()

    def _done(self, s: _Slot, type_: str, reply: dict[str, Any] | None, node: str | None,
              error: str | None, t_abs: int) -> None:
        op = s.op
        assert op is not None
        if s.unstamped:  # ended before any request left (none could be sent): invoked now
            self._stamp(t_abs)
        value = completion_value(op, type_, reply)
        t = t_abs - self.t0
        b = self.batch
        b.times.append(t)
        b.texts.append(op_text(t, s.process, type_, op.f,
                               self._key_json.get(op.key) or self._key(op.key), value,
                               self._node_json.get(node) if node is not None else None,
                               error if type_ != "ok" and error else None))
        b.counts[_TYPE_SLOT[type_]] += 1
        gen = s.gen
        gen.observe(op, type_, value)
        if type_ == "info":
            s.process = next(self._fresh)
        elif s.sticky and type_ == "ok" and node is not None:
            s.home = node
        next_at = s.next_at + int(gen.gap() * 1e9)
        if next_at <= t_abs:
            s.next_at = t_abs
            self._begin(s, t_abs)
        else:
            s.next_at = next_at
            self.pipe.at(next_at, self._begin_later, s)

    def stop(self) -> None:
        """Start no more operations; slots waiting for their next start end now."""
        self.stopping = True
        for s in self.slots:
            if s.seq == 0:  # no operation in flight
                self._end(s)

    def _end(self, s: _Slot) -> None:
        if not s.ended:
            s.ended = True
            self.active -= 1

    def next_process(self) -> int:
        return next(self._fresh)


def _read_command(fd: int, wait_s: float) -> str | None:
    """One line from the harness, if one arrives within ``wait_s``; "" at EOF."""
    if not select.select([fd], [], [], wait_s)[0]:
        return None
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return ""
        line += chunk
    return line.decode().strip()


def worker_main() -> int:
    """``python -m harness.workers``: the spec is the first line of stdin, then
    ``go`` and ``stop`` lines; batches go to stdout (see the module header)."""
    from harness.cluster import _die_with_parent

    _die_with_parent()
    # Ctrl-C reaches the whole foreground group; the harness turns it into "stop",
    # which lets the operations in flight end and be recorded.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the batch stream
    # A pipe holds 64 kB: one 20 ms batch at ~15k operations a second. A batch must
    # not wait for the harness's reader (a thread sharing the GIL with the streaming
    # checker), or the operations in flight wait with it; 1 MB is the default limit.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(out_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    spec = json.loads(_read_command(0, 60.0) or "{}")
    runner = _Runner(spec, out_fd)
    runner.pipe.wait_connected(5.0)
    runner.batch.send()  # ready: the first horizon
    while True:
        cmd = _read_command(0, 60.0)
        if cmd == "go":
            break
        if cmd in ("", "stop"):
            runner.batch.send({"next_process": runner.next_process()})
            return 0
    runner.go()
    batch_ns = int(BATCH_S * 1e9)
    next_batch = time.monotonic_ns() + batch_ns
    pipe = runner.pipe
    try:
        while not (runner.stopping and runner.active == 0):
            pipe.step(max(0, next_batch - time.monotonic_ns()))
            now = time.monotonic_ns()
            if now >= next_batch:
                next_batch = now + batch_ns
                runner.batch.send()
                if not runner.stopping and _read_command(0, 0) is not None:
                    runner.stop()  # "stop", or EOF: the harness is gone
    except BaseException:
        # An invoke is stamped before its request leaves: if this process dies with
        # it unsent to the recorder, a value it wrote reads as written by no one (a
        # false anomaly). What was stamped goes out first, open (indeterminate).
        with contextlib.suppress(Exception):
            runner.batch.send({"next_process": runner.next_process(), "crashed": True})
        raise
    runner.batch.send({"next_process": runner.next_process()})
    pipe.close()
    return 0


# --- in the harness --------------------------------------------------------------------


class WorkerPool:
    """The worker processes of one run, feeding ``recorder``. Every process is
    ended by the PID of its Popen (``close``)."""

    def __init__(self, *, settings: WorkerSettings, recorder: Recorder, seed: int, keys: int,
                 ops: list[str], concurrency: int, rate: float, log: Path,
                 workers: int | None = None, workload: str = "kv",
                 options: dict[str, Any] | None = None,
                 client_mask: dict[str, Any] | None = None) -> None:
        self.recorder = recorder
        mask = client_mask or {}
        count = workers or default_worker_count(concurrency)
        self.count = count
        self._procs: list[subprocess.Popen] = []
        self._writers: list[Any] = []
        self.lost: list[int] = []  # set by stop()
        self._log: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in close()
        from harness.cluster import _die_with_parent

        for w in range(count):
            spec = {"t0_ns": recorder.clock.start_ns, "addrs": settings.addrs,
                    "request_timeout": settings.request_timeout, "seed": seed, "keys": keys,
                    "ops": list(ops), "concurrency": concurrency, "rate": rate,
                    "workload": workload, "options": dict(options or {}),
                    "worker": w, "workers": count, "slots": list(range(w, concurrency, count)),
                    "drop_slots": list(mask.get("drop_slots", ())),
                    "skip_ops": [list(o) for o in mask.get("skip_ops", ()) if o[0] % count == w]}
            if mask.get("keep_ops") is not None:
                spec["keep_ops"] = [list(o) for o in mask["keep_ops"] if o[0] % count == w]
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.workers"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, close_fds=True,
                preexec_fn=_die_with_parent  # noqa: PLW1509
                if threading.current_thread() is threading.main_thread() else None)
            self._procs.append(proc)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write((json.dumps(spec) + "\n").encode())
            proc.stdin.flush()
            self._writers.append(recorder.attach(proc.stdout.fileno()))

    def _tell(self, line: str) -> None:
        for proc in self._procs:
            try:
                assert proc.stdin is not None
                proc.stdin.write((line + "\n").encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # it is gone; its pipe's EOF detaches it

    async def ready(self, timeout: float) -> bool:
        """Wait until every worker has connected its sockets (sent a horizon) or exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.horizon > 0 or w.done for w in self._writers):
                return True
            await asyncio.sleep(0.01)
        return False

    def go(self) -> None:
        self._tell("go")

    async def stop(self, timeout: float) -> list[str]:
        """Let every operation in flight end, then wait for the workers (kill after
        ``timeout``) and for the recorder to have written all they sent. Returns
        notes for results.json: workers that failed or had to be killed."""
        self._tell("stop")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.poll() is None for p in self._procs):
            await asyncio.sleep(0.01)
        notes = [f"client worker {i} exited with code {p.returncode} (nodes/workers.log)"
                 if p.returncode is not None else f"client worker {i} did not stop; killed"
                 for i, p in enumerate(self._procs) if p.returncode != 0]
        self.close()
        await asyncio.to_thread(self.recorder.wait_detached, 5.0)
        #: Workers whose last batch never came (killed, or died in a way that sent
        #: nothing): operations they sent may be missing from the history.
        self.lost = [i for i, w in enumerate(self._writers) if "next_process" not in w.extra]
        for proc, w in zip(self._procs, self._writers):
            if w.done and proc.stdout is not None:
                proc.stdout.close()  # the recorder has read it to EOF
        return notes

    def next_process(self) -> int:
        """A process number above every one the workers used."""
        return max([w.extra.get("next_process", 0) for w in self._writers] +
                   [p + 1 for p in range(len(self._procs))])

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass  # its reader is gone
        if not self._log.closed:
            self._log.close()


# --- final reads (in the harness) ------------------------------------------------------


def final_reads(keys: list[str], settings: WorkerSettings, recorder: Recorder,
                first_process: int, deadline_s: float) -> dict[str, bool]:
    """Read every key, each attempt under a fresh process number, retrying until
    one read is ok or ``deadline_s`` seconds pass. Blocking (run it in a thread).
    Returns key -> whether a read succeeded."""
    node_ids = list(settings.addrs)
    pipe = Pipeline(settings.addrs)
    deadline = time.monotonic_ns() + int(deadline_s * 1e9)
    ok: dict[str, bool] = dict.fromkeys(keys, False)
    open_keys = set(keys)
    processes = iter(range(first_process, 1 << 62))

    class Read(Call):
        __slots__ = ("key", "process")

    def begin(c: Read) -> None:
        now = time.monotonic_ns()
        if now >= deadline:
            open_keys.discard(c.key)
            return
        c.process = next(processes)
        recorder.record({"process": c.process, "type": "invoke", "f": "read", "key": c.key,
                         "value": None})
        timeout = min(int(settings.request_timeout * 2e9), max(100_000_000, deadline - now))
        pipe.start(c, {"op": "read", "key": c.key}, timeout, now)

    def done(c: Read, type_: str, reply: dict[str, Any] | None, node: str | None,
             error: str | None, t: int) -> None:
        event: dict[str, Any] = {"process": c.process, "type": type_, "f": "read",
                                 "key": c.key,
                                 "value": (reply or {}).get("value") if type_ == "ok" else None}
        if node is not None:
            event["node"] = node
        if type_ != "ok" and error:
            event["error"] = error
        recorder.record(event)
        if type_ == "ok":
            ok[c.key] = True
            open_keys.discard(c.key)
        else:
            pipe.at(t + 100_000_000, begin, c)

    try:
        for i, key in enumerate(keys):
            c = Read(node_ids[i % len(node_ids)], done)
            c.key = key
            begin(c)
        while open_keys:
            pipe.step(50_000_000)
    finally:
        pipe.close()
    return ok


if __name__ == "__main__":
    sys.exit(worker_main())
