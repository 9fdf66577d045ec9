"""`harness shrink RUN_DIR`: the smallest fault story and client load that still fail.

Thin on purpose: the search is harness/shrink.py's, each attempt a simulated
run (harness/simrun.py). Prints each pass as it ends, then the minimal fault
list, the number of client operations, the new run folder (marked "shrunk
from RUN" with its steps) and the commands that replay it in simulation and on
real processes. Exit 0 when a shrunk run was written, 2 with one line when the
run cannot be shrunk (not failing, not simulable, does not fail in simulation).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "shrink",
        help="shrink a failing run to the fewest faults and client operations that still fail",
        description="Re-simulate a failing run with less and less of it (a shorter run, fewer "
        "faults, shorter windows, fewer clients and operations), keeping a candidate when it "
        "fails with an anomaly of the same kind, and write the smallest as a new run folder. "
        "A real run of raft or paxos is shrunk through simulation of its recorded faults.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the failing run folder")
    p.add_argument("--any-anomaly", action="store_true",
                   help="keep a candidate that fails with any anomaly, not only the same kind")
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                   help="wall-clock seconds the search may take (default: %(default)g)")
    p.add_argument("--store", default=None, metavar="DIR",
                   help="where the shrunk run goes (default: the run's own store)")
    p.set_defaults(func=main)


def _fault_line(f: dict[str, Any]) -> str:
    hold = f.get("hold")
    value = json.dumps(f.get("value"), separators=(",", ":"), sort_keys=True)
    return (f"  at {f.get('at', 0):7.3f} s  {f.get('f'):<10} hold "
            f"{'-' if hold is None else f'{hold:.3f} s'}  {value}")


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from harness import shrink

    run_dir = Path(args.run_dir)
    try:
        from harness import simrun
    except ImportError:
        print("harness shrink: error: the simulator (harness/simrun.py) is not installed",
              file=sys.stderr)
        return 2

    try:
        base, original = shrink.load(run_dir)
        store = Path(args.store) if args.store else _store_of(run_dir, base)
        base = dataclasses.replace(base, store=str(store), name=f"{base.name or base.system}-shrunk")
        s = shrink.Shrinker(base, original, shrink.simulate, any_anomaly=args.any_anomaly,
                            budget_s=args.budget, log=lambda line: print(line, flush=True))
        result = s.run()
    except shrink.ShrinkError as exc:
        print(f"harness shrink: error: {exc}", file=sys.stderr)
        return 2
    best = result.candidate
    cfg = best.config(base)
    out = simrun.run(cfg, faults=list(best.faults), shrunk={
        "from": str(run_dir), "faults": list(best.faults),
        "client_ops": result.outcome.client_ops, "steps": result.steps})
    print()
    print(f"shrunk {run_dir} in {result.seconds:g} s ({result.attempts} simulated runs"
          + (", out of budget" if result.out_of_budget else "") + "):")
    print(f"{len(best.faults)} fault operations (from {len(original.faults)}), "
          f"{result.outcome.client_ops} client operations "
          f"(from {result.original_outcome.client_ops}), {best.time_limit:g} s of load")
    for f in best.faults:
        print(_fault_line(f))
    print(f"run folder: {out.run_dir}")
    if getattr(out, "report", None):
        print(f"report: {out.report}")
    print("replay in simulation:   harness run --sim --replay " + shlex.quote(str(out.run_dir)))
    print("replay on real nodes:   harness run --replay " + shlex.quote(str(out.run_dir)))
    with contextlib.suppress(Exception):
        from reports import ledger
        ledger.record(store, out.run_dir)
    return 0


def _store_of(run_dir: Path, cfg: Any) -> Path:
    """The store the run folder sits in (store/NAME/RUN or store/RUN), else its config's."""
    run_dir = run_dir.resolve()
    for parent in (run_dir.parent.parent, run_dir.parent):
        if (parent / "index.html").exists() or (parent / "latest").exists():
            return parent
    return Path(cfg.store)
