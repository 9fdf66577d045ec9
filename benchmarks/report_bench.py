"""How long the report takes to draw, and how big the page gets, as histories grow.

Writes synthetic run folders (tests/testkit/synthetic.py: 5 nodes, 10 clients, four
fault windows, one stale-read violation, metrics and node logs) of 1,000 to
100,000 operations, times reports.write_report on each, and prints the page
size next to the history's size. With chromium installed it also times
opening the largest page in headless Chromium (load + full-page screenshot).

    .venv/bin/python benchmarks/report_bench.py [--ops 1000,10000,100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test fixtures: testkit.synthetic, testkit.browser

from testkit.synthetic import write_synthetic_run

from reports import write_report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", default="1000,10000,100000", help="comma-separated operation counts")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the run folders under DIR")
    ap.add_argument("--no-browser", action="store_true", help="skip timing the page in chromium")
    args = ap.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times include waiting)"
    )
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="report-bench-"))
    largest: Path | None = None
    try:
        for n in (int(x) for x in args.ops.split(",")):
            run = write_synthetic_run(
                base / f"ops{n}", ops=n, clients=10, violation=True, net=n <= 10_000
            )
            history_mb = (run / "history.jsonl").stat().st_size / 1e6
            began, cpu = time.perf_counter(), time.process_time()
            page = write_report(run)
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
            print(
                f"report {n:>7} ops: render {seconds:6.2f} s wall, {cpu:5.2f} s CPU, "
                f"page {page.stat().st_size / 1e6:5.2f} MB (history.jsonl {history_mb:6.1f} MB)  {page}",
                flush=True,
            )
            largest = page
        if largest is not None and not args.no_browser:
            from testkit.browser import BrowserError, find_chromium, open_page

            if find_chromium() is None:
                print("chromium: not installed, page load not timed")
            else:
                try:
                    c = open_page(largest)
                    print(
                        f"chromium: opened {largest.parent.name} and took a full-page screenshot in "
                        f"{c.seconds:.2f} s ({c.width}x{c.height} px, {len(c.errors)} console errors)"
                    )
                except BrowserError as exc:
                    print(f"chromium: {exc}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
