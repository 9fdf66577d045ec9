"""Shrinking the zoo's failing simulated seeds: how small the story gets, how fast (issue 16).

    .venv/bin/python benchmarks/shrink_table.py [--per-bug 3] [--budget 60] [--bugs a,b]
        [--search-budget 240] [--clock wall|cpu] [--seeds-out FILE | --seeds-in FILE]
        [--passes a,b,...] [--steps]

For every bug/system pair of harness/bugs.py: the generic simulated search of
benchmarks/sim_zoo.py (``harness.swarm.search_config``: the defaults but
--bug, under the bug's workload, swarmed per seed; seeds 0, 1, 2, ...) finds
``--per-bug`` failing seeds within ``--search-budget`` CPU-s; each is shrunk
by harness/shrink.py with a ``--budget`` (no bug-specific settings anywhere).
Per bug it prints the medians of the shrunk story's fault operations and
client operations and the seconds each shrink took (wall and the shrink
process's CPU), beside the originals. The target: median at most 5 fault
operations and 40 client operations, each found within 60 s. A bug the search
does not find is listed as such.

``--clock cpu`` counts each shrink's budget in its own process's CPU seconds
(what one core to itself would give it) instead of wall seconds: for a
machine others load; the table says which it used.

The search for failing seeds is no figure of the table: ``--seeds-out FILE``
only searches and writes the seeds found (JSON), ``--seeds-in FILE`` only
shrinks them, so the shrinks can be timed apart (each on a core of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import bugs, shrink, simrun, swarm


def pairs() -> list[tuple[str, str]]:
    return [(b.name, s) for b in bugs.BUGS.values() for s in b.systems]


def failing_seeds(bug: str, system: str, want: int, budget: float) -> tuple[list[int], int]:
    """The first ``want`` seeds (from 0) of the generic search (benchmarks/sim_zoo.py's)
    whose run with ``bug`` fails, within ``budget`` CPU-s; and the seeds tried."""
    found: list[int] = []
    c0 = time.process_time()
    seed = 0
    while len(found) < want and time.process_time() - c0 < budget:
        if simrun.simulate(simrun.prepare(swarm.search_config(system, seed, bug)),
                           metrics=False).verdict == "invalid":
            found.append(seed)
        seed += 1
    return found, seed


def shrink_one(bug: str, system: str, seed: int, budget: float, clock: str = "wall",
               passes: tuple[str, ...] = shrink.Shrinker.PASSES) -> dict:
    """Shrink one failing seed; its original and shrunk sizes and the seconds taken."""
    from faults.plan import recorded_ops

    cfg = simrun.prepare(swarm.search_config(system, seed, bug))
    tick = time.process_time if clock == "cpu" else time.monotonic
    t0, c0, k0 = time.monotonic(), time.process_time(), tick()
    out = simrun.simulate(cfg, metrics=False)  # the shrink's first run: inside its budget
    if out.verdict != "invalid":  # the tree changed since the search (--seeds-in)
        return {"seed": seed, "stale": True}
    faults = recorded_ops(out.events)
    steps: list[str] = []
    s = shrink.Shrinker(cfg, shrink.Candidate(cfg.time_limit, tuple(faults)), shrink.simulate,
                        budget_s=budget - (tick() - k0), known=shrink.outcome_of(out), clock=tick,
                        passes=passes,
                        log=lambda line: steps.append(f"[{tick() - k0:5.1f} s] {line}"))
    r = s.run()
    return {"seed": seed, "faults0": len(r.original.faults),
            "ops0": r.original_outcome.client_ops, "faults": len(r.candidate.faults),
            "ops": r.outcome.client_ops, "seconds": time.monotonic() - t0,
            "cpu": time.process_time() - c0, "runs": r.attempts, "cached": r.cached,
            "out_of_budget": r.out_of_budget, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-bug", type=int, default=3, help="failing seeds shrunk per bug")
    p.add_argument("--search-budget", type=float, default=240.0,
                   help="CPU-s the seed search may take per bug")
    p.add_argument("--budget", type=float, default=60.0, help="seconds per shrink (see --clock)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="count --budget in wall seconds or in the shrink process's CPU seconds")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--bugs", default="", help="comma-separated bug names (default: all)")
    p.add_argument("--seeds-out", default=None, help="only search; write the seeds found here")
    p.add_argument("--seeds-in", default=None, help="only shrink the seeds this file lists")
    p.add_argument("--passes", default="",
                   help="comma-separated Shrinker passes, in order (default: the shrinker's "
                        "own), to set another order beside it in one table")
    p.add_argument("--steps", action="store_true",
                   help="print each shrink's passes, with the seconds (--clock) at their end")
    args = p.parse_args(argv)
    chosen = [x for x in pairs() if not args.bugs or x[0] in args.bugs.split(",")]
    passes = tuple(args.passes.split(",")) if args.passes else shrink.Shrinker.PASSES
    unknown = [n for n in passes if not callable(getattr(shrink.Shrinker, n, None))]
    if unknown:
        p.error(f"no such pass: {', '.join(unknown)}")
    import subprocess

    head = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent), "rev-parse",
                           "--short", "HEAD"], capture_output=True, text=True, check=False)
    listed = None
    if args.seeds_in:
        listed = {tuple(k.split("/")): v for k, v in
                  json.loads(Path(args.seeds_in).read_text()).items()}
        counts = sorted({len(v) for x, v in listed.items() if x in chosen})
        seeds = (f"{'/'.join(map(str, counts)) or 0} failing seeds per bug from {args.seeds_in}"
                 f" (swarmed search, {swarm.SEARCH_S:g} s each)")
    else:
        seeds = (f"{args.per_bug} failing seeds per bug (swarmed search, {swarm.SEARCH_S:g} s "
                 "each)")
    print(f"tree {head.stdout.strip() or '?'}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {seeds}, "
          f"budget {args.budget:g} {args.clock} s per shrink", flush=True)
    if args.passes:
        print(f"passes: {', '.join(passes)}", flush=True)
    t_all = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        tried: dict[tuple[str, str], int] = {}
        if listed is not None:
            found = listed
            chosen = [x for x in chosen if x in found]
        else:
            futs = {x: pool.submit(failing_seeds, *x, args.per_bug, args.search_budget)
                    for x in chosen}
            found = {}
            for x, f in futs.items():
                found[x], tried[x] = f.result()
        if args.seeds_out:
            Path(args.seeds_out).write_text(json.dumps(
                {f"{b}/{s}": v for (b, s), v in found.items()}, indent=1) + "\n")
            for (bug, system), seeds in found.items():
                print(f"{bug:16} {system:6} failing seeds: "
                      f"{seeds or 'none'} of {tried[(bug, system)]} tried")
            return 0
        print(f"{'bug':16} {'system':6} {'seeds':>5} {'faults':>13} {'client ops':>15} "
              f"{'median s':>9} {'max s':>6} {'med CPU-s':>9}")
        jobs = {x: [pool.submit(shrink_one, *x, s, args.budget, args.clock, passes)
                    for s in found[x]]
                for x in chosen}
        met = shown = 0
        for (bug, system), futs in jobs.items():
            rows = [f.result() for f in futs]
            stale = [r["seed"] for r in rows if r.get("stale")]
            rows = [r for r in rows if not r.get("stale")]
            if stale:
                print(f"{bug:16} {system:6} seeds {stale} no longer fail (the tree changed since "
                      "the search)")
            if not rows:
                where = (f"{tried[(bug, system)]} seeds in {args.search_budget:g} CPU-s"
                         if (bug, system) in tried else "the seeds file")
                print(f"{bug:16} {system:6} {0:>5}  not found by the simulated search "
                      f"(no failing seed in {where})", flush=True)
                continue
            shown += 1
            med = {k: statistics.median(r[k] for r in rows)
                   for k in ("faults0", "faults", "ops0", "ops", "seconds", "cpu")}
            worst = max(r["seconds"] for r in rows)
            capped = sum(r["out_of_budget"] for r in rows)
            # The story each shrink reports is the smallest it found within its budget; the
            # target is on the medians of those stories, and on the time in the clock used.
            spent = med["cpu"] if args.clock == "cpu" else med["seconds"]
            ok = med["faults"] <= 5 and med["ops"] <= 40 and spent <= 60
            met += ok
            print(f"{bug:16} {system:6} {len(rows):>5} {med['faults0']:>5g} -> {med['faults']:<5g} "
                  f"{med['ops0']:>6g} -> {med['ops']:<6g} {med['seconds']:>9.1f} "
                  f"{worst:>6.1f} {med['cpu']:>9.1f}" + ("" if ok else "  (misses target)")
                  + (f"  ({capped} of {len(rows)} stopped by the budget)" if capped else ""),
                  flush=True)
            for r in rows:
                print(f"{'':23} seed {r['seed']}: {r['faults0']} -> {r['faults']} faults, "
                      f"{r['ops0']} -> {r['ops']} ops, {r['seconds']:.1f} s ({r['cpu']:.1f} "
                      f"CPU-s), {r['runs']} runs + {r['cached']} cached"
                      + (", out of budget" if r["out_of_budget"] else ""), flush=True)
                for line in r["steps"] if args.steps else ():
                    print(f"{'':27} {line}", flush=True)
    print(f"{met} of {shown} bugs found meet the target (median story <= 5 faults and <= 40 "
          f"client ops, found within {args.budget:g} {args.clock} s each); "
          f"{time.monotonic() - t_all:.0f} s wall; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
