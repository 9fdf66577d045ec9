"""A real local Dask cluster for the sweep tests: one scheduler and N worker
processes on 127.0.0.1, started and ended by the test, by PID.

Skips (pytest.skip, with the reason) when the ``[dask]`` extra is not installed.
Every process is started in its own process group and ended by PID (SIGTERM,
then SIGKILL), also when the test fails; the workers' nanny is off so a killed
worker stays dead and its tasks must move to another worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` (its tasks must run again elsewhere)."""
        w = self.workers[i]
        if w.poll() is None:
            w.kill()
            w.wait(10)


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def dask_cluster(tmp: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """A scheduler and ``workers`` single-threaded worker processes; see the module header."""
    pytest.importorskip("distributed", reason="the [dask] extra is not installed")
    tmp.mkdir(parents=True, exist_ok=True)
    sched_file = tmp / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    log = open(tmp / "dask.log", "ab")  # noqa: SIM115 - closed below
    procs: list[subprocess.Popen] = []
    try:
        sched = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
            stdout=log, stderr=log, env=env, cwd=tmp)
        procs.append(sched)
        deadline = time.monotonic() + 30
        while not sched_file.exists() and time.monotonic() < deadline:
            if sched.poll() is not None:
                raise RuntimeError(f"the Dask scheduler exited ({sched.returncode})")
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        cluster = DaskCluster(address, sched)
        for i in range(workers):
            w = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address,
                 "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--name", f"w{i}", "--local-directory", str(tmp / f"w{i}")],
                stdout=log, stderr=log, env=env, cwd=tmp)
            procs.append(w)
            cluster.workers.append(w)
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield cluster
    finally:
        for p in reversed(procs):
            _end(p)
        log.close()
