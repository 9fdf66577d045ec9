"""Throughput, latency and failover of a 3-node cluster of real node processes.

    python benchmarks/raft_throughput.py [--protocol raft|paxos] [--seconds 3] [--failovers 10]

Starts 3 node processes (fsync on, the default and only mode) with
``harness.cluster.LocalCluster``, then a client process (this file with
``--worker``) that keeps 1, 16 and 128 writes in flight on pipelined DEALER
sockets, following ``not_leader`` hints, and reports committed (acknowledged)
writes/s with p50/p99 latency. Then it measures leader failover: SIGKILL the
leader and time until the next write is acknowledged by the new leader
(median of ``--failovers`` runs; the killed node is restarted and caught up
before the next run).

Targets (issue 2, on a 2-core machine): >= 5,000 writes/s at 128 in flight,
p50 < 1.5 ms at 1 in flight, failover median < 1 s with default timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack
import psutil
import zmq

from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster
from nodes.common.wire import call

REQUEST_TIMEOUT_S = 2.0


# -- the client process -------------------------------------------------------


def run_load(addrs: dict[str, str], inflight: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Keep ``inflight`` writes outstanding for ``seconds``; count acknowledged ones."""
    ctx = zmq.Context.instance()
    socks: dict[str, zmq.Socket] = {}
    owner: dict[zmq.Socket, str] = {}
    poller = zmq.Poller()
    for node, addr in addrs.items():
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.connect(addr)
        socks[node] = s
        owner[s] = node
        poller.register(s, zmq.POLLIN)
    for s in socks.values():  # connections up first, or the first sends would be dropped
        s.poll(2000, zmq.POLLOUT)
    packb, unpackb = msgpack.packb, msgpack.unpackb
    nodes = list(addrs)
    leader = nodes[0]
    pending: dict[int, tuple[float, dict[str, Any]]] = {}
    next_id = 1
    latencies: list[float] = []
    ok = lost = redirects = 0
    now = time.perf_counter()
    start_measure = now + warmup
    end = start_measure + seconds

    def send(req: dict[str, Any], sent_at: float) -> None:
        nonlocal leader
        for _ in range(len(nodes)):
            try:
                socks[leader].send(packb(req), zmq.NOBLOCK)
                pending[req["id"]] = (sent_at, req)
                return
            except zmq.Again:  # no connection to that node: try the next
                leader = nodes[(nodes.index(leader) + 1) % len(nodes)]
        pending[req["id"]] = (sent_at, req)  # counts as lost at the timeout

    while True:
        now = time.perf_counter()
        if now >= end:
            break
        while len(pending) < inflight:
            req = {"id": next_id, "op": "write", "key": f"k{next_id % 64}", "value": next_id}
            next_id += 1
            send(req, time.perf_counter())
        for sock, _ in poller.poll(100):
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                t = time.perf_counter()
                reply = unpackb(frame, raw=False)
                item = pending.pop(reply.get("id"), None)
                if item is None:
                    continue
                sent_at, req = item
                if reply.get("ok"):
                    if sent_at >= start_measure and t <= end:
                        ok += 1
                        latencies.append(t - sent_at)
                elif reply.get("error") in ("not_leader", "unavailable") and reply.get("definite"):
                    hint = reply.get("leader")
                    if hint in socks:
                        leader = hint
                    else:
                        leader = nodes[(nodes.index(owner[sock]) + 1) % len(nodes)]
                    redirects += 1
                    req = dict(req, id=next_id)  # definite refusal: safe to send again
                    next_id += 1
                    send(req, sent_at)
                else:
                    lost += 1
        cutoff = time.perf_counter() - REQUEST_TIMEOUT_S
        for rid in [r for r, (t0, _) in pending.items() if t0 < cutoff]:
            del pending[rid]
            lost += 1
    for s in socks.values():
        s.close(linger=0)
    latencies.sort()
    n = len(latencies)
    return {
        "inflight": inflight,
        "writes_per_s": ok / seconds,
        "p50_ms": latencies[n // 2] * 1000 if n else None,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else None,
        "acked": ok,
        "lost": lost,
        "redirects": redirects,
    }


def worker_main(spec: str) -> int:
    cfg = json.loads(spec)
    out = [run_load(cfg["addrs"], k, cfg["seconds"], cfg["warmup"]) for k in cfg["inflight"]]
    print(json.dumps(out))
    return 0


# -- the benchmark ------------------------------------------------------------


def find_leader(lc: LocalCluster, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node in lc.node_ids:
            if not lc.is_running(node):
                continue
            st = call(lc.client_addrs[node], {"op": "status"}, 0.3)
            if st and st.get("role") == "leader":
                return node
        time.sleep(0.02)
    raise SystemExit(f"no leader within {timeout} s")


def acked_write(lc: LocalCluster, value: int, deadline: float, ctx: zmq.Context) -> bool:
    """Try nodes (following hints) until one write is acknowledged."""
    socks = {}
    try:
        for node in lc.node_ids:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.IMMEDIATE, 1)
            s.connect(lc.client_addrs[node])
            socks[node] = s
        node = lc.node_ids[0]
        rid = 0
        while time.monotonic() < deadline:
            rid += 1
            s = socks[node]
            try:
                s.send(msgpack.packb({"id": rid, "op": "write", "key": "failover",
                                      "value": [value, rid]}), zmq.NOBLOCK)
            except zmq.Again:
                node = lc.node_ids[(lc.node_ids.index(node) + 1) % len(lc.node_ids)]
                time.sleep(0.001)
                continue
            reply = None
            if s.poll(100):
                reply = msgpack.unpackb(s.recv(), raw=False)
            if reply and reply.get("ok"):
                return True
            if reply and reply.get("leader") in socks:
                node = reply["leader"]
            else:
                node = lc.node_ids[(lc.node_ids.index(node) + 1) % len(lc.node_ids)]
                time.sleep(0.002)
        return False
    finally:
        for s in socks.values():
            s.close(linger=0)


def wait_caught_up(lc: LocalCluster, node: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = find_leader(lc, timeout)
        lst = call(lc.client_addrs[leader], {"op": "status"}, 0.5)
        st = call(lc.client_addrs[node], {"op": "status"}, 0.5)
        if lst and st and st.get("commit_index", -1) >= lst.get("commit_index", 0) - 1:
            return
        time.sleep(0.05)
    raise SystemExit(f"{node} did not catch up within {timeout} s")


def measure_failover(lc: LocalCluster, runs: int) -> list[float]:
    ctx = zmq.Context.instance()
    times = []
    for i in range(runs):
        leader = find_leader(lc, 10)
        if not acked_write(lc, -i, time.monotonic() + 10, ctx):
            raise SystemExit("cluster does not accept writes before the failover run")
        t0 = time.monotonic()
        lc.kill(leader)
        if not acked_write(lc, i, t0 + 30, ctx):
            raise SystemExit(f"no write acknowledged within 30 s of killing {leader}")
        times.append(time.monotonic() - t0)
        lc.start(leader)
        lc.wait_ready(20)
        wait_caught_up(lc, leader, 20)
    return times


def fsync_p50_ms(folder: Path, n: int = 50) -> float:
    """How long this disk takes to make a small append durable, right now."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 200)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1000


def run_level(lc: LocalCluster, leader: str, inflight: int, seconds: float,
              warmup: float) -> dict[str, Any] | None:
    """One load level in a fresh client process; adds the leader's CPU per write."""
    spec = json.dumps({"addrs": lc.client_addrs, "inflight": [inflight],
                       "seconds": seconds, "warmup": warmup})
    pid = lc.pid(leader)
    proc = psutil.Process(pid) if pid else None
    worker = subprocess.Popen([sys.executable, __file__, "--worker", spec],
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(warmup)  # the worker measures after its own warm-up too
        cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
        t0 = time.perf_counter()
        out, _ = worker.communicate(timeout=60 + 2 * (seconds + warmup))
        cpu = (sum(proc.cpu_times()[:2]) - cpu0) if proc else 0.0
        wall = time.perf_counter() - t0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    if worker.returncode != 0:
        print(f"client process failed with code {worker.returncode}")
        return None
    r = json.loads(out)[0]
    writes = r["writes_per_s"] * wall
    r["leader_cpu_us"] = cpu / writes * 1e6 if proc and writes > 0 else None
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=("raft", "paxos"), default="raft")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per load level")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--inflight", default="1,16,128")
    ap.add_argument("--failovers", type=int, default=10)
    ap.add_argument("--dir", help="run folder (default: a new temporary folder)")
    ap.add_argument("--command", help="node command instead of 'python -m nodes PROTOCOL'")
    ap.add_argument("--keep", action="store_true", help="keep the cluster up; print its path")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)

    run_dir = Path(args.dir or tempfile.mkdtemp(prefix=f"bench-{args.protocol}-"))
    cj = write_cluster(run_dir, 3)
    command = (args.command.split() if args.command
               else [sys.executable, "-m", "nodes", args.protocol])
    inflight = [int(x) for x in args.inflight.split(",") if x]
    print(f"{args.protocol}: 3 node processes, fsync on, data in {run_dir}")
    with LocalCluster(cj, command, run_dir / "logs") as lc:
        lc.start_all()
        lc.wait_ready(30)
        leader = find_leader(lc, 15)
        print(f"leader {leader}; clients in a separate process, "
              f"{args.seconds:g} s per level after {args.warmup:g} s warm-up")
        print(f"disk: fdatasync of a small append in the data dir p50 "
              f"{fsync_p50_ms(run_dir):.2f} ms; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        print(f"{'in flight':>9} {'writes/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} "
              f"{'leader CPU us/write':>20}")
        for k in inflight:
            r = run_level(lc, leader, k, args.seconds, args.warmup)
            if r is None:
                return 1
            p50 = f"{r['p50_ms']:.2f}" if r["p50_ms"] is not None else "-"
            p99 = f"{r['p99_ms']:.2f}" if r["p99_ms"] is not None else "-"
            cpu = f"{r['leader_cpu_us']:.0f}" if r["leader_cpu_us"] is not None else "-"
            print(f"{r['inflight']:>9} {r['writes_per_s']:>10.0f} {p50:>8} {p99:>8} "
                  f"{r['lost']:>5} {cpu:>20}", flush=True)
        if args.failovers > 0:
            times = measure_failover(lc, args.failovers)
            ms = sorted(t * 1000 for t in times)
            print(f"failover (kill -9 leader -> next acknowledged write), {len(ms)} runs: "
                  f"median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
        if args.keep:
            print(f"cluster.json: {cj}; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
