"""EDN reading speed (issue 20): a 1M-operation Jepsen EDN history against its
JSON Lines twin, read into the checker's events.

Each case runs in a child process of its own (so its peak RSS is its own),
several times, the cases in turn (so load drift hits all alike); the table
prints the median wall and CPU time, the peak RSS, and each EDN case's ratio
to JSON Lines, of wall (the target: 2x) and of CPU time:

- ``JSON Lines``: ``read_history`` of the .jsonl file;
- ``EDN, read_history``: what the checker does with the .edn file today;
- ``EDN, checker.edn``: the file's bytes through ``checker.edn.parse_edn``,
  the collector paused (as ``read_history`` reads);
- ``EDN, pure Python``: the same without the compiled translation
  (checker/_edn_json.c), what an install without a C compiler reads with;
- ``edn_format`` (only with ``--edn-format``, when that package imports): the
  maintained pure-Python EDN library on the first 20,000 lines, scaled to
  the whole file (its figure is an extrapolation, and says so).

The files are checker_bench.py's (same generator, same cache folder): 1M
operations, 50 processes, 64 keys, 2% info, written by Jepsen's layout (one
map per line, keywords for type and f).

Usage: .venv/bin/python benchmarks/edn_bench.py [--runs N] [--cache DIR] [--edn-format]
       [--edn-format-python PYTHON]   (a Python that has edn_format, if .venv has not)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SAMPLE_LINES = 20_000


def child(case: str, path: str) -> None:
    """One measurement in this process; prints one JSON line."""
    from checker.history import no_gc, read_history

    c = time.process_time()
    t = time.perf_counter()
    if case == "read_history":
        n = len(read_history(path))
    elif case in ("edn", "edn_pure"):
        from checker import edn

        if case == "edn_pure":
            edn._translate = None
        with no_gc():
            n = len(edn.parse_edn(Path(path).read_bytes(), path))
    elif case == "edn_format":
        import edn_format

        with open(path) as f:
            text = "".join(f.readline() for _ in range(SAMPLE_LINES))
        n = len(edn_format.loads_all(text))
    else:
        raise SystemExit(f"unknown case {case}")
    out = {"events": n, "wall": time.perf_counter() - t, "cpu": time.process_time() - c,
           "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(out))


def run(case: str, path: Path, runs: int, python: str = sys.executable) -> dict:
    rs = []
    for _ in range(runs):
        r = subprocess.run([python, __file__, "--child", case, str(path)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
        rs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {"events": rs[0]["events"],
            "wall": statistics.median(r["wall"] for r in rs),
            "cpu": statistics.median(r["cpu"] for r in rs),
            "rss_mb": max(r["rss_mb"] for r in rs),
            "walls": [r["wall"] for r in rs]}


def _merge(rs: list[dict]) -> dict:
    """Single runs of one case as one row: medians, and every wall time."""
    errors = [r for r in rs if "error" in r]
    if errors:
        return errors[0]
    return {"events": rs[0]["events"],
            "wall": statistics.median(r["wall"] for r in rs),
            "cpu": statistics.median(r["cpu"] for r in rs),
            "rss_mb": max(r["rss_mb"] for r in rs),
            "walls": [w for r in rs for w in r["walls"]]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="child runs per case (median)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/checker-bench-cache"),
                    help="where checker_bench.py keeps its generated 1M histories")
    ap.add_argument("--edn-format", action="store_true",
                    help="also time the edn_format package on a sample (if installed)")
    ap.add_argument("--edn-format-python", default=sys.executable,
                    help="the Python to time edn_format with (one that has it installed)")
    a = ap.parse_args()
    from checker_bench import scale_files

    from checker import edn

    files = scale_files(a.cache)
    cases = [("JSON Lines, read_history", "read_history", files["valid"]),
             ("EDN, read_history", "read_history", files["edn"]),
             ("EDN, checker.edn", "edn", files["edn"]),
             ("EDN, pure Python", "edn_pure", files["edn"])]
    # interleaved (one run of each case in turn), so load drift hits all alike
    per: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    for _ in range(a.runs):
        for label, case, path in cases:
            per[label].append(run(case, path, 1))
    results = [(label, _merge(per[label])) for label, _, _ in cases]
    json_wall, json_cpu = results[0][1].get("wall"), results[0][1].get("cpu")
    compiled = "compiled (checker/_edn_json.c)" if edn._translate else "NOT built: pure Python"
    print(f"read 1M ops ({a.runs} runs each, interleaved, median wall; translation {compiled}; "
          f"load {Path('/proc/loadavg').read_text().split()[0]} at the end)")
    print(f"{'case':28s} {'events':>8s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS':>9s} {'/JSON':>6s}"
          f" {'cpu/JSON':>8s}")
    for label, r in results:
        if "error" in r:
            print(f"{label:28s} error: {r['error']}")
            continue
        ratio = f"{r['wall'] / json_wall:5.2f}x" if json_wall else "?"
        cpu_ratio = f"{r['cpu'] / json_cpu:5.2f}x" if json_cpu else "?"
        print(f"{label:28s} {r['events']:8d} {r['wall']:8.2f} {r['cpu']:8.2f} "
              f"{r['rss_mb']:7.0f} MB {ratio:>6s} {cpu_ratio:>8s}   "
              f"walls {' '.join(f'{w:.2f}' for w in r['walls'])}")
    if a.edn_format:
        r = run("edn_format", files["edn"], 1, a.edn_format_python)
        if "error" in r:
            print(f"edn_format: not measured ({r['error']})")
        else:
            with open(files["edn"], "rb") as f:
                lines = sum(1 for _ in f)
            scale = lines / r["events"]
            print(f"edn_format (pure Python): {r['events']} lines in {r['wall']:.2f} s "
                  f"(cpu {r['cpu']:.2f} s); scaled to {lines} lines: ~{r['wall'] * scale:.0f} s, "
                  f"{r['wall'] * scale / json_wall:.0f}x JSON Lines (extrapolated)")
    print("target: EDN within 2x of JSON Lines")


if __name__ == "__main__":
    main()
