"""What the lazy file system costs the nodes: write throughput on it vs on the plain disk.

    python benchmarks/lazyfs_cost.py [--protocol raft|paxos] [--rounds 3] [--seconds 3]

Starts a 3-node cluster with ``harness.cluster.LocalCluster`` twice per
round, once on the plain data directories and once with a lazy file system
(faults/lazyfs.py) mounted on each (``lazyfs=True``, as runs with disk faults
do), alternating so the machine's load falls on both alike, and drives it with
benchmarks/raft_throughput.py's client process (1, 16, 128 writes in
flight). Prints the median over the rounds of acknowledged writes/s and p50
latency per mode and level, and the lazy/plain ratio; the load average is
printed with each round. Exits 2 with one line where FUSE is not usable.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.raft_throughput import find_leader, fsync_p50_ms, run_level
from faults.lazyfs import unavailable_reason
from harness.cluster import LocalCluster
from nodes.common.clusterfile import write_cluster

MODES = ("plain", "lazyfs")


def one_round(protocol: str, lazy: bool, levels: list[int], seconds: float,
              warmup: float, base: Path) -> dict[int, dict]:
    run_dir = Path(tempfile.mkdtemp(prefix="lazyfs-cost-", dir=base))
    cj = write_cluster(run_dir, 3)
    out: dict[int, dict] = {}
    with LocalCluster(cj, [sys.executable, "-m", "nodes", protocol], run_dir / "logs",
                      lazyfs=lazy) as lc:
        lc.start_all()
        lc.wait_ready(30)
        leader = find_leader(lc, 15)
        for k in levels:
            r = run_level(lc, leader, k, seconds, warmup)
            if r is not None:
                out[k] = r
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=("raft", "paxos"), default="raft")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--inflight", default="1,16,128")
    args = ap.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    levels = [int(x) for x in args.inflight.split(",") if x]
    base = Path(tempfile.mkdtemp(prefix="lazyfs-cost-"))
    print(f"{args.protocol}: 3 nodes, {args.rounds} rounds x {{plain, lazyfs}}, "
          f"{args.seconds:g} s per level; fdatasync p50 here {fsync_p50_ms(base):.2f} ms; "
          f"{os.cpu_count()} cores")
    results: dict[str, dict[int, list[dict]]] = {m: {k: [] for k in levels} for m in MODES}
    for i in range(args.rounds):
        for mode in MODES:
            got = one_round(args.protocol, mode == "lazyfs", levels, args.seconds,
                            args.warmup, base)
            for k, r in got.items():
                results[mode][k].append(r)
            line = ", ".join(f"{k}: {got[k]['writes_per_s']:.0f}/s" for k in levels if k in got)
            print(f"round {i + 1} {mode:>6} (load {os.getloadavg()[0]:.1f}): {line}", flush=True)
    print(f"{'in flight':>9} {'plain w/s':>10} {'lazyfs w/s':>11} {'ratio':>6} "
          f"{'plain p50':>10} {'lazyfs p50':>11}")
    for k in levels:
        med = {}
        for mode in MODES:
            rs = results[mode][k]
            med[mode] = (statistics.median(r["writes_per_s"] for r in rs) if rs else 0.0,
                         statistics.median(r["p50_ms"] for r in rs
                                           if r["p50_ms"] is not None) if rs else 0.0)
        ratio = med["lazyfs"][0] / med["plain"][0] if med["plain"][0] else 0.0
        print(f"{k:>9} {med['plain'][0]:>10.0f} {med['lazyfs'][0]:>11.0f} {ratio:>6.2f} "
              f"{med['plain'][1]:>9.2f}ms {med['lazyfs'][1]:>10.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
