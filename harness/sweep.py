"""Sweeps: `harness run --test-count N` over a pool of processes (simulated or real).

Owns ``run_series(config, executor=None)`` for pooled sweeps (the runner's
``run_series`` comes here when ``config.sim``; run_cli calls ``main`` for
simulated sweeps and ``--scheduler`` ones), ``sweep`` (the rows, with the
progress line) and ``summary`` (the table).

- Seeds ``seed .. seed+N-1``, each one ``harness.simrun.run`` (or, for a
  real config, ``harness.runner.run``: it keeps its whole folder) in a
  worker of ``executor`` (any ``concurrent.futures.Executor``; default
  ``harness.executors.executor_for(config)``: a process pool of
  ``config.workers`` or the machine's cores, or a Dask cluster's for
  ``--scheduler``). Tasks take and return plain data. At most two tasks per
  worker are queued, so ``--stop-on-fail`` stops soon after the first run
  that is not valid (the runs in flight finish and are kept).
- A seed whose task ran twice (Dask runs a dead worker's tasks again, also
  one that had ended but not reported) is counted once, and so is its folder:
  at the end, every other folder of a counted seed that this sweep wrote (the
  same config.json, made since the sweep began) is marked superseded
  (``reports.ledger.mark_superseded``: kept, but neither the ledger nor a
  rebuild of it counts it).
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
    """One seed, in a worker process (plain data in, plain data out: any executor,
    Dask's too). A real run keeps its whole folder (it is expensive to repeat)."""
    c0 = time.process_time()
    cfg = RunConfig.from_dict(cfg_dict)
    if cfg.sim:
        from harness import simrun

        res = simrun.run(cfg, keep=keep_all, index=False)
    else:
        from harness import runner

        res = runner.run(cfg)
    return Row(int(cfg.seed or 0), res.verdict, res.exit_code, str(res.run_dir), res.results,
               time.process_time() - c0)


class _Progress:
    def __init__(self, total: int, enabled: bool, label: str = "sim sweep") -> None:
        self.total = total
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.width = 0

    def show(self, done: int, failed: int) -> None:
        if not self.enabled:
            return
        elapsed = max(1e-6, time.monotonic() - self.t0)
        rate = done / elapsed
        left = (self.total - done) / rate if rate > 0 else float("inf")
        line = (f"[{self.label}] {done}/{self.total} seeds, {failed} failing, {rate:.1f} seeds/s, "
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
    base = _prepare(dataclasses.replace(config, test_count=1))
    count = config.test_count
    workers = config.workers or os.cpu_count() or 1
    own = executor is None
    pool: Executor = executor if executor is not None else _executor(config)
    progress = _Progress(count, config.progress, "sim sweep" if base.sim else "sweep")
    seeds = iter(range(int(base.seed or 0), int(base.seed or 0) + count))
    inflight: dict[int, Future] = {}
    ready: dict[int, Row] = {}
    next_out = int(base.seed or 0)
    done = failed = 0
    stop = False
    began = time.time()
    counted: dict[int, str] = {}  # seed -> the run folder this sweep counts for it
    extra: list[tuple[int, str]] = []  # results that came back for a seed already counted

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
            if row.seed in counted:
                extra.append((row.seed, row.run_dir))  # Dask reran a task: counted once
                continue
            counted[row.seed] = row.run_dir
            ready[row.seed] = row
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
        supersede_orphans(Path(base.store), str(base.name), counted, began, extra)
        from reports import store_index

        with contextlib.suppress(Exception):
            store_index.write_store_index(Path(base.store))


def supersede_orphans(store: Path, name: str, counted: dict[int, str], began: float,
                      extra: list[tuple[int, str]] = ()) -> list[Path]:
    """Mark superseded every folder of ``store/name`` that holds a second run of a
    counted seed: one in ``extra``, or one made since ``began`` (a Unix time) whose
    config.json is the counted folder's. Returns the folders marked. Best effort:
    a folder that cannot be read or marked is left as it is."""
    from reports import ledger, runfolder

    if not counted:
        return []
    counted_paths = {str(Path(p).resolve()) for p in counted.values()}
    configs: dict[int, Any] = {}
    suspects = [(seed, Path(p)) for seed, p in extra]
    with contextlib.suppress(OSError):
        for d in (store / name).iterdir():
            stamp = runfolder.stamp_time(d.name)
            if d.is_symlink() or not d.is_dir() or stamp is None \
                    or stamp.timestamp() < began - 1:  # stamps have whole seconds
                continue
            cfg = runfolder.read_json(d / "config.json") or {}
            if isinstance(cfg.get("seed"), int) and cfg["seed"] in counted:
                suspects.append((cfg["seed"], d))
    marked = []
    for seed, d in suspects:
        if str(d.resolve()) in counted_paths or (d / ledger.SUPERSEDED).exists():
            continue
        mine = configs.get(seed)
        if mine is None:
            mine = configs[seed] = runfolder.read_json(Path(counted[seed]) / "config.json")
        if not mine or runfolder.read_json(d / "config.json") != mine:
            continue
        with contextlib.suppress(ledger.LedgerError):
            ledger.mark_superseded(store, d, counted[seed],
                                   f"seed {seed} ran twice in one sweep (a Dask worker died "
                                   "after this run ended and before it reported, or a task "
                                   "was retried); the sweep counts the other folder")
            marked.append(d)
    return marked


def _prepare(config: RunConfig) -> RunConfig:
    """The resolved, validated config of every seed (RunError, one line, if unusable)."""
    if config.sim:
        from harness import simrun

        return simrun.prepare(config)
    from harness import runner

    return runner.prepare(config)[0]


def _executor(config: RunConfig) -> Executor:
    """harness.executors.executor_for: a process pool, or Dask for ``--scheduler``."""
    from harness.runner import RunError

    try:
        from harness.executors import ExecutorError, executor_for
    except ImportError:
        return ProcessPoolExecutor(config.workers or os.cpu_count() or 1)
    try:
        return executor_for(config)
    except ExecutorError as exc:
        raise RunError(str(exc)) from None


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
