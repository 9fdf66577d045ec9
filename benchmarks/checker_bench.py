"""Checker speed: prints per-file and total times (medians of several runs).

Issue 20's table (``--scale``, part of the default run; ``--quick`` skips it):
- 1M operations (50 processes, 64 keys, 2% info), valid and with one stale
  read: wall time of ``check_file`` (parsing included) and peak RSS, each in
  a child process of its own so the RSS is that case's; target 10 s, 2 GB.
  Then a memory run of each (``--no-pss`` skips it): the same check with the
  PSS of the child and its forked worker sampled from outside, summed at each
  instant: the real combined peak, which the two peak RSS only bound;
- the same 1M history as Jepsen EDN against JSON Lines: read time; target 2x;
- the memory cap: a history built to blow up one key's search (many
  concurrent info writes) beside ordinary keys, checked with
  ``memory_limit``: that key unknown, the others decided, RSS bounded.
The generated files are cached under --cache (default a folder in /tmp).

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
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# CHECKER_TREE: import the checker from another tree (a child measuring the
# pre-change checker for --base, e.g. /tmp/base); the history generator stays ours.
sys.path.insert(0, os.environ.get("CHECKER_TREE", str(ROOT)))
sys.path.insert(0, str(ROOT / "tests"))  # testkit: the history generator, a test fixture

from testkit.histories import blowup_history, generate

from checker import check_events
from checker.history import read_history
from checker.manifest import Entry, load_manifest

CORPUS = ROOT.parent / "shared" / "corpus"
# Porcupine v1.3.0 on the 102 etcd histories, measured side by side with ours on
# this machine in an earlier round (issue 20's text); not re-measured here.
PORCUPINE_ETCD_MS = 350.0


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


# The compiled twins (checker/native.py) and where each is held; None = pure Python.
TWINS = (("checker.search", "NATIVE"), ("checker.history", "PAIR_NATIVE"),
         ("checker.registers", "COLUMNS_NATIVE"))


def twins(value: dict | None = None) -> dict:
    """The compiled twins in use ({where: module or None}); given ``value``,
    set them to it first (None everywhere: the pure-Python checker)."""
    import importlib

    out = {}
    for mod, attr in TWINS:
        m = importlib.import_module(mod)
        if value is not None:
            setattr(m, attr, value.get(f"{mod}.{attr}"))
        out[f"{mod}.{attr}"] = getattr(m, attr)
    return out


def bench_etcd(runs: int, per_file: bool) -> None:
    entries = corpus_entries()
    files = sorted(f for f in entries if f.startswith("porcupine/etcd/"))
    loaded = {f: read_history(CORPUS / f) for f in files}
    built = twins()
    on = [k for k, v in built.items() if v is not None]
    print(f"compiled twins in use: {', '.join(on) if on else 'none (pure Python)'}")
    pure_ms = None
    if on:  # the pure-Python checker on the same files, in the same run
        twins({})
        total = 0.0
        for f in files:
            e = entries[f]
            tc, _ = median_time(lambda f=f, e=e: check_events(loaded[f], e.model, **e.semantics),
                                runs)
            total += tc
        pure_ms = total * 1000
        twins(built)
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
          f"{(total_check + total_read) * 1000:.1f} ms); target < 150 ms (issue 6), < 35 ms of "
          f"checking (issue 20); wrong verdicts: {wrong}")
    if pure_ms is not None:
        print(f"  the same 102 files in pure Python (CHECKER_PURE), this run: {pure_ms:.1f} ms: "
              f"compiled twins {pure_ms / (total_check * 1000):.2f}x faster")
    if shutil.which("go") is None:
        print(f"  Porcupine v1.3.0 (Go): {PORCUPINE_ETCD_MS:.0f} ms, the figure measured side by "
              f"side on this machine last round (Go is not installed now): ours is "
              f"{PORCUPINE_ETCD_MS / (total_check * 1000):.1f}x faster; target 10x")
    else:
        print(f"  Go is installed, but this script does not run Porcupine; last round's "
              f"side-by-side figure {PORCUPINE_ETCD_MS:.0f} ms gives "
              f"{PORCUPINE_ETCD_MS / (total_check * 1000):.1f}x; target 10x")


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


# --------------------------------------------------------------------------- scale (issue 20)

SCALE_OPS = 1_000_000


def _edn(v: object) -> str:
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, list):
        return "[" + " ".join(_edn(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


_KEYWORDS = ("type", "f", "process")


def write_edn(events: list[dict], path: Path) -> None:
    """Jepsen's layout: one map per line, keywords for type/f (and nemesis)."""
    with path.open("w") as out:
        for e in events:
            parts = []
            for k, v in e.items():
                if k in _KEYWORDS and isinstance(v, str):
                    parts.append(f":{k} :{v}")
                else:
                    parts.append(f":{k} {_edn(v)}")
            out.write("{" + ", ".join(parts) + "}\n")


def write_jsonl(events: list[dict], path: Path) -> None:
    with path.open("w") as out:
        for e in events:
            out.write(json.dumps(e) + "\n")


def scale_files(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    files = {"valid": cache / "kv-1m.jsonl", "stale": cache / "kv-1m-stale.jsonl",
             "edn": cache / "kv-1m.edn", "blowup": cache / "blowup.jsonl"}
    if not all(f.exists() for f in files.values()):
        t = time.perf_counter()
        events = generate(random.Random(1), SCALE_OPS, processes=50, keys=64, info_rate=0.02,
                          fail_rate=0.02)
        write_jsonl(events, files["valid"])
        write_edn(events, files["edn"])
        bad, what = bury_violation(events)
        write_jsonl(bad, files["stale"])
        (cache / "stale.txt").write_text(what)
        write_jsonl(blowup_history(), files["blowup"])
        print(f"(generated the scale histories in {time.perf_counter() - t:.0f} s, "
              f"cached in {cache})")
    return files


def child_case(case: str, path: str, limit_mb: float | None) -> None:
    """One measurement in this process; prints one JSON line."""
    from checker import check_file

    c = time.process_time()
    t = time.perf_counter()
    out: dict = {}
    if case == "read":
        events = read_history(path)
        out["events"] = len(events)
    else:
        kw = {} if limit_mb is None else {"memory_limit": limit_mb}
        res = check_file(path, **kw)
        out.update(valid=res.valid, ops=res.ops,
                   anomalies=[a.sentence for a in res.anomalies][:3],
                   unknown=[u.sentence for u in res.unknown][:3],
                   keys=res.partitions, decided=res.checked)
    out["wall"] = time.perf_counter() - t
    out["cpu"] = time.process_time() - c
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the forked worker of a large check (checker/check.py _parallel_valid)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["worker_cpu"] = kids.ru_utime + kids.ru_stime
    out["worker_rss_mb"] = kids.ru_maxrss / 1024
    print(json.dumps(out))


BASE: Path | None = None  # --base: a pre-change tree measured beside ours
PSS = True  # --no-pss: skip the memory runs
PSS_EVERY_S = 0.1  # how often the memory run samples the check's processes


def _pss_kb(pid: int) -> int:
    """The proportional set size of a process (kB; 0 once it is gone): its
    private pages plus its share of those it shares (a forked worker's pages
    still shared with its parent count half to each), so the PSS of parent and
    worker add up to what both hold together."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a scan of /proc/*/stat: this
    kernel has no /proc/PID/task/PID/children)."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(b")") + 2:].split()[1]) == pid:
            kids.append(int(d))
    return kids


def run_child_pss(case: str, path: Path, tree: Path | None = None) -> dict:
    """One check in a child process, its memory sampled from here every
    ``PSS_EVERY_S``: the peak of the child's PSS plus its forked worker's at
    the same instant (``pss_mb``, with the two parts), the real combined figure
    rather than the sum of the two peak RSS (an upper bound: the fork shares
    pages until one side writes them). A run of its own, so the sampling does
    not slow the timed runs."""
    cmd = [sys.executable, __file__, "--child", case, str(path)]
    env = dict(os.environ)
    if tree is not None:
        env["CHECKER_TREE"] = str(tree)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    peak = (0, 0, 0)  # total, parent, worker (kB)
    samples = 0
    try:
        while proc.poll() is None:
            parent = _pss_kb(proc.pid)
            worker = sum(_pss_kb(k) for k in _children(proc.pid))
            samples += 1
            if parent + worker > peak[0]:
                peak = (parent + worker, parent, worker)
            time.sleep(PSS_EVERY_S)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or ["?"])[-1]}
    r = json.loads(out.strip().splitlines()[-1])
    r.update(pss_mb=peak[0] / 1024, pss_parent_mb=peak[1] / 1024, pss_worker_mb=peak[2] / 1024,
             pss_samples=samples)
    return r


def run_child(case: str, path: Path, limit_mb: float | None = None,
              tree: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", case, str(path)]
    if limit_mb is not None:
        cmd += ["--memory-limit", str(limit_mb)]
    env = dict(os.environ)
    if tree is not None:
        env["CHECKER_TREE"] = str(tree)
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_scale(cache: Path, runs: int) -> None:
    files = scale_files(cache)

    def best(case: str, path: Path, limit: float | None = None,
             tree: Path | None = None) -> dict:
        rs = [run_child(case, path, limit, tree) for _ in range(runs)]
        ok = [r for r in rs if "error" not in r]
        if not ok:
            return rs[0]
        ok.sort(key=lambda r: r["wall"])
        return ok[len(ok) // 2]

    trees: list[tuple[str, Path | None]] = [("", None)]
    if BASE is not None:
        trees.insert(0, (f"[base {BASE}] ", BASE))
    for tag, tree in trees:
        for name, label in (("valid", "1M ops valid"), ("stale", "1M ops, one stale read")):
            r = best("check", files[name], None, tree)
            if "error" in r:
                print(f"{tag}{label}: error {r['error']}")
                continue
            worker = ""
            if r.get("worker_rss_mb"):
                # the worker shares the parent's pages until it writes them: the sum
                # of the two peaks is an upper bound of what both held
                worker = (f" + worker {r['worker_rss_mb']:.0f} MB (cpu {r['worker_cpu']:.2f} s)"
                          f" = at most {r['rss_mb'] + r['worker_rss_mb']:.0f} MB")
            print(f"{tag}{label}: {r['valid']} in {r['wall']:.2f} s wall (cpu {r['cpu']:.2f} s), "
                  f"peak RSS {r['rss_mb']:.0f} MB{worker}; target 10 s, 2048 MB")
            if r.get("anomalies"):
                print(f"  {r['anomalies'][0]}")
            if PSS:
                p = run_child_pss("check", files[name], tree)
                if "error" in p:
                    print(f"  memory run: error {p['error']}")
                else:
                    print(f"  memory run (PSS sampled every {PSS_EVERY_S:g} s, {p['pss_samples']} "
                          f"samples): peak parent + worker {p['pss_mb']:.0f} MB "
                          f"({p['pss_parent_mb']:.0f} + {p['pss_worker_mb']:.0f}) at one "
                          f"instant; target 2048 MB")
        j = best("read", files["valid"], None, tree)
        e = best("read", files["edn"], None, tree)
        if "error" in j or "error" in e:
            print(f"{tag}EDN vs JSON Lines: error {j.get('error') or e.get('error')}")
        else:
            print(f"{tag}read 1M ops: JSON Lines {j['wall']:.2f} s ({j['rss_mb']:.0f} MB), EDN "
                  f"{e['wall']:.2f} s ({e['rss_mb']:.0f} MB): EDN/JSON "
                  f"{e['wall'] / j['wall']:.1f}x; target 2x")
    for limit in (50.0, 200.0):
        r = best("check", files["blowup"], limit)
        what = f"memory_limit {limit:.0f} MB"
        if "error" in r:
            print(f"memory cap ({what}): error {r['error']}")
            continue
        print(f"memory cap ({what}): {r['valid']} in {r['wall']:.2f} s, peak RSS "
              f"{r['rss_mb']:.0f} MB; {r.get('decided')} of {r.get('keys')} keys decided")
        for s_ in (r.get("anomalies", []) + r.get("unknown", []))[:2]:
            print(f"  {s_}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        limit = float(sys.argv[5]) if len(sys.argv) > 5 else None
        child_case(sys.argv[2], sys.argv[3], limit)
        return
    global CORPUS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    ap.add_argument("--big-runs", type=int, default=3)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--per-file", action="store_true", help="print every etcd file's time")
    ap.add_argument("--quick", action="store_true",
                    help="skip the 100,000-op history and the scale table")
    ap.add_argument("--scale-only", action="store_true", help="only the scale table (issue 20)")
    ap.add_argument("--scale-runs", type=int, default=1, help="child runs per scale case (median)")
    ap.add_argument("--base", type=Path, default=None, metavar="TREE",
                    help="also measure the 1M cases with the checker of TREE (before/after)")
    ap.add_argument("--no-pss", action="store_true",
                    help="skip the 1M cases' memory runs (PSS of parent and worker, sampled)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/checker-bench-cache"),
                    help="where the generated scale histories are kept")
    ap.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                    help=f"the corpus folder (default {CORPUS})")
    a = ap.parse_args()
    global BASE, PSS
    BASE = a.base
    PSS = not a.no_pss
    if a.corpus is not None:
        CORPUS = a.corpus
    if a.scale_only:
        bench_scale(a.cache, a.scale_runs)
        return
    if (CORPUS / "manifest.json").is_file():
        bench_etcd(a.runs, a.per_file)
        bench_kv(a.runs)
    else:
        print(f"corpus not found at {CORPUS}: skipping corpus benchmarks")
    if not a.quick:
        bench_big(a.big_runs, a.ops)
        bench_scale(a.cache, a.scale_runs)


if __name__ == "__main__":
    main()
