"""How fast `harness run` records, in both network modes, beside the nodes' own capacity.

    python benchmarks/client_speed.py [--seconds 5] [--repeats 3] [--concurrency 64]
                                      [--nets direct,proxy] [--base /tmp/base]

For each network mode (direct, proxy) and each concurrency, runs
``harness run --nodes 3 --rate 0 --nemesis none`` ``--repeats`` times (the
final check limited to 1 s: its verdict is not what is measured) and
prints the medians of: the recorded ops/s (results.json ``ops_per_s``,
completions per second of load), the p50/p99 latency, and the CPU per
operation of the client side (the worker processes and the harness
process) and of the nodes (with the proxy). CPU figures are rates over the
steady part of the load (after its first second): CPU s per s / ops per s.
Beside them: the nodes' capacity, the closed-loop writer of
benchmarks/raft_throughput.py (writes only, all sent to the leader, from
libzmq DEALERs with one map per request, so without the client wire's
batches, docs/node-contract.md) at 64 and at 128 writes in flight on the same
machine, median of ``--repeats``. The harness's client batches, so it may
record more than that writer gets.
With ``--base DIR`` every run is repeated with the tree at DIR (run from DIR
with PYTHONPATH=DIR), side by side, alternating after/before.

The machine is shared: the load average is printed with each row.
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

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def harness_run(tree: Path, net: str, concurrency: int, seconds: float,
                store: Path) -> dict[str, Any]:
    """One run in ``tree``; its figures and the client side's CPU seconds."""
    harness = Path(sys.executable).with_name("harness")
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.Popen(
        [str(harness), "run", "--nodes", "3", "--rate", "0", "--concurrency", str(concurrency),
         "--nemesis", "none", "--time-limit", str(seconds), "--net", net,
         "--check-time-limit", "1", "--store", str(store)], cwd=tree, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    # While the workers run (the load): (wall, client CPU s, nodes CPU s) samples, where
    # client = the worker processes + the harness process, nodes = nodes + proxy.
    samples: list[tuple[float, float, float]] = []
    top = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            client = sum(top.cpu_times()[:2])
            nodes = 0.0
            load = False
            for p in top.children(recursive=True):
                try:
                    cmd = " ".join(p.cmdline())
                    t = sum(p.cpu_times()[:2])
                except psutil.Error:
                    continue
                if "harness.workers" in cmd:
                    client += t
                    load = True
                elif "-m nodes" in cmd or "faults.netproxy" in cmd:
                    nodes += t
            if load:
                samples.append((time.monotonic(), client, nodes))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = proc.stdout.read().decode() if proc.stdout else ""
    if proc.returncode not in (0, 1, 3):  # 3: the 1 s check gave up (unknown)
        raise SystemExit(f"harness run failed ({proc.returncode}):\n{out[-2000:]}")
    results = json.loads(max(store.glob("*/*/results.json"),
                             key=lambda p: p.stat().st_mtime).read_text())
    # CPU per op in the steady part of the load (its first second, with the workers'
    # imports and the connections, left out): CPU rate / ops rate.
    steady = [x for x in samples if samples and x[0] >= samples[0][0] + 1.0]
    cpu = {"client": None, "nodes": None}
    if len(steady) >= 2 and results["ops_per_s"]:
        (w0, c0, n0), (w1, c1, n1) = steady[0], steady[-1]
        cpu = {"client": 1e6 * (c1 - c0) / (w1 - w0) / results["ops_per_s"],
               "nodes": 1e6 * (n1 - n0) / (w1 - w0) / results["ops_per_s"]}
    return {"ops_per_s": results["ops_per_s"], "p50": results["latency_ms"]["p50"],
            "p99": results["latency_ms"]["p99"], "cpu_us_per_op": cpu["client"],
            "node_cpu_us_per_op": cpu["nodes"],
            "load": os.getloadavg()[0]}


def node_capacity(seconds: float, repeats: int, inflight: list[int]) -> dict[int, list[float]]:
    """raft_throughput.py's closed-loop writer at each in-flight level: writes/s, per repeat."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import raft_throughput as rt

    from harness.cluster import LocalCluster
    from nodes.common.clusterfile import write_cluster

    run_dir = Path(tempfile.mkdtemp(prefix="client-speed-nodes-"))
    cj = write_cluster(run_dir, 3)
    out: dict[int, list[float]] = {n: [] for n in inflight}
    with LocalCluster(cj, [sys.executable, "-m", "nodes", "raft"], run_dir / "logs") as lc:
        lc.start_all()
        lc.wait_ready(30)
        leader = rt.find_leader(lc, 15)
        for _ in range(repeats):
            for n in inflight:
                r = rt.run_level(lc, leader, n, seconds, 0.5)
                if r is not None:
                    out[n].append(r["writes_per_s"])
    return out


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, spec: str) -> str:
    width = int(spec.split(".")[0] or 0)
    return "-".rjust(width) if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="--time-limit of each run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", default="64")
    ap.add_argument("--nets", default="direct,proxy")
    ap.add_argument("--base", help="a pre-change tree to run side by side (e.g. /tmp/base)")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x]
    trees = [("after", ROOT)] + ([("before", Path(args.base).resolve())] if args.base else [])
    print(f"3 raft nodes, harness run --rate 0 --nemesis none --time-limit {args.seconds:g}, "
          f"medians of {args.repeats}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    caps = node_capacity(3.0, args.repeats, [64, 128])
    for n, cap in caps.items():
        print(f"nodes' capacity (raft_throughput.py closed-loop writer, {n} in flight): "
              f"{fmt(statistics.median(cap) if cap else None, '.0f')} writes/s "
              f"(runs: {', '.join(f'{c:.0f}' for c in cap)})")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'net':>6} {'conc':>4} {'tree':>6} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'client CPU us/op':>17} {'nodes CPU us/op':>16} {'load':>5}")
    with tempfile.TemporaryDirectory(prefix="client-speed-") as tmp:
        for net in args.nets.split(","):
            for c in levels:
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
                for i in range(args.repeats):  # alternating, so a change of load hits both
                    for name, tree in trees:
                        runs[name].append(harness_run(tree, net, c, args.seconds,
                                                      Path(tmp) / f"{name}-{net}-{c}-{i}"))
                for name, rows in runs.items():
                    print(f"{net:>6} {c:>4} {name:>6} {fmt(median(rows, 'ops_per_s'), '8.0f')} "
                          f"{fmt(median(rows, 'p50'), '8.2f')} {fmt(median(rows, 'p99'), '8.2f')} "
                          f"{fmt(median(rows, 'cpu_us_per_op'), '17.0f')} "
                          f"{fmt(median(rows, 'node_cpu_us_per_op'), '16.0f')} "
                          f"{median(rows, 'load'):5.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
