"""The client at full speed: worker processes, exact latencies, a crash-safe merged history.

- A SIGKILLed `harness run` leaves a history that reads, checks, and reaches
  to within a second of the kill; no worker or node outlives it.
- History times bracket what a node saw: every invoke is stamped before the
  node received the request and every completion after the node replied.
- The merged file is in time order, with the workers' events interleaved.
- A seed gives each logical process the same invocations as OpGenerator, and
  the client mask leaves out exactly the slots and operations it names.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import psutil
import zmq

from checker import check_file
from checker.history import read_history
from harness.cluster import wait_gone
from harness.generator import OpGenerator
from harness.recorder import Clock, Recorder
from harness.workers import WorkerPool, WorkerSettings

ROOT = Path(__file__).resolve().parents[1]


class FakeNode:
    """One node that answers every request ``ok`` after ``delay_s``, and notes
    for each written value when it received the request and when it replied."""

    def __init__(self, delay_s: float = 0.002) -> None:
        self.delay_s = delay_s
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.addr = f"tcp://127.0.0.1:{port}"
        self.seen: dict[object, tuple[int, int]] = {}  # written value -> (received, replied)
        self.store: dict[str, object] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        waiting: list[tuple[int, bytes, dict, int]] = []  # (reply at, client, request, received)
        while not self._stop.is_set():
            wait = 5 if not waiting else max(0, (waiting[0][0] - time.monotonic_ns()) // 10**6)
            if self.sock.poll(wait):
                while True:
                    try:
                        client, data = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    got = time.monotonic_ns()
                    waiting.append((got + int(self.delay_s * 1e9), client,
                                    msgpack.unpackb(data), got))
            now = time.monotonic_ns()
            while waiting and waiting[0][0] <= now:
                _, client, req, got = waiting.pop(0)
                reply = {"id": req["id"], "ok": True}
                if req["op"] == "read":
                    reply["value"] = self.store.get(req["key"])
                else:
                    self.store[req["key"]] = req["value"]
                if req["op"] == "write":  # stamped before the send: the reply exists from then
                    self.seen[req["value"]] = (got, time.monotonic_ns())
                self.sock.send_multipart([client, msgpack.packb(reply)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.ctx.term()


def run_pool(tmp_path: Path, addrs: dict[str, str], *, seconds: float, seed: int = 5,
             ops: list[str] | None = None, concurrency: int = 8,
             workers: int = 2, client_mask: dict | None = None) -> tuple[Path, Clock]:
    """Workers against ``addrs`` for ``seconds``, as `harness run` drives them."""
    path = tmp_path / "history.jsonl"
    clock = Clock()
    rec = Recorder(path, clock)
    pool = WorkerPool(settings=WorkerSettings(addrs, 1.0), recorder=rec, seed=seed, keys=4,
                      ops=ops or ["read", "write"], concurrency=concurrency, rate=0,
                      log=tmp_path / "workers.log", workers=workers, client_mask=client_mask)

    async def drive() -> None:
        assert await pool.ready(30)
        pool.go()
        await asyncio.sleep(seconds)  # the load's duration, as a run's --time-limit
        await pool.stop(5)

    try:
        asyncio.run(drive())
    finally:
        pool.close()
        rec.close()
    return path, clock


def test_history_times_bracket_what_the_node_saw_and_the_file_is_in_time_order(
        tmp_path: Path) -> None:
    node = FakeNode(delay_s=0.002)
    try:
        path, clock = run_pool(tmp_path, {"n1": node.addr}, seconds=1.5, ops=["write"])
    finally:
        node.close()
    events = read_history(path)
    assert len(events) > 200
    times = [e["time"] for e in events]
    assert times == sorted(times), "file order is time order"
    workers_in_order = [e["process"] % 2 for e in events]  # worker w has the slots w, w+2, ...
    switches = sum(1 for a, b in itertools.pairwise(workers_in_order) if a != b)
    assert switches > 50, "both workers' events are interleaved, not appended in blocks"
    invoked = {}
    checked = 0
    for e in events:
        if e["type"] == "invoke":
            invoked[e["process"]] = e
        elif e["type"] == "ok":
            inv = invoked.pop(e["process"])
            received, replied = node.seen[inv["value"]]
            start, end = inv["time"] + clock.start_ns, e["time"] + clock.start_ns
            assert start <= received, "the invoke is stamped before the request is sent"
            assert end >= replied, "the completion is stamped after the reply arrives"
            assert end - start >= int(0.002 * 1e9)  # the node's own delay
            checked += 1
    assert checked > 100
    latencies = [e["time"] for e in events]
    assert any(t % 1000 for t in latencies), "times are nanoseconds, not rounded"


def invocations(tmp_path: Path, client_mask: dict | None = None, seconds: float = 1.0
                ) -> tuple[dict[int, list[tuple]], list[list[tuple]]]:
    """Six slots of seed 42 against a fake node for ``seconds``: each process's invokes
    (f, key, value), and each slot's first draws from its own OpGenerator."""
    node = FakeNode(delay_s=0.0005)
    try:
        path, _ = run_pool(tmp_path, {"n1": node.addr}, seconds=seconds, seed=42, concurrency=6,
                           ops=["read", "write"], client_mask=client_mask)
    finally:
        node.close()
    by_process: dict[int, list[tuple]] = {}
    for e in read_history(path):
        if e["type"] == "invoke":
            by_process.setdefault(e["process"], []).append((e["f"], e["key"], e["value"]))
    draws = []
    for slot in range(6):
        gen = OpGenerator(42, slot, keys=4, ops=["read", "write"], concurrency=6, rate=0)
        gen.first_delay()  # the worker draws it first, as before
        n = max(len(v) for v in by_process.values()) + 10
        draws.append([(op.f, op.key, op.value) for op in (gen.next_op() for _ in range(n))])
    return by_process, draws


def test_the_client_mask_drops_slots_and_skips_operations_leaving_the_rest_unchanged(
        tmp_path: Path) -> None:
    # Slot 2 has no mask: a seed gives each process its generator's invocations (and
    # no info, so no process was renamed).
    skips = [[0, 1], [0, 2], [3, 0], [5, 4]]  # slots 0 and 3 in worker 0, slot 5 in worker 1
    by_process, draws = invocations(tmp_path, {"drop_slots": [1, 4], "skip_ops": skips})
    assert sorted(by_process) == [0, 2, 3, 5], "dropped slots invoke nothing"
    for slot, invoked in by_process.items():
        kept = [op for n, op in enumerate(draws[slot]) if [slot, n] not in skips]
        assert invoked == kept[:len(invoked)]
        assert len(invoked) > 20


def test_keep_ops_invokes_only_the_listed_operations_and_the_other_slots_nothing(
        tmp_path: Path) -> None:
    keep = [[0, 0], [0, 3], [2, 1], [2, 4], [5, 2]]  # slot 0 and 2: worker 0, slot 5: worker 1
    by_process, draws = invocations(tmp_path, {"keep_ops": keep, "skip_ops": [[0, 3]]},
                                    seconds=0.4)
    # A pair listed in both is skipped; past its last listed draw a slot invokes nothing.
    assert by_process == {0: [draws[0][0]], 2: [draws[2][1], draws[2][4]], 5: [draws[5][2]]}


def test_a_sigkilled_run_leaves_a_checkable_history_up_to_the_last_second(
        tmp_path: Path) -> None:
    store = tmp_path / "store"
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--nodes", "3", "--rate", "0",
         "--concurrency", "16", "--nemesis", "none", "--time-limit", "60", "--net", "direct",
         "--store", str(store), "--seed", "3"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        history = None
        while history is None or history.stat().st_size < 200_000:
            assert harness.poll() is None, harness.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run did not record within 90 s"
            found = list(store.glob("*/*/history.jsonl"))
            history = found[0] if found else None
            time.sleep(0.05)
        # Where the file was at a known moment, to measure how far it lags at the kill.
        data = history.read_bytes()
        seen_at = time.monotonic()
        last_then = json.loads(data[:data.rindex(b"\n")].rsplit(b"\n", 1)[-1])["time"]
        time.sleep(1.0)  # let the run go on for a second, then kill it mid-load
        children = psutil.Process(harness.pid).children(recursive=True)
        assert any("harness.workers" in " ".join(c.cmdline()) for c in children)
        killed_at = time.monotonic()
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(10)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        harness.stderr.close()
    alive = wait_gone(children, time.monotonic() + 10)  # a zombie orphan is gone
    for proc in alive:
        proc.kill()
    assert not alive, f"outlived the harness: {[p.cmdline() for p in alive]}"
    result = check_file(history, model="kv")
    assert result.valid is True
    events = read_history(history)
    times = [e["time"] for e in events]
    assert times == sorted(times)
    lag_s = (killed_at - seen_at) - (times[-1] - last_then) / 1e9
    assert lag_s < 1.0, f"the history ended {lag_s:.2f} s before the kill"
