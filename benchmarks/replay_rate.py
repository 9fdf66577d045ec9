"""How often a failing simulated seed's fault plan also fails on real processes (issue 15).

    .venv/bin/python benchmarks/replay_rate.py [--per-pair 1] [--budget 60] [--bugs a,b]
                                               [--store DIR]

For every zoo bug/system pair (harness/bugs.py), the generic simulated search
of benchmarks/sim_zoo.py (swarmed seeds, the hunting plan, no bug-specific
settings) finds up to ``--per-pair`` failing seeds within ``--budget``
CPU-seconds each. Each one is written as a run folder (harness/simrun.py), then
``harness run --replay SIM_RUN_DIR`` plays its recorded fault operations on
real processes with the same options and workload seed (harness/runner.py
``replay_config``). The real run's verdict is what counts: the rate is the share
of replays that fail too. It is a figure, not a test: real timing differs from
the simulation's, so a plan that needs a message to arrive within a
millisecond of another may not bite again, and the real run may find a
different anomaly (counted as a failure, and named).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import runner, simrun, swarm
from reports.ledger import anomaly_kind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_zoo import pairs


def failing_seeds(bug: str, system: str, want: int, budget: float) -> list[int]:
    """Up to ``want`` failing seeds of the generic search from seed 0."""
    found: list[int] = []
    seed = 0
    c0 = time.process_time()
    while len(found) < want and time.process_time() - c0 < budget * want:
        out = simrun.simulate(simrun.prepare(swarm.search_config(system, seed, bug)),
                              metrics=False)
        if out.verdict == "invalid":
            found.append(seed)
        seed += 1
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-pair", type=int, default=1, help="failing seeds replayed per pair")
    p.add_argument("--budget", type=float, default=60.0,
                   help="CPU-seconds of simulated search per seed wanted")
    p.add_argument("--bugs", default="", help="comma-separated bug names (default: all)")
    p.add_argument("--store", default="/tmp/replay_rate", help="where the run folders go")
    args = p.parse_args(argv)
    only = {b for b in args.bugs.split(",") if b}
    store = Path(args.store)
    rows: list[tuple[str, str, int, str, str, str]] = []
    for bug, system in pairs():
        if only and bug not in only:
            continue
        seeds = failing_seeds(bug, system, args.per_pair, args.budget)
        if not seeds:
            print(f"{bug:16} {system:6} no failing simulated seed within the budget", flush=True)
            continue
        for seed in seeds:
            cfg = swarm.search_config(system, seed, bug)
            sim = simrun.run(dataclasses.replace(cfg, store=str(store / "sim")))
            real = runner.run(runner.replay_config(sim.run_dir, store=str(store / "real")))
            kind = anomaly_kind(real.results.get("checker")) if real.verdict == "invalid" else ""
            rows.append((bug, system, seed, anomaly_kind(sim.results.get("checker")),
                         real.verdict, kind))
            print(f"{bug:16} {system:6} seed {seed:5}: sim {sim.verdict} "
                  f"({rows[-1][3]}), real {real.verdict} {kind}  {real.run_dir}", flush=True)
    if not rows:
        return 1
    failed = sum(1 for r in rows if r[4] == "invalid")
    print(f"\nreplay on real processes: {failed} of {len(rows)} failing simulated plans failed "
          f"for real too ({100 * failed / len(rows):.0f}%)")
    for bug, system, seed, sk, verdict, rk in rows:
        print(f"  {bug:16} {system:6} {seed:5}  sim {sk:28} real {verdict:8} {rk}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
