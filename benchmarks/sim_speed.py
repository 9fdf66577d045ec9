"""Simulated seconds per wall second: raft and paxos at 3, 5 and 7 nodes (issue 15).

    .venv/bin/python benchmarks/sim_speed.py [--time-limit 60] [--repeat 3] [--wire]

Each cell is one simulated run of the default workload (rate 200 ops/s, 2
clients per node) under the default nemesis (kill, pause, partition), as
``harness run --sim`` runs it, timed without the folder and report: the
simulation alone ("sim"), and the simulation plus the checker ("+check").
Medians over ``--repeat`` seeds; the CPU-second columns (``time.process_time``)
say what the wall time would be on an idle core. ``--wire``: every peer message crosses the
codec and msgpack. The target row: 5 nodes, 60 s simulated, <= 1.2 s wall
(>= 50x real time). Quote ``uptime`` beside the figures: the machine is shared.
The first line says whether the compiled hot path runs (nodes/_native.py);
``CONSENSUS_HARNESS_PURE=1`` times the pure-Python code of the same tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import simrun, workload
from harness.config import RunConfig
from nodes import _native

#: Issue 15: a 60 s simulated run of 5 raft nodes in at most this many wall seconds.
TARGET_WALL_S = 1.2


def cell(system: str, nodes: int, time_limit: float, seed: int, wire: bool) -> tuple[float, ...]:
    cfg = simrun.prepare(RunConfig(sim=True, system=system, nodes=nodes, time_limit=time_limit,
                                   seed=seed, progress=False))
    t0, c0 = time.perf_counter(), time.process_time()
    out = simrun.simulate(cfg, wire=wire, check=False)
    t1, c1 = time.perf_counter(), time.process_time()
    verdict, _ = workload.check(out.events, cfg)
    t2, c2 = time.perf_counter(), time.process_time()
    if verdict != "valid":
        print(f"  note: {system} {nodes} nodes seed {seed}: {verdict}", file=sys.stderr)
    return out.simulated_s, t1 - t0, t2 - t0, out.counts["ok"], c1 - c0, c2 - c0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-limit", type=float, default=60.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--wire", action="store_true")
    p.add_argument("--systems", default="raft,paxos")
    p.add_argument("--nodes", default="3,5,7")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.time_limit:g} s simulated per run, median of {args.repeat}; "
          f"wire codec {'on' if args.wire else 'off'}; hot path: {_native.describe()}")
    print(f"{'system':7} {'nodes':>5} {'ok ops':>7} {'wall s':>7} {'sim/wall':>9} "
          f"{'+check s':>9} {'sim/wall':>9} {'CPU s':>6} {'+check':>7}")
    for system in args.systems.split(","):  # warm-up: imports and first-call costs untimed
        cell(system, 3, 0.5, 1, args.wire)
    target: tuple[float, float] | None = None  # (wall s, sim/wall) of raft at 5 nodes
    for system in args.systems.split(","):
        for n in (int(x) for x in args.nodes.split(",")):
            cells = [cell(system, n, args.time_limit, 1000 + i, args.wire)
                     for i in range(args.repeat)]
            sim = statistics.median(c[0] for c in cells)
            wall = statistics.median(c[1] for c in cells)
            full = statistics.median(c[2] for c in cells)
            ok = statistics.median(c[3] for c in cells)
            cpu = statistics.median(c[4] for c in cells)
            cpu_full = statistics.median(c[5] for c in cells)
            print(f"{system:7} {n:>5} {ok:>7.0f} {wall:>7.2f} {sim / wall:>8.1f}x "
                  f"{full:>9.2f} {sim / full:>8.1f}x {cpu:>6.2f} {cpu_full:>7.2f}", flush=True)
            if system == "raft" and n == 5:
                target = (wall, sim / wall)
    if target is not None:
        wall, speed = target
        scale = args.time_limit / 60.0
        verdict = "met" if wall <= TARGET_WALL_S * scale else "missed"
        print(f"target: raft, 5 nodes, {args.time_limit:g} s simulated in <= "
              f"{TARGET_WALL_S * scale:.2f} s wall (>= {60 / TARGET_WALL_S:.0f}x): {verdict} "
              f"({wall:.2f} s, {speed:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
