"""The table of issue 18: every Maelstrom workload, its correct and buggy test node,
under partitions and under kill/pause, with the verdicts.

    python benchmarks/maelstrom_table.py [--nodes 5] [--time-limit 10] [--seed 11]
                                         [--workloads lin-kv,g-set,...] [--store DIR]

Each cell is one real `harness run` (tests/maelstrom_nodes/, ``--bug`` for the
buggy node); it prints the verdict, the finding (lost values, final reads out
of bounds, duplicates, ...) and the run folder, and at the end the report of
the first caught bug. A correct node should be valid in every cell, a buggy
node invalid in at least one.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from harness.config import RunConfig
from harness.runner import run

NODES = Path(__file__).resolve().parent.parent / "tests" / "maelstrom_nodes"
PROGRAMS = {
    "lin-kv": "lin_kv.py",
    "g-set": "gossip_set.py --workload g-set",
    "broadcast": "gossip_set.py --workload broadcast",
    "g-counter": "counter.py",
    "pn-counter": "counter.py",
    "unique-ids": "unique_ids.py",
    "echo": "echo.py",
    "txn-list-append": "txn_list_append.py",
}
FAULTS = {"partitions": "partition", "kill/pause": "kill,pause"}


def system(program: str) -> str:
    return f"maelstrom:{shlex.quote(sys.executable)} {NODES / program}"


def finding(results: dict) -> str:
    checker = results.get("checker") or {}
    sec = checker.get("section") or {}
    w = sec.get("workload")
    if w in ("g-set", "broadcast"):
        vis = (sec.get("visibility_ms") or {}).get("p95")
        return (f"lost {sec.get('lost_count')}, unexpected {sec.get('unexpected_count')}, "
                f"stale reads {sec.get('stale_reads')}, visible p95 {vis} ms")
    if w in ("g-counter", "pn-counter"):
        bad = [f"{r['node']}={r['value']}" for r in sec.get("final_reads") or [] if not r["ok"]]
        return (f"bounds {sec.get('low')}..{sec.get('high')}"
                + (f", out: {' '.join(bad)}" if bad else ""))
    if w == "unique-ids":
        return f"{sec.get('generated')} ids, {sec.get('duplicates')} returned twice"
    if w == "echo":
        return f"{sec.get('echoed')} echoes, {sec.get('wrong')} wrong"
    anomalies = checker.get("anomalies") or []
    return f"{len(anomalies)} anomalies" + (f": {anomalies[0].get('sentence', '')[:70]}"
                                            if anomalies else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workloads", default=",".join(PROGRAMS))
    ap.add_argument("--store", default=None)
    args = ap.parse_args()
    store = Path(args.store or tempfile.mkdtemp(prefix="maelstrom-table-"))
    caught: Path | None = None
    print(f"{'workload':11} {'node':8} {'faults':11} {'verdict':8} ok/fail/info  finding  (run)")
    for w in args.workloads.split(","):
        for kind, flag in (("correct", ""), ("buggy", " --bug")):
            for label, nemesis in FAULTS.items():
                cfg = RunConfig(system=system(PROGRAMS[w] + flag), workload=w,
                                nodes=args.nodes, time_limit=args.time_limit, rate=100,
                                keys=4, nemesis=nemesis, nemesis_interval=2.5, seed=args.seed,
                                store=str(store), name=f"{w}-{kind}", progress=False,
                                follow=False, recovery_timeout=15, journal=True)
                r = run(cfg)
                c = r.counts
                print(f"{w:11} {kind:8} {label:11} {r.verdict:8} "
                      f"{c.get('ok', 0)}/{c.get('fail', 0)}/{c.get('info', 0)}  "
                      f"{finding(r.results)}  ({r.run_dir})", flush=True)
                for note in r.results.get("notes") or []:
                    print(f"{'':32}note: {note}", flush=True)
                if kind == "buggy" and r.verdict == "invalid" and caught is None:
                    caught = r.report
    if caught is not None:
        print(f"report of a caught bug: {caught}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
