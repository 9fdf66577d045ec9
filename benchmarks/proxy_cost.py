"""What the network proxy costs: --net proxy against --net direct, same settings.

    python benchmarks/proxy_cost.py [--protocol raft] [--seconds 3] [--harness-seconds 10]

Three measurements, each printed for both modes:

1. raw forwarding: one DEALER sends small msgpack messages to one ROUTER,
   straight or through ``python -m faults.netproxy`` (also with --journal);
   messages/s received;
2. a 3-node cluster (fsync on) under the closed-loop write load of
   benchmarks/raft_throughput.py (its ``--worker``, in its own process) at 1,
   16 and 128 writes in flight: writes/s and p50/p99;
3. ``harness run --nemesis none --rate 0`` (as fast as the clients go) on the
   same seed and settings: ops/s and latency from results.json.
"""

from __future__ import annotations

import argparse
import json
import os
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
import zmq

from faults.proxyctl import ProxyControl
from harness.cluster import LocalCluster
from nodes.common.clusterfile import load_cluster, write_cluster

WORKER = ROOT / "benchmarks" / "raft_throughput.py"


def raw_forwarding(count: int, via_proxy: bool, journal: bool, tmp: Path) -> float:
    """Messages/s from one DEALER to one ROUTER, direct or through the proxy."""
    # A real two-node cluster.json (the proxy reads it like a node would); n1
    # sends to n2, through n2's proxy listener or straight to its peer_bind.
    path = write_cluster(tmp / f"raw-{via_proxy}-{journal}", 2, net="proxy")
    c = load_cluster(path)
    assert c.proxy is not None and c.proxy.control is not None
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(c.nodes["n2"].peer_bind)
    router.setsockopt(zmq.RCVHWM, 0)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"n1")
    dealer.setsockopt(zmq.SNDHWM, 0)
    proxy = None
    try:
        if via_proxy:
            argv = [sys.executable, "-m", "faults.netproxy", "--cluster", str(path)]
            if journal:
                argv += ["--journal", str(tmp / "net.jsonl")]
            proxy = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
            ctl = ProxyControl(c.proxy.control)
            deadline = time.monotonic() + 15
            while not ctl.ping():
                if time.monotonic() > deadline:
                    raise RuntimeError("proxy did not start")
            dealer.connect(c.proxy.listen["n2"])
        else:
            dealer.connect(c.nodes["n2"].peer_bind)
        # connected end to end: a probe crosses
        while True:
            dealer.send(msgpack.packb({"type": "probe"}))
            if router.poll(100):
                while router.poll(50):
                    router.recv_multipart()
                break
        msg = msgpack.packb({"type": "append_entries", "src": "a", "dest": "b", "term": 3,
                             "prev_index": 1000, "entries": [[1001, 3, {"op": "write",
                                                                          "key": "k1",
                                                                          "value": 42}]]})
        # sender paced in batches so the proxy's own queue limits are not what we measure
        got = 0
        t0 = time.perf_counter()
        sent = 0
        while got < count:
            while sent < count and sent - got < 500:
                dealer.send(msg)
                sent += 1
            if router.poll(1000):
                while True:
                    try:
                        router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    got += 1
            else:
                break  # lost messages: report what arrived
        return got / (time.perf_counter() - t0)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        dealer.close(0)
        router.close(0)
        ctx.term()


def cluster_load(net: str, protocol: str, seconds: float, inflight: list[int],
                 tmp: Path) -> list[dict[str, Any]]:
    run_dir = tmp / f"cluster-{net}"
    cj = write_cluster(run_dir, 3, net=net)
    with LocalCluster(cj, [sys.executable, "-m", "nodes", protocol], run_dir / "logs") as lc:
        lc.start_all()
        lc.wait_ready(30)
        spec = json.dumps({"addrs": lc.client_addrs, "inflight": inflight,
                           "seconds": seconds, "warmup": 0.5})
        out = subprocess.run([sys.executable, str(WORKER), "--worker", spec], capture_output=True,
                             text=True, timeout=120 + len(inflight) * seconds * 2,
                             check=False)  # the return code is checked below
        if out.returncode != 0:
            raise RuntimeError(f"load worker failed: {out.stderr.strip()[-300:]}")
        return json.loads(out.stdout)


def harness_run(net: str, protocol: str, seconds: float, tmp: Path) -> dict[str, Any]:
    store = tmp / f"store-{net}"
    argv = [sys.executable, "-m", "harness", "run", "--system", protocol, "--nodes", "3",
            "--time-limit", f"{seconds:g}", "--rate", "0", "--nemesis", "none", "--seed", "1",
            "--net", net, "--store", str(store), "--no-progress"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300 + seconds,
                         check=False)  # a run that finds anomalies exits 1: read its results
    results = sorted(store.glob("*/*/results.json"))
    if not results:
        raise RuntimeError(f"harness run --net {net} left no results.json "
                           f"(exit {out.returncode}): {out.stderr.strip()[-300:]}")
    return json.loads(results[-1].read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=("raft", "paxos"), default="raft")
    ap.add_argument("--messages", type=int, default=50_000, help="raw forwarding messages")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per cluster load level")
    ap.add_argument("--inflight", default="1,16,128")
    ap.add_argument("--repeat", type=int, default=3,
                    help="raw forwarding: best of this many alternating runs (noisy machine)")
    ap.add_argument("--harness-seconds", type=float, default=10.0,
                    help="--time-limit of each harness run (0 skips them)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="proxy-cost-"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"proxy cost ({args.protocol}, 3 nodes on one machine, {os.cpu_count()} cores, "
          f"load average {load:.1f}; work files in {tmp})")

    print(f"\n1. raw forwarding, one link, small msgpack messages (best of {args.repeat})")
    modes = {"direct": (False, False), "proxy": (True, False), "proxy+journal": (True, True)}
    rates = {name: 0.0 for name in modes}
    for _ in range(max(1, args.repeat)):
        for name, (via, journal) in modes.items():
            rates[name] = max(rates[name], raw_forwarding(args.messages, via, journal, tmp))
    for name, r in rates.items():
        print(f"   {name:<14} {r:>10,.0f} msg/s  ({r / rates['direct']:.0%} of direct)")

    inflight = [int(x) for x in args.inflight.split(",") if x]
    print(f"\n2. cluster write load (raft_throughput worker), {args.seconds:g} s per level")
    loads = {net: cluster_load(net, args.protocol, args.seconds, inflight, tmp)
             for net in ("direct", "proxy")}
    print(f"   {'in flight':>9} {'direct w/s':>11} {'proxy w/s':>10} {'ratio':>6} "
          f"{'p50 direct':>10} {'p50 proxy':>10} {'p99 direct':>10} {'p99 proxy':>10}")
    for d, p in zip(loads["direct"], loads["proxy"]):
        ratio = p["writes_per_s"] / d["writes_per_s"] if d["writes_per_s"] else 0.0
        f = lambda v: f"{v:.2f}" if v is not None else "-"
        print(f"   {d['inflight']:>9} {d['writes_per_s']:>11.0f} {p['writes_per_s']:>10.0f} "
              f"{ratio:>6.0%} {f(d['p50_ms']):>10} {f(p['p50_ms']):>10} "
              f"{f(d['p99_ms']):>10} {f(p['p99_ms']):>10}")

    if args.harness_seconds > 0:
        print(f"\n3. harness run --nodes 3 --rate 0 --nemesis none --seed 1 "
              f"--time-limit {args.harness_seconds:g}")
        for net in ("direct", "proxy"):
            r = harness_run(net, args.protocol, args.harness_seconds, tmp)
            lat = r.get("latency_ms") or {}
            print(f"   --net {net:<7} {r.get('ops_per_s', 0):>8.0f} ops/s  "
                  f"p50 {lat.get('p50')} ms  p99 {lat.get('p99')} ms  "
                  f"verdict {r.get('verdict')}  counts {r.get('counts')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
