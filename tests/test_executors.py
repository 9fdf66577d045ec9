"""harness/executors.py: the choice of where a sweep's runs execute, on a real local
Dask cluster (a scheduler and two worker processes on 127.0.0.1, ended by PID)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pytest
from testkit.daskcluster import ROOT, dask_cluster

from harness.config import RunConfig
from harness.executors import ExecutorError, executor_for


def where_am_i(i: int, pause: float) -> tuple[int, int]:
    time.sleep(pause)
    return i, os.getpid()


def test_local_processes_by_default() -> None:
    ex = executor_for(RunConfig(workers=2))
    try:
        assert isinstance(ex, ProcessPoolExecutor)
        assert sorted(f.result()[0] for f in [ex.submit(where_am_i, i, 0) for i in range(4)]) \
            == [0, 1, 2, 3]
    finally:
        ex.shutdown()


def test_without_the_extra_a_scheduler_is_one_line(tmp_path: Path) -> None:
    # A Python that cannot import distributed: hide it behind a stub that raises.
    stub = tmp_path / "distributed.py"
    stub.write_text("raise ImportError('no dask here')\n")
    out = subprocess.run(
        [sys.executable, "-c",
         ("from harness.config import RunConfig\n"
          "from harness.executors import ExecutorError, executor_for\n"
          "try:\n    executor_for(RunConfig(scheduler='tcp://127.0.0.1:1'))\n"
          "except ExecutorError as e:\n    print(e)\n")],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("--scheduler needs Dask: pip install "
                                  "'consensus-harness[dask]' (or '.[dask]' in a checkout)")


def test_no_scheduler_there_is_one_line() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(ExecutorError, match="no Dask scheduler answers"):
        from harness.executors import dask_executor
        dask_executor("tcp://127.0.0.1:9", timeout=2)


@pytest.mark.timeout(180)
def test_a_killed_worker_loses_no_task(tmp_path: Path) -> None:
    with dask_cluster(tmp_path / "dask", workers=2) as cluster:
        ex = executor_for(RunConfig(scheduler=cluster.address))
        try:
            futures = [ex.submit(where_am_i, i, 0.3) for i in range(12)]
            done: dict[int, int] = {}
            victim = cluster.workers[0].pid
            killed_after = None
            for fut in as_completed(futures, timeout=120):
                i, pid = fut.result()
                done[i] = pid
                if pid == victim and killed_after is None:  # it ran one: now it dies mid-sweep
                    cluster.kill_worker(0)
                    killed_after = len(done)
            assert sorted(done) == list(range(12))  # every task, once
            assert killed_after is not None and killed_after < 12
            assert cluster.workers[0].poll() is not None
            # what was left ran on the survivor
            assert sum(pid != victim for pid in done.values()) >= 12 - killed_after
        finally:
            ex.shutdown()


@pytest.mark.timeout(240)
def test_a_dask_sweep_with_a_killed_worker_counts_every_seed_once(tmp_path: Path) -> None:
    from harness import sweep

    with dask_cluster(tmp_path / "dask", workers=2) as cluster:
        cfg = RunConfig(sim=True, system="raft", nodes=3, time_limit=2.0, seed=100,
                        test_count=16, store=str(tmp_path / "store"), progress=False,
                        scheduler=cluster.address)
        seen: list[int] = []
        dirs: set[str] = set()
        for row in sweep.sweep(cfg):
            seen.append(row.seed)
            dirs.add(row.run_dir)
            if len(seen) == 3:
                cluster.kill_worker(0)  # its queued seeds must run on the other worker
        assert seen == list(range(100, 116))  # each seed counted once, in order
        assert len(dirs) == 16
        assert cluster.workers[0].poll() is not None
        # every seed left its results in the store (passing seeds keep results.json only);
        # a seed the dead worker had finished but not reported left a second folder, marked
        # superseded, so the ledger, also rebuilt, counts every seed once
        from reports import ledger

        store = tmp_path / "store"
        live = [p for p in store.rglob("results.json") if not (p.parent / ledger.SUPERSEDED).exists()]
        assert sorted(int(json.loads(p.read_text())["seed"]) for p in live) == list(range(100, 116))
        (store / ledger.LEDGER).unlink(missing_ok=True)
        with ledger.open_ledger(store) as led:
            assert sorted(r.seed for r in led.rows()) == list(range(100, 116))
        orphans = ledger.superseded_runs(store)
        print(f"killed worker: 16 seeds counted once; {len(orphans)} orphan folder(s) marked "
              f"superseded: {[p.name for p in orphans]}")
