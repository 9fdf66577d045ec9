"""A simulated sweep on a real local Dask cluster against local worker processes (issue 16).

    .venv/bin/python benchmarks/dask_sweep.py [--seeds 200] [--dask-workers 2] [--repeats 1]
        [--system raft] [--nodes 3] [--time-limit 10] [--bug NAME] [--store DIR]

Starts a Dask scheduler and ``--dask-workers`` single-threaded worker processes
on 127.0.0.1 (tests/testkit/daskcluster.py: started and ended by PID), runs the
sweep of ``--seeds`` simulated seeds through ``--scheduler`` (harness.sweep, as
`harness run --sim --test-count N --scheduler ADDRESS` does), then the same
seeds on one local worker process (``--workers 1``), in alternation
``--repeats`` times, each into its own store. Prints the Dask sweep's summary,
each wall time, the medians and the load average beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import sweep
from harness.config import RunConfig


def timed_sweep(cfg: RunConfig) -> tuple[float, list[sweep.Row]]:
    t0 = time.monotonic()
    rows = list(sweep.sweep(cfg))
    return time.monotonic() - t0, rows


def main(argv: list[str] | None = None) -> int:
    import signal

    from testkit.daskcluster import dask_cluster

    # A SIGTERM (timeout, a killed job) unwinds the cluster's context: its processes end by PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--dask-workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--system", default="raft")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--time-limit", type=float, default=10.0)
    p.add_argument("--bug", action="append", default=[])
    p.add_argument("--store", default=None, help="parent of the stores (default: a temp dir)")
    args = p.parse_args(argv)
    parent = Path(args.store or tempfile.mkdtemp(prefix="dask-sweep-"))
    base = RunConfig(sim=True, system=args.system, nodes=args.nodes, time_limit=args.time_limit,
                     bugs=args.bug, seed=0, test_count=args.seeds, progress=False)
    print(f"{args.seeds} simulated seeds ({args.system}, {args.nodes} nodes, "
          f"{args.time_limit:g} s each, bugs: {','.join(args.bug) or 'none'}); stores under "
          f"{parent}", flush=True)
    walls: dict[str, list[float]] = {"dask": [], "local": []}
    with dask_cluster(parent / "dask", workers=args.dask_workers) as cluster:
        for i in range(args.repeats):
            cfg = RunConfig(**{**base.__dict__, "scheduler": cluster.address,
                               "store": str(parent / f"dask-{i}")})
            wall, rows = timed_sweep(cfg)
            walls["dask"].append(wall)
            if i == 0:
                print(f"--- the Dask sweep ({args.dask_workers} workers, {cluster.address}):")
                print(sweep.summary(rows, wall), flush=True)
            print(f"dask x{args.dask_workers}: {wall:.1f} s wall (load average "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
            cfg = RunConfig(**{**base.__dict__, "workers": 1, "store": str(parent / f"local-{i}")})
            wall, rows = timed_sweep(cfg)
            walls["local"].append(wall)
            bad = sum(r.exit_code != 0 for r in rows)
            print(f"local x1: {wall:.1f} s wall, {len(rows)} seeds, {bad} not valid (load "
                  f"average {os.getloadavg()[0]:.2f})", flush=True)
    d, loc = statistics.median(walls["dask"]), statistics.median(walls["local"])
    print(f"median wall over {args.repeats}: Dask with {args.dask_workers} workers {d:.1f} s, "
          f"one local worker {loc:.1f} s: {loc / d:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
