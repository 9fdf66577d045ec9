"""The zoo under the generic simulated search: CPU-seconds until a failing seed (issue 15).

    .venv/bin/python benchmarks/sim_zoo.py [--starts 5] [--budget 60] [--workers N] [--bugs a,b]

For every bug/system pair of harness/bugs.py, a *generic* search: simulated
runs of ``RunConfig(sim=True, system=SYSTEM, bugs=[BUG], seed=S,
time_limit=swarm.SEARCH_S)`` with every other option at its default (the hunting
plan) and swarmed per seed by harness/swarm.py (timing, replication
shape, contention, 3 or 5 nodes: the same draw for every bug, nothing chosen for one),
seeds S = start, start+1, ... until the checker finds an anomaly. Many short
runs: each seed brings its own settings and its own start-up, and the
hunting plan's episodes are what find bugs, not a run's length. Its cost is the CPU-seconds of the
simulations and checks (``time.process_time`` of the search's own process),
up to ``--budget`` per start (then "not found"). Median over ``--starts``
search starts (start seeds 0, 1000, 2000, ...). The target: every bug's
median <= 60 CPU-s. The ``correct`` rows run the same search on correct
raft and paxos for the whole budget: any seed it "finds" is a false alarm
(the target is none). Searches run in parallel over ``--workers`` processes
(the CPU-seconds are each search's own). ``benchmarks/bug_zoo.py --sim
--generic`` calls ``main``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import bugs, simrun, swarm
from harness.swarm import SEARCH_S

START_STRIDE = 1000


def pairs() -> list[tuple[str, str]]:
    """Every (bug, system) the zoo has, in registry order."""
    return [(b.name, s) for b in bugs.BUGS.values() for s in b.systems]


def search(bug: str | None, system: str, start: int,
           budget: float) -> tuple[float, int | None, int]:
    """(CPU-s spent, the first failing seed or None, seeds tried) from seed
    ``start``; ``bug`` None: correct nodes (a failing seed is a false alarm)."""
    c0 = time.process_time()
    seed = start
    tried = 0
    while time.process_time() - c0 < budget:
        out = simrun.simulate(simrun.prepare(swarm.search_config(system, seed, bug)),
                              metrics=False)
        tried += 1
        if out.verdict == "invalid":
            return time.process_time() - c0, seed, tried
        seed += 1
    return time.process_time() - c0, None, tried


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--budget", type=float, default=60.0, help="CPU-s per search start")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--bugs", default="", help="comma-separated bug names (default: all)")
    p.add_argument("--no-correct", action="store_true",
                   help="skip the correct raft and paxos rows")
    args = p.parse_args(argv)
    chosen: list[tuple[str | None, str]] = [
        x for x in pairs() if not args.bugs or x[0] in args.bugs.split(",")]
    if not args.no_correct:
        chosen += [(None, "raft"), (None, "paxos")]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; generic search "
          f"(default options but --bug, swarmed, {SEARCH_S:g} s per seed), {args.starts} "
          f"starts, budget {args.budget:g} CPU-s per start", flush=True)
    t0 = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = {(bug, system, k): pool.submit(search, bug, system, k * START_STRIDE, args.budget)
                for bug, system in chosen for k in range(args.starts)}
        print(f"{'bug':16} {'system':6} {'found':>6} {'median CPU-s':>13} {'median seeds':>13}  "
              "failing seeds")
        worst = 0.0
        for bug, system in chosen:
            got = [jobs[(bug, system, k)].result() for k in range(args.starts)]
            found = [g for g in got if g[1] is not None]
            # a start that found nothing counts as the whole budget (and more)
            cpu = statistics.median(g[0] if g[1] is not None else float("inf") for g in got)
            seeds = statistics.median(g[2] for g in got)
            shown = f"{cpu:13.1f}" if cpu != float("inf") else f"{'>' + format(args.budget, 'g'):>13}"
            if bug is None:
                print(f"{'correct':16} {system:6} {len(found):>3}/{args.starts} "
                      f"{'(false alarms)':>13} {sum(g[2] for g in got):>13}  "
                      f"{', '.join(str(g[1]) for g in found)}", flush=True)
                continue
            worst = max(worst, cpu)
            print(f"{bug:16} {system:6} {len(found):>3}/{args.starts} {shown} {seeds:>13.0f}  "
                  f"{', '.join(str(g[1]) for g in found)}", flush=True)
    print(f"worst median {'not found' if worst == float('inf') else f'{worst:.1f} CPU-s'}; "
          f"{time.monotonic() - t0:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
