"""Simulated sweeps: `harness run --sim --test-count N` over a pool of processes.

Owns ``run_series(config, executor=None)`` for simulated configs (the
runner's ``run_series`` comes here when ``config.sim``), ``sweep`` (the same,
with the progress line and the rows) and ``summary`` (the table).

- Seeds ``seed .. seed+N-1``, each one ``harness.simrun.run`` in a worker
  process of ``executor`` (any ``concurrent.futures.Executor``; default a
  ``ProcessPoolExecutor`` of ``config.workers`` or ``os.cpu_count()``
  processes). At most two tasks per worker are queued, so ``--stop-on-fail``
  stops soon after the first run that is not valid (the runs in flight
  finish and are kept).
- A failing seed keeps its whole run folder; a passing one keeps only
  config.json and results.json (``reports/ledger.py`` counts those folders)
  unless ``keep_all``. The store index is redrawn once, at the end.
- Results come back in seed order (a run is reported once every lower seed
  has been), so the output of a sweep does not depend on the pool's timing.
- On a terminal, stderr shows one progress line: seeds done, failures,
  seeds/s and the time left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import RunConfig


@dataclass
class Row:
    """What the parent keeps of one seed."""

    seed: int
    verdict: str
    exit_code: int
    run_dir: str
    results: dict[str, Any]
    cpu_s: float


def _one(cfg_dict: dict[str, Any], keep_all: bool) -> Row:
    """One seed, in a worker process."""
    from harness import simrun

    c0 = time.process_time()
    cfg = RunConfig.from_dict(cfg_dict)
    res = simrun.run(cfg, keep=keep_all, index=False)
    return Row(int(cfg.seed or 0), res.verdict, res.exit_code, str(res.run_dir), res.results,
               time.process_time() - c0)


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.width = 0

    def show(self, done: int, failed: int) -> None:
        if not self.enabled:
            return
        elapsed = max(1e-6, time.monotonic() - self.t0)
        rate = done / elapsed
        left = (self.total - done) / rate if rate > 0 else float("inf")
        line = (f"[sim sweep] {done}/{self.total} seeds, {failed} failing, {rate:.1f} seeds/s, "
                f"{left:.0f} s left")
        sys.stderr.write("\r" + line + " " * max(0, self.width - len(line)))
        sys.stderr.flush()
        self.width = len(line)

    def done(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def sweep(config: RunConfig, executor: Executor | None = None) -> Iterator[Row]:
    """Every seed's Row, in seed order (see the module header)."""
    from harness import simrun

    base = simrun.prepare(dataclasses.replace(config, test_count=1))
    count = config.test_count
    workers = config.workers or os.cpu_count() or 1
    own = executor is None
    pool: Executor = executor if executor is not None else ProcessPoolExecutor(workers)
    progress = _Progress(count, config.progress)
    seeds = iter(range(int(base.seed or 0), int(base.seed or 0) + count))
    inflight: dict[int, Future] = {}
    ready: dict[int, Row] = {}
    next_out = int(base.seed or 0)
    done = failed = 0
    stop = False

    def submit() -> None:
        while not stop and len(inflight) < 2 * workers:
            seed = next(seeds, None)
            if seed is None:
                return
            cfg = dataclasses.replace(base, seed=seed, test_count=1)
            inflight[seed] = pool.submit(_one, cfg.to_dict(), config.keep_all)

    try:
        submit()
        while inflight:
            seed = min(inflight)
            row = inflight.pop(seed).result()
            ready[seed] = row
            done += 1
            if row.exit_code != 0:
                failed += 1
                if config.stop_on_fail:
                    stop = True
            progress.show(done, failed)
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
            submit()
        for seed in sorted(ready):
            yield ready.pop(seed)
    finally:
        progress.done()
        for f in inflight.values():
            f.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
        from reports import store_index

        with contextlib.suppress(Exception):
            store_index.write_store_index(Path(base.store))


def run_series(config: RunConfig, executor: Executor | None = None) -> Iterator[Any]:
    """``harness.runner.run_series`` for a simulated config: each seed's RunResult."""
    from harness.runner import RunResult

    for row in sweep(config, executor):
        cfg = dataclasses.replace(config.resolved(), seed=row.seed, test_count=1)
        report = Path(row.run_dir) / "index.html"
        yield RunResult(row.verdict, row.exit_code, Path(row.run_dir), cfg, row.results,
                        report if report.exists() else None)


def summary(rows: list[Row], wall_s: float) -> str:
    """The sweep's table: one line per seed that is not valid, then the totals."""
    bad = [r for r in rows if r.exit_code != 0]
    lines = [f"{'seed':>10}  {'verdict':8}  {'ok':>6}  {'fail':>5}  {'info':>5}  first anomaly / run"]
    lines.append("-" * len(lines[0]))
    for r in bad:
        c = r.results.get("counts") or {}
        anomalies = (r.results.get("checker") or {}).get("anomalies") or []
        first = anomalies[0].get("sentence", "")[:80] if anomalies else ""
        lines.append(f"{r.seed:>10}  {r.verdict:8}  {c.get('ok', 0):>6}  {c.get('fail', 0):>5}  "
                     f"{c.get('info', 0):>5}  {first}")
        lines.append(f"{'':>10}  {r.run_dir}")
    verdicts = {v: sum(1 for r in rows if r.verdict == v) for v in ("valid", "invalid", "unknown")}
    sim_s = sum(float(r.results.get("simulated_s") or 0) for r in rows)
    cpu = sum(r.cpu_s for r in rows)
    lines.append(f"{len(rows)} seeds: {verdicts['valid']} valid, {verdicts['invalid']} invalid, "
                 f"{verdicts['unknown']} unknown; {sim_s:.0f} simulated s in {wall_s:.1f} wall s "
                 f"({len(rows) / max(wall_s, 1e-9):.1f} seeds/s, {cpu:.1f} CPU-s)")
    return "\n".join(lines)


def main(config: RunConfig) -> int:
    """Run the sweep and print its table; the exit code of ``harness run``."""
    t0 = time.monotonic()
    rows = list(sweep(config))
    print(summary(rows, time.monotonic() - t0))
    codes = {r.exit_code for r in rows}
    return next((c for c in (1, 3, 2) if c in codes), 0)
