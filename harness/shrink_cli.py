"""`harness shrink RUN_DIR`: the smallest fault story and client load that still fail.

Thin on purpose: the search is harness/shrink.py's, each attempt a simulated
run (harness/simrun.py). Prints each pass as it ends, then the minimal fault
list, the number of client operations, the new run folder (marked "shrunk
from RUN" with its steps) and the commands that replay it in simulation and on
real processes. A run of a node command (``--system COMMAND``, a Maelstrom
program) is shrunk on real processes when ``--budget`` is given (each
candidate is a whole real run, so its time is the user's choice); that result
is labelled best effort. Exit 0 when a shrunk run was written (or nothing
smaller failed within the budget: one line), 2 with one line when the run
cannot be shrunk (not failing, does not fail in simulation, a command run
without --budget).
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
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="wall-clock seconds the search may take (default: 60 for a simulated "
                   "search; a --system COMMAND run is shrunk on real processes only with it)")
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
        if not shrink.simulable(base):
            if args.budget is None:
                raise shrink.ShrinkError(
                    f"--system {base.system!r} cannot be simulated: shrinking it runs every "
                    "candidate on real processes; give it a time, e.g. --budget 600")
            return _real(args, run_dir, base, original, store)
        s = shrink.Shrinker(base, original, shrink.simulate, any_anomaly=args.any_anomaly,
                            budget_s=60.0 if args.budget is None else args.budget,
                            log=lambda line: print(line, flush=True))
        result = s.run()
    except shrink.ShrinkError as exc:
        print(f"harness shrink: error: {exc}", file=sys.stderr)
        return 2
    best = result.candidate
    cfg = best.config(base)
    out = simrun.run(cfg, faults=list(best.faults), shrunk={
        "from": str(run_dir), "faults": list(best.faults),
        "client_ops": result.outcome.client_ops, "steps": result.steps,
        **_kind(s)})
    print()
    print(f"shrunk {run_dir} in {result.seconds:g} s ({result.attempts} simulated runs"
          + (f", {result.cached} candidates met again" if result.cached else "")
          + (", out of budget" if result.out_of_budget else "") + "):")
    print(f"{len(best.faults)} fault operations (from {len(original.faults)}), "
          f"{result.outcome.client_ops} client operations "
          f"(from {result.original_outcome.client_ops}), {best.time_limit:g} s of load")
    return _show_story(cfg, out.run_dir, getattr(out, "report", None), best.faults, store,
                       sim=True)


def _show_story(cfg: Any, run_dir: Path, report: Any, faults: Any, store: Path, *,
                sim: bool) -> int:
    """The shrunk story's tail, for both worlds: its faults, folder, report and replay
    commands; then its ledger row (best effort: a full rebuild finds what is missed)."""
    for f in faults:
        print(_fault_line(f))
    print(f"run folder: {run_dir}")
    if report:
        print(f"report: {report}")
    for line in _replays(cfg, run_dir, faults, sim=sim):
        print(line)
    with contextlib.suppress(Exception):
        from reports import ledger
        ledger.record(store, run_dir)
    return 0


def _replays(cfg: Any, run_dir: Path, faults: Any, *, sim: bool) -> list[str]:
    """The commands that replay the shrunk run: ``--replay`` of its folder, or, with no
    fault left to replay, its own command line with ``--nemesis none``."""
    import dataclasses

    lines = []
    if faults:
        if sim:
            lines.append("replay in simulation:   harness run --sim --replay "
                         + shlex.quote(str(run_dir)))
        lines.append("replay on real nodes:   harness run --replay " + shlex.quote(str(run_dir)))
        return lines
    bare = dataclasses.replace(cfg, nemesis="none", replay=None, test_count=1)
    if sim:
        lines.append("replay in simulation:   " + " ".join(bare.argv()))
    real = dataclasses.replace(bare, sim=False, client_mask=None)
    lines.append("replay on real nodes:   " + " ".join(real.argv())
                 + ("   (no fault left: the same load)" if not sim else
                    "   (no fault left; real clients do not take the mask)"))
    return lines


BEST_EFFORT = ("best effort: shrunk on real processes (not deterministic): each candidate "
               "was one real run, kept when it failed once")


def _real(args: argparse.Namespace, run_dir: Path, base: Any, original: Any, store: Path) -> int:
    """Shrink a node command's run on real processes (see the module header)."""
    import shutil
    import tempfile

    from harness import shrink
    from reports import runfolder

    print(f"{BEST_EFFORT}; budget {args.budget:g} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="harness-shrink-") as scratch:
        s = shrink.Shrinker(base, original, shrink.RealProcesses(Path(scratch)),
                            any_anomaly=args.any_anomaly, budget_s=args.budget,
                            log=lambda line: print(line, flush=True),
                            known=shrink.known_outcome(run_dir), passes=shrink.Shrinker.REAL_PASSES)
        result = s.run()
        best = result.candidate
        print()
        print(f"shrunk {run_dir} in {result.seconds:g} s ({result.attempts} real runs"
              + (", out of budget" if result.out_of_budget else "") + "), best effort:")
        if result.outcome.run_dir is None or best == original:
            print("nothing smaller failed within the budget; the original run stands")
            return 0
        try:
            folder = runfolder.new_run_folder(store, str(base.name))
            folder.root.rmdir()
            shutil.move(result.outcome.run_dir, folder.root)
            results = runfolder.read_results(folder.root) or {}
            results = runfolder.write_results(folder.root, {**results, "replay": None, "shrunk": {
                "from": str(run_dir), "faults": list(best.faults),
                "client_ops": result.outcome.client_ops, "best_effort": True, **_kind(s),
                "steps": [BEST_EFFORT, *result.steps]}})
            from reports import write_report

            report = write_report(folder.root)
        except (runfolder.StoreError, runfolder.ReportError, OSError) as exc:
            print(f"harness shrink: error: cannot keep the shrunk run: {exc}", file=sys.stderr)
            return 2
    print(f"{len(best.faults)} fault operations (from {len(original.faults)}), "
          f"{result.outcome.client_ops} client operations "
          f"(from {result.original_outcome.client_ops}), {best.time_limit:g} s of load, "
          f"{best.concurrency or base.concurrency} clients")
    return _show_story(base, folder.root, report, best.faults, store, sim=False)


def _kind(s: Any) -> dict[str, str]:
    """``shrunk.kind``: the anomaly kind the search ``s`` (a Shrinker) kept, which the
    ledger groups the shrunk run under; none with --any-anomaly, which kept any."""
    return {} if s.any_anomaly else {"kind": s.want[1]}


def _store_of(run_dir: Path, cfg: Any) -> Path:
    """The store the run folder sits in (store/NAME/RUN or store/RUN), else its config's."""
    run_dir = run_dir.resolve()
    for parent in (run_dir.parent.parent, run_dir.parent):
        if (parent / "index.html").exists() or (parent / "latest").exists():
            return parent
    return Path(cfg.store)
