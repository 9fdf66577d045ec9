"""Checker speed: prints per-file and total times (medians of several runs).

Targets (issue 6; Porcupine in Go: 313 ms for the etcd set, 109 ms for c50-ok):
- the 102 porcupine/etcd corpus histories: < 150 ms in total
- porcupine/kv/c50-ok: < 100 ms
- a generated 100,000-operation history (50 processes, 16 keys, 2% info): < 10 s
- a violation buried in that history: found in < 10 s (two kinds: a stale read,
  which a cheap exact proof finds, and a read from the future, which needs the search)

"check" time = pairing + compiling + searching the events already in memory
(what ``check_events`` costs); "read" adds parsing the file. The corpus is
read from ../shared/corpus (or --corpus DIR) and skipped when absent; each
file is checked as its manifest entry says (checker.manifest).

Usage: .venv/bin/python benchmarks/checker_bench.py [--runs N] [--quick] [--per-file]
       [--corpus DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # testkit: the history generator, a test fixture

from testkit.histories import generate

from checker import check_events
from checker.history import read_history
from checker.manifest import Entry, load_manifest

CORPUS = ROOT.parent / "shared" / "corpus"


CPU: list[float] = []  # CPU seconds of the last median_time call (median)


def median_time(fn, runs: int) -> tuple[float, object]:
    """Median wall time of fn over runs; the median CPU time goes to CPU[0]
    (on a loaded machine the wall time includes waiting for a core)."""
    times = []
    cpus = []
    out = None
    for _ in range(runs):
        c = time.process_time()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    CPU[:] = [statistics.median(cpus)]
    return statistics.median(times), out


def corpus_entries() -> dict[str, Entry]:
    return load_manifest(CORPUS / "manifest.json").entries


def bench_etcd(runs: int, per_file: bool) -> None:
    entries = corpus_entries()
    files = sorted(f for f in entries if f.startswith("porcupine/etcd/"))
    loaded = {f: read_history(CORPUS / f) for f in files}
    total_check = total_read = total_cpu = 0.0
    wrong = 0
    for f in files:
        e = entries[f]
        tc, res = median_time(lambda f=f, e=e: check_events(loaded[f], e.model, **e.semantics),
                              runs)
        total_cpu += CPU[0]
        tr, _ = median_time(lambda f=f: read_history(CORPUS / f), runs)
        total_check += tc
        total_read += tr
        wrong += res.valid is not e.expected
        if per_file:
            print(f"  {f:40} {res.valid!s:7} check {tc * 1000:7.2f} ms  read {tr * 1000:6.2f} ms"
                  f"  steps {res.steps}")
    print(f"porcupine/etcd: {len(files)} histories, check {total_check * 1000:.1f} ms total "
          f"(cpu {total_cpu * 1000:.1f} ms; + read {total_read * 1000:.1f} ms = "
          f"{(total_check + total_read) * 1000:.1f} ms); target < 150 ms; wrong verdicts: {wrong}")


def bench_kv(runs: int) -> None:
    entries = corpus_entries()
    for name in ("porcupine/kv/c50-ok.jsonl", "porcupine/kv/c50-bad.jsonl"):
        e = entries[name]
        events = read_history(CORPUS / name)
        tc, res = median_time(
            lambda events=events, e=e: check_events(events, e.model, **e.semantics), runs)
        cpu = CPU[0]
        tr, _ = median_time(lambda name=name: read_history(CORPUS / name), runs)
        target = "; target < 100 ms" if name.endswith("c50-ok.jsonl") else ""
        print(f"{name}: {res.valid} in {tc * 1000:.1f} ms (cpu {cpu * 1000:.1f} ms; + read "
              f"{tr * 1000:.1f} ms){target}; expected {e.expected}")


def big_history(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return generate(rng, n, processes=50, keys=16, info_rate=0.02, fail_rate=0.02)


def bury_violation(events: list[dict]) -> tuple[list[dict], str]:
    """A stale read in the middle: a read returns the value two writes back."""
    evs = [dict(e) for e in events]
    mid = len(evs) // 2
    last: dict[str, list] = {}
    for i, e in enumerate(evs):
        if e["type"] == "ok" and e["f"] == "write":
            last.setdefault(e["key"], []).append((i, e["value"]))
        if i > mid and e["type"] == "ok" and e["f"] == "read" and len(last.get(e["key"], [])) > 3:
            # value of a write that completed well before this read's invoke was overwritten
            stale = last[e["key"]][-4][1]
            if stale != e["value"]:
                e["value"] = stale
                return evs, f"read of {e['key']} at event {i} made to return stale {stale}"
    raise RuntimeError("no read to mutate")


def bury_future_read(events: list[dict]) -> tuple[list[dict], str]:
    """A read in the middle returns the value of a write invoked after the
    read completed: no cheap proof applies, the search has to find it."""
    evs = [dict(e) for e in events]
    for i in range(len(evs) // 2, len(evs)):
        e = evs[i]
        if e["type"] == "ok" and e["f"] == "read":
            for j in range(i + 1, len(evs)):
                w = evs[j]
                if w["type"] == "invoke" and w["f"] == "write" and w["key"] == e["key"]:
                    e["value"] = w["value"]
                    return evs, (f"read of {e['key']} at event {i} made to return {w['value']}, "
                                 f"written only from event {j}")
    raise RuntimeError("no read to mutate")


def bench_big(runs: int, n: int) -> None:
    t = time.perf_counter()
    events = big_history(n)
    gen = time.perf_counter() - t
    ops = sum(1 for e in events if e["type"] == "invoke")
    info = sum(1 for e in events if e["type"] == "info")
    tc, res = median_time(lambda: check_events(events, "kv"), runs)
    print(f"generated {ops} ops (50 processes, 16 keys, {info} info; generated in {gen:.1f} s): "
          f"{res.valid} in {tc:.2f} s (cpu {CPU[0]:.2f} s); target < 10 s")
    for bury in (bury_violation, bury_future_read):
        bad, what = bury(events)
        tc, res = median_time(lambda bad=bad: check_events(bad, "kv"), runs)
        print(f"buried violation ({what}): {res.valid} in {tc:.2f} s (cpu {CPU[0]:.2f} s); "
              f"target < 10 s")
        if res.anomalies:
            print(f"  {res.anomalies[0].sentence}")


def main() -> None:
    global CORPUS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    ap.add_argument("--big-runs", type=int, default=3)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--per-file", action="store_true", help="print every etcd file's time")
    ap.add_argument("--quick", action="store_true", help="skip the 100,000-op history")
    ap.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                    help=f"the corpus folder (default {CORPUS})")
    a = ap.parse_args()
    if a.corpus is not None:
        CORPUS = a.corpus
    if (CORPUS / "manifest.json").is_file():
        bench_etcd(a.runs, a.per_file)
        bench_kv(a.runs)
    else:
        print(f"corpus not found at {CORPUS}: skipping corpus benchmarks")
    if not a.quick:
        bench_big(a.big_runs, a.ops)


if __name__ == "__main__":
    main()
