"""Bug zoo benchmark: does `harness run --bug NAME --nemesis bug:NAME` find every known
bug, and how fast?

For every bug in harness/bugs.py and every system that implements it, runs
``--seeds`` real clusters (seeds 1..N) with the bug on under its demonstration
mix and settings (faults/mixes.py, exactly what ``harness run --bug NAME
--nemesis bug:NAME`` does; ``--bug`` alone brings no faults), then the
*correct* nodes over the same seeds under the same mix. Prints one row per (bug, system):

- ``caught``: runs that ended invalid (exit 1) out of the runs made;
- ``first anomaly``: median (and range) over caught runs of the time of the
  earliest operation the checker named in an anomaly (seconds since the
  run started, history clock) -- how long the harness needed to see the bug;
- ``correct``: anomalies the checker found in the correct runs (must be 0),
  and how many of those runs were not valid (unknown counts too).

With ``--generic`` the bugs run under the *generic default* instead
(``harness run --bug NAME``: the hunting plan of faults/hunt.py and the
default settings, nothing written for the bug), and the correct nodes run
once per system and seed under the same default; ``--mixes`` adds the
demonstration mixes' runs, and the table shows both side by side.

Usage: python benchmarks/bug_zoo.py [--seeds N] [--time-limit S] [--bugs a,b]
       [--systems raft,paxos] [--store DIR] [--no-correct | --only-correct]
       [--stop-on-anomaly] [--generic [--mixes] [--no-swarm]]
       python benchmarks/bug_zoo.py --from-store DIR [DIR ...]   (the table of kept runs)
Targets: the mixes catch every bug in >= 8 of 10 runs of 60 s (issue 8);
the generic default catches >= 7 of the 9 in >= 8 of 10 and every one in
>= 3 of 10 (issue 14); correct nodes give no anomaly. The full matrix takes
~90 min per mode on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checker import check_file
from checker.history import HistoryError
from faults import mixes
from harness import bugs as zoo
from harness.config import ConfigError, RunConfig
from harness.runner import RunError, RunResult, run
from reports.runfolder import ReportError, find_runs, read_config, read_results

#: How a row's runs chose their faults.
GENERIC, MIX = "generic", "mix"


@dataclass
class Row:
    bug: str
    system: str
    runs: list[RunResult] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    correct: list[RunResult] = field(default_factory=list)
    mode: str = MIX

    def add(self, res: RunResult) -> float | None:
        """Count one run with the bug on; its first anomaly's time, if caught."""
        self.runs.append(res)
        t = first_anomaly_s(res)
        if res.verdict == "invalid" and t is not None:
            self.firsts.append(t)
        return t


def first_anomaly_s(result: RunResult) -> float | None:
    """Seconds from the run's start to the earliest operation of any anomaly.
    The run's own check stops at the first invalid key it looks at, which
    need not be the earliest, so the history is checked again, every key. A
    durability finding (faults/findings.py: no operations, an int ``time``
    in ns since the run's start) counts at its own time."""
    anomalies = result.anomalies
    found = [a["time"] for a in anomalies
             if not a.get("ops") and isinstance(a.get("time"), int)]
    if result.verdict == "invalid":
        try:
            again = check_file(result.run_dir / "history.jsonl", time_limit=120.0,
                               every_key=True)
            if again.anomalies:
                anomalies = [a.to_dict() for a in again.anomalies]
        except HistoryError:
            pass
    try:
        ops = result.operations
    except HistoryError:
        return min(found) / 1e9 if found else None
    # An op's time is its completion's (its invoke's when it never completed).
    times = found + [ops[i].start if ops[i].end is None else ops[i].end
                     for a in anomalies for i in a.get("ops") or [] if 0 <= i < len(ops)]
    return min(times) / 1e9 if times else None


def run_load(result: RunResult) -> str:
    """What the machine was doing around one run, as one cell: the load average
    when it ended and the median down time of its kills (``kill-end``'s
    ``down_ms`` evidence, kill to serving again). A real detection figure
    depends on both: a loaded machine restarts nodes later and closes the
    windows a forgotten vote or promise needs."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    downs = []
    try:
        with open(result.run_dir / "history.jsonl", encoding="utf-8") as f:
            for line in f:
                if '"kill-end"' in line:
                    down = (json.loads(line).get("evidence") or {}).get("down_ms")
                    if isinstance(down, (int, float)):
                        downs.append(down)
    except (OSError, ValueError):
        pass
    down = f"{statistics.median(downs):4.0f} ms" if downs else "   - ms"
    return f"load {load:4.1f} kill down {down} ({len(downs)})"


def stored_runs(store: Path) -> list[RunResult]:
    """The finished runs under ``store`` (folders with config.json and results.json)."""
    found = []
    for run_dir in find_runs(store):
        try:
            res, saved = read_results(run_dir), read_config(run_dir)
            if not (res and saved):
                continue  # still running, or it crashed
            cfg = RunConfig.from_dict(saved)
        except (ReportError, ConfigError):
            continue
        found.append(RunResult(res.get("verdict", "unknown"), int(res.get("exit_code", 3)),
                               run_dir, cfg, res))
    return found


def rows_from_stores(stores: list[Path]) -> list[Row]:
    """One row per (bug, system, mode) of the runs kept in ``stores``: bug runs
    have ``bugs`` = [bug]; a mix's correct runs have no bug and nemesis
    ``bug:NAME``; generic correct runs (no bug, the default nemesis) count for
    every generic row of their system."""
    rows: dict[tuple[str, str, str], Row] = {}
    generic_correct: dict[tuple[str, str], list[RunResult]] = {}
    for store in stores:
        for res in stored_runs(store):
            cfg = res.config
            mix = mixes.mix_name(cfg.nemesis)
            mode = MIX if mix is not None else GENERIC
            if not cfg.bugs and mode == GENERIC:
                generic_correct.setdefault((cfg.system, cfg.workload), []).append(res)
                continue
            name = cfg.bugs[0] if cfg.bugs else mix
            if name is None:
                continue
            row = rows.setdefault((name, cfg.system, mode), Row(name, cfg.system, mode=mode))
            if cfg.bugs:
                row.add(res)
            else:
                row.correct.append(res)
    for row in rows.values():
        if row.mode == GENERIC:
            workload = zoo.BUGS[row.bug].workload if row.bug in zoo.BUGS else "kv"
            row.correct = generic_correct.get((row.system, workload), [])
    return ordered(rows.values())


def ordered(rows: Any) -> list[Row]:
    order = {name: i for i, name in enumerate(zoo.names())}
    return sorted(rows, key=lambda r: (order.get(r.bug, 99), r.system, r.mode))


def one_run(cfg: RunConfig) -> RunResult | None:
    try:
        return run(cfg)
    except RunError as exc:
        print(f"  run failed to start: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="runs per bug and system (default 10)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds of load per run")
    p.add_argument("--bugs", default="", help="comma-separated bug names (default: all)")
    p.add_argument("--systems", default="raft,paxos", help="systems to test (default raft,paxos)")
    p.add_argument("--store", default="store-bug-zoo", help="store for the run folders")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--no-correct", action="store_true", help="skip the correct-node runs")
    p.add_argument("--only-correct", action="store_true",
                   help="run only the correct nodes (the table of a store with both is "
                        "--from-store)")
    p.add_argument("--generic", action="store_true",
                   help="run the bugs under the generic default (no bug:NAME mix)")
    p.add_argument("--mixes", action="store_true",
                   help="with --generic: also run the bug:NAME mixes, shown beside it")
    p.add_argument("--stop-on-anomaly", action="store_true",
                   help="end a bug run's load at the streaming checker's first proven anomaly "
                        "(caught and first-anomaly figures are the same, the run is shorter; "
                        "correct runs always run to --time-limit)")
    p.add_argument("--no-swarm", action="store_true",
                   help="generic runs keep the nodes' default settings (harness run --no-swarm)")
    p.add_argument("--from-store", nargs="+", metavar="DIR", default=None,
                   help="run nothing: print the table of the runs kept in these stores")
    args = p.parse_args(argv)
    if args.from_store:
        missing = [d for d in args.from_store if not Path(d).is_dir()]
        if missing:
            print(f"bug_zoo: no such store: {', '.join(missing)}", file=sys.stderr)
            return 2
        rows = rows_from_stores([Path(d) for d in args.from_store])
        print(table(rows, correct=any(r.correct for r in rows)))
        print(f"\n{sum(len(r.runs) for r in rows) + len({id(x) for r in rows for x in r.correct})}"
              f" runs, from "
              f"{', '.join(args.from_store)}")
        return 0

    wanted = ([b.strip() for b in args.bugs.split(",") if b.strip()]
              or [b.name for b in zoo.BUGS.values() if b.workload == "kv"])
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    try:
        for name in wanted:
            zoo.get(name)
    except zoo.BugError as exc:
        print(f"bug_zoo: {exc}", file=sys.stderr)
        return 2
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bug zoo: {len(seeds)} seed(s) x {args.time_limit:g} s per run, store {args.store}, "
          f"load average {load:.1f} on {os.cpu_count()} cpus", flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    modes = ([GENERIC] if args.generic else []) + ([MIX] if args.mixes or not args.generic else [])
    correct_generic: dict[tuple[str, str], list[RunResult]] = {}
    for mode in modes:
        for name in wanted:
            for system in systems:
                if system not in zoo.get(name).systems:
                    continue
                if mode == MIX and name not in mixes.MIXES:
                    continue  # no demonstration mix written for it
                row = Row(name, system, mode=mode)
                rows.append(row)
                nemesis = "" if mode == GENERIC else mixes.SPEC_PREFIX + name
                for seed in seeds if not args.only_correct else ():
                    res = one_run(RunConfig(system=system, bugs=[name], nemesis=nemesis,
                                            workload=zoo.get(name).workload,
                                            time_limit=args.time_limit, seed=seed,
                                            store=args.store, name=f"{name}-{system}-{mode}",
                                            progress=False, swarm=not args.no_swarm,
                                            stop_on_anomaly=args.stop_on_anomaly))
                    if res is None:
                        continue
                    t = row.add(res)
                    print(f"  {mode:7} {name:16} {system:5} seed {seed}: {res.verdict:8} "
                          f"first anomaly {f'{t:.1f} s' if t is not None else '-':>8}  "
                          f"{run_load(res)}  {res.run_dir}", flush=True)
                if args.no_correct:
                    continue
                workload = zoo.get(name).workload
                if mode == GENERIC and (system, workload) in correct_generic:
                    row.correct = correct_generic[(system, workload)]  # the same runs for all
                    continue
                for seed in seeds:
                    res = one_run(RunConfig(system=system, nemesis=nemesis,
                                            workload=zoo.get(name).workload,
                                            time_limit=args.time_limit, seed=seed,
                                            store=args.store,
                                            name=f"correct-{system}-"
                                                 f"{f'generic-{workload}' if mode == GENERIC else name}",
                                            progress=False, swarm=not args.no_swarm))
                    if res is None:
                        continue
                    row.correct.append(res)
                    print(f"  {mode:7} {'(correct)':16} {system:5} seed {seed}: "
                          f"{res.verdict:8} {len(res.anomalies)} anomalies  {run_load(res)}  "
                          f"{res.run_dir}", flush=True)
                if mode == GENERIC:
                    correct_generic[(system, workload)] = row.correct
    print()
    print(table(rows, correct=not args.no_correct))
    print(f"\n{sum(len(r.runs) for r in rows) + len({id(x) for r in rows for x in r.correct})} "
          f"runs in {(time.monotonic() - started) / 60:.1f} min")
    return 0


def table(rows: list[Row], *, correct: bool) -> str:
    """One line per (bug, system); for each mode present (generic, mix) the
    caught count, the median and range of the first anomaly's time and, with
    ``correct``, the correct nodes' anomalies and runs not valid."""
    modes = [m for m in (GENERIC, MIX) if any(r.mode == m for r in rows)]
    width = 8 + 1 + 5 + 2 + 24 + (2 + 9 + 1 + 9 if correct else 0)
    head1 = f"{'':16} {'':6}" + "".join(f" | {m:^{width}}" for m in modes)
    cols = f"{'caught':>8} {'rate':>5}  {'first anomaly (median, range)':24}"
    if correct:
        cols += f"  {'correct':>9} {'not valid':>9}"
    head2 = f"{'bug':16} {'system':6}" + "".join(f" | {cols}" for _ in modes)
    lines = [head1, head2, "-" * len(head2)]
    keys = list(dict.fromkeys((r.bug, r.system) for r in rows))
    by = {(r.bug, r.system, r.mode): r for r in rows}
    for bug, system in keys:
        line = f"{bug:16} {system:6}"
        for m in modes:
            r = by.get((bug, system, m))
            if r is None:
                line += f" | {'':{width}}"
                continue
            caught = sum(1 for x in r.runs if x.verdict == "invalid")
            n = len(r.runs)
            rate = f"{caught / n:.0%}" if n else "-"
            first = (f"{statistics.median(r.firsts):5.1f} s ({min(r.firsts):.1f}-"
                     f"{max(r.firsts):.1f})" if r.firsts else "-")
            cell = f"{f'{caught}/{n}':>8} {rate:>5}  {first:24}"
            if correct:
                anomalies = sum(len(x.anomalies) for x in r.correct)
                bad = sum(1 for x in r.correct if x.verdict != "valid")
                cell += f"  {anomalies:>9} {f'{bad}/{len(r.correct)}':>9}"
            line += f" | {cell}"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
